//! Provenance over HTTP: generated images carry XMP and a watermark, and
//! POST /v1/provenance/verify reads the watermark back to the generation record.

use image::imageops::FilterType;
use reqwest::multipart::{Form, Part};
use serde_json::Value;
use sha2::Digest;
use stylecast::media;
use stylecast::provenance::{robustness, xmp};

use crate::generate::{add_influencer, generate, read, CONTENT};
use crate::helpers::{spawn_app, TestApp};

/// `POST /v1/provenance/verify` with the image as the raw body.
pub async fn verify(app: &TestApp, image: Vec<u8>) -> (u16, Value) {
    let response = app
        .client
        .post(app.url("/v1/provenance/verify"))
        .bearer_auth(&app.admin_key)
        .header("content-type", "application/octet-stream")
        .body(image)
        .send()
        .await
        .expect("verify");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json"))
}

async fn verify_multipart(app: &TestApp, image: Vec<u8>) -> (u16, Value) {
    let form = Form::new().part("image", Part::bytes(image).file_name("image.jpg"));
    let response = app
        .client
        .post(app.url("/v1/provenance/verify"))
        .bearer_auth(&app.admin_key)
        .multipart(form)
        .send()
        .await
        .expect("verify");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json"))
}

/// Generates and returns (generation id header, cache header, bytes).
async fn generated(app: &TestApp, format: &str, size: &str) -> (String, String, Vec<u8>) {
    let fields = [
        ("user", "ana"),
        ("influencer", "neon_nova"),
        ("size", size),
        ("format", format),
    ];
    let response = generate(app, &fields, read(CONTENT)).await;
    assert_eq!(response.status().as_u16(), 200);
    let header = |name: &str| response.headers()[name].to_str().expect("ascii").to_string();
    let (id, cache) = (header("x-generation-id"), header("x-cache"));
    (id, cache, response.bytes().await.expect("body").to_vec())
}

/// Half size (triangle filter), then JPEG at quality 75: what a re-share often does.
fn degrade(bytes: &[u8]) -> Vec<u8> {
    let image = media::decode(bytes, &media::MediaLimits::default()).expect("decodes");
    let half = robustness::half(&image, FilterType::Triangle);
    let mut out = std::io::Cursor::new(Vec::new());
    half.write_with_encoder(image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 75))
        .expect("jpeg");
    out.into_inner()
}

#[tokio::test]
async fn a_generated_image_and_a_degraded_copy_verify_to_their_generation() {
    let app = spawn_app().await;
    add_influencer(&app, "neon_nova").await;
    let (id, cache, png) = generated(&app, "png", "256").await;
    assert_eq!(cache, "miss");

    let (status, verdict) = verify(&app, png.clone()).await;
    assert_eq!(status, 200, "{verdict}");
    assert_eq!(verdict["found"], true, "{verdict}");
    assert_eq!(verdict["generation_id"], id.as_str());
    assert_eq!(verdict["generation"]["id"], id.as_str());
    assert_eq!(verdict["generation"]["user_external_id"], "ana");
    assert_eq!(verdict["generation"]["blend_source"], "influencer");
    assert_eq!(
        verdict["generation"]["output_sha256"],
        hex::encode(sha2::Sha256::digest(&png)).as_str()
    );
    assert_eq!(verdict["xmp"]["digital_source_type"], xmp::TRAINED_ALGORITHMIC_MEDIA);
    assert_eq!(verdict["xmp"]["generation_id"], id.as_str());

    // Re-encoding strips the metadata; the watermark stays.
    let degraded = degrade(&png);
    assert!(xmp::read(&degraded).is_none());
    let (status, verdict) = verify_multipart(&app, degraded).await;
    assert_eq!(status, 200, "{verdict}");
    assert_eq!(verdict["found"], true, "{verdict}");
    assert_eq!(verdict["generation"]["id"], id.as_str());
    assert_eq!(verdict["xmp"], Value::Null);

    // A cache hit is its own generation, and its bytes say so (issue 20).
    let (second, cache, again) = generated(&app, "png", "256").await;
    assert_eq!(cache, "hit");
    assert_ne!(second, id);
    assert_ne!(again, png);
    let (_, verdict) = verify(&app, again).await;
    assert_eq!(verdict["generation_id"], second.as_str());
    assert_eq!(verdict["xmp"]["generation_id"], second.as_str());
    assert_eq!(verdict["generation"]["cache_hit"], true);
}

#[tokio::test]
async fn every_output_format_carries_the_ai_generated_xmp_and_the_watermark() {
    let app = spawn_app().await;
    add_influencer(&app, "neon_nova").await;
    for format in ["png", "jpeg", "webp"] {
        let (id, _, bytes) = generated(&app, format, "128").await;
        let packet = xmp::read(&bytes).unwrap_or_else(|| panic!("{format}: no XMP"));
        let fields = xmp::fields(&packet);
        assert_eq!(
            fields.digital_source_type.as_deref(),
            Some(xmp::TRAINED_ALGORITHMIC_MEDIA),
            "{format}"
        );
        assert_eq!(fields.generation_id.as_deref(), Some(id.as_str()), "{format}");
        assert!(fields.model_version.is_some_and(|v| v.contains('+')), "{format}");
        let (status, verdict) = verify(&app, bytes).await;
        assert_eq!(
            (status, &verdict["generation_id"]),
            (200, &Value::from(id.as_str())),
            "{format}"
        );
    }
}

#[tokio::test]
async fn unmarked_small_and_broken_images_are_answered_with_codes() {
    let app = spawn_app().await;
    let (status, verdict) = verify(&app, read(CONTENT)).await;
    assert_eq!(status, 200, "{verdict}");
    assert_eq!(verdict["found"], false);
    assert_eq!(verdict["code"], "no_watermark");
    assert_eq!(verdict["generation"], Value::Null);

    // A watermark that names no generation on record (another deployment's, say).
    let photo = media::decode(&read(CONTENT), &media::MediaLimits::default()).expect("decodes");
    let stranger = uuid::Uuid::new_v4();
    let marked = stylecast::provenance::stamp(&photo, stranger);
    let (status, verdict) = verify(&app, media::encode(&marked, media::OutputFormat::Png).expect("png")).await;
    assert_eq!(status, 200, "{verdict}");
    assert_eq!(verdict["found"], false);
    assert_eq!(verdict["code"], "unknown_generation");
    assert_eq!(verdict["generation_id"], stranger.to_string().as_str());

    let tiny = media::encode(&image::RgbImage::new(40, 200), media::OutputFormat::Png).expect("png");
    let (status, error) = verify(&app, tiny).await;
    assert_eq!((status, error["code"].as_str()), (422, Some("image_too_small")));

    let png = read(CONTENT);
    for (body, status_wanted, code) in [
        (png[..png.len() / 3].to_vec(), 400, "truncated_image"),
        (Vec::new(), 400, "empty_image"),
        (b"%PDF-1.4".to_vec(), 400, "unsupported_image_format"),
    ] {
        let (status, error) = verify(&app, body).await;
        assert_eq!((status, error["code"].as_str()), (status_wanted, Some(code)));
    }
    let empty_form = app
        .client
        .post(app.url("/v1/provenance/verify"))
        .bearer_auth(&app.admin_key)
        .multipart(Form::new().text("other", "x"))
        .send()
        .await
        .expect("verify");
    assert_eq!(empty_form.status().as_u16(), 400);
}
