//! Property tests of the two front doors that take arbitrary bytes from the outside:
//! the event batch parser and the image decoder. Neither may panic, and their answers
//! must account for every input.

use chrono::Duration;
use proptest::prelude::*;
use stylecast::ingest::parse::{parse_batch, BatchFormat, ValidationRules};
use stylecast::media::{self, MediaLimits, OutputFormat};

fn rules() -> ValidationRules {
    ValidationRules {
        now: "2026-11-26T12:00:00Z".parse().expect("valid"),
        max_future_skew: Duration::minutes(5),
        min_occurred_at: "2000-01-01T00:00:00Z".parse().expect("valid"),
        max_events: 10_000,
    }
}

/// A JSON value that is often event-shaped and often subtly wrong.
fn event_like() -> impl Strategy<Value = serde_json::Value> {
    let text = prop_oneof![
        Just("like".to_string()),
        Just("follow".to_string()),
        Just("unfollow".to_string()),
        Just("2026-11-26T10:00:00Z".to_string()),
        Just("2099-01-01T00:00:00Z".to_string()),
        "\\PC{0,12}",
        Just(String::new()),
        Just("x".repeat(200)),
    ];
    let scalar = prop_oneof![
        text.clone().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(|f| serde_json::json!(f)),
        Just(serde_json::Value::Null),
        Just(serde_json::json!([1, 2])),
    ];
    let fields = [
        "event_id",
        "user",
        "influencer",
        "kind",
        "occurred_at",
        "post_id",
        "weight",
        "extra",
    ];
    prop::collection::vec((prop::sample::select(fields.to_vec()), scalar), 0..9)
        .prop_map(|pairs| serde_json::Value::Object(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic_the_parser(body in prop::collection::vec(any::<u8>(), 0..2048)) {
        for format in [BatchFormat::JsonArray, BatchFormat::Ndjson] {
            if let Ok(batch) = parse_batch(&body, format, &rules()) {
                let mut indices: Vec<usize> = batch.events.iter().map(|e| e.0).chain(batch.rejected.iter().map(|r| r.index)).collect();
                indices.sort_unstable();
                indices.dedup();
                prop_assert_eq!(indices.len(), batch.events.len() + batch.rejected.len(), "each item answered once");
            }
        }
    }

    #[test]
    fn every_item_of_a_json_array_is_accepted_or_rejected_with_a_code(items in prop::collection::vec(event_like(), 0..40)) {
        let body = serde_json::to_vec(&items).expect("serialise");
        let batch = parse_batch(&body, BatchFormat::JsonArray, &rules()).expect("an array parses");
        prop_assert_eq!(batch.events.len() + batch.rejected.len(), items.len());
        for rejection in &batch.rejected {
            prop_assert!(!rejection.code.is_empty() && !rejection.message.is_empty());
        }
        let ndjson: Vec<u8> = items.iter().flat_map(|i| { let mut l = serde_json::to_vec(i).expect("line"); l.push(b'\n'); l }).collect();
        let lines = parse_batch(&ndjson, BatchFormat::Ndjson, &rules()).expect("ndjson parses");
        prop_assert_eq!(lines.events.len(), batch.events.len(), "both framings agree");
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_image_decoder(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
        let _ = media::decode(&bytes, &MediaLimits::default());
    }

    #[test]
    fn corrupted_real_images_are_refused_or_decoded_never_panic(
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..16),
        cut in any::<prop::sample::Index>(),
        format in prop::sample::select(vec![OutputFormat::Png, OutputFormat::Jpeg, OutputFormat::Webp]),
    ) {
        let image = image::RgbImage::from_fn(48, 32, |x, y| image::Rgb([(x * 5) as u8, (y * 7) as u8, 90]));
        let mut bytes = media::encode(&image, format).expect("encode");
        for (at, value) in flips {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        bytes.truncate(cut.index(bytes.len()) + 1);
        if let Ok(decoded) = media::decode(&bytes, &MediaLimits::default()) {
            prop_assert!(decoded.width() > 0 && decoded.height() > 0);
        }
    }

    #[test]
    fn corrupted_unusual_images_are_refused_or_decoded_never_panic(
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..16),
        cut in any::<prop::sample::Index>(),
        name in prop::sample::select(vec!["cmyk.jpg", "exif_orientation_6.jpg", "animated.png", "animated.webp"]),
    ) {
        // CMYK JPEG, EXIF-rotated JPEG, animated PNG and WebP (tests/fixtures/media, made by Pillow).
        let mut bytes = std::fs::read(format!("tests/fixtures/media/{name}")).expect("fixture");
        for (at, value) in flips {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        bytes.truncate(cut.index(bytes.len()) + 1);
        if let Ok(decoded) = media::decode(&bytes, &MediaLimits::default()) {
            prop_assert!(decoded.width() > 0 && decoded.height() > 0);
        }
    }
}
