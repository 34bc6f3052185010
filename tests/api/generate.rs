//! Styles and generation end to end over HTTP with the real models.

use reqwest::multipart::{Form, Part};
use serde_json::{json, Value};
use stylecast::media;

use crate::helpers::{days_ago, event, hex_digest, spawn_app, TestApp};

pub const CONTENT: &str = "onnx/styles/content_heldout/coffee.png";

pub fn read(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}; run onnx/check.sh first"))
}

/// An influencer with consent and no photos yet.
pub async fn put_influencer(app: &TestApp, id: &str) {
    let response = app
        .client
        .put(app.url(&format!("/v1/influencers/{id}")))
        .bearer_auth(&app.admin_key)
        .json(&json!({"display_name": id, "consent": true}))
        .send()
        .await
        .expect("put");
    assert_eq!(response.status().as_u16(), 200);
}

pub async fn add_influencer(app: &TestApp, id: &str) {
    put_influencer(app, id).await;
    for n in 0..3 {
        let response = app
            .client
            .post(app.url(&format!("/v1/influencers/{id}/photos")))
            .bearer_auth(&app.admin_key)
            .header("content-type", "image/jpeg")
            .body(read(&format!("onnx/styles/{id}/{n}.jpg")))
            .send()
            .await
            .expect("photo");
        assert_eq!(
            response.status().as_u16(),
            201,
            "{}",
            response.text().await.unwrap_or_default()
        );
    }
}

pub async fn generate(app: &TestApp, fields: &[(&str, &str)], photo: Vec<u8>) -> reqwest::Response {
    let mut form = Form::new().part("photo", Part::bytes(photo).file_name("photo.png"));
    for (name, value) in fields {
        form = form.text(name.to_string(), value.to_string());
    }
    app.client
        .post(app.url("/v1/generate"))
        .bearer_auth(&app.admin_key)
        .multipart(form)
        .send()
        .await
        .expect("generate")
}

#[tokio::test]
async fn an_influencers_style_comes_from_their_photos() {
    let app = spawn_app().await;
    add_influencer(&app, "noir_nadia").await;
    let (status, style) = app.get_json("/v1/influencers/noir_nadia/style").await;
    assert_eq!(status, 200);
    assert_eq!(style["photo_count"], 3);
    let manifest = stylecast::generate::manifest::Manifest::load(std::path::Path::new("onnx")).expect("manifest");
    assert_eq!(style["style_code"].as_array().map(Vec::len), Some(manifest.style_dim));
    assert_eq!(
        style["gram_summary"].as_array().map(Vec::len),
        Some(4),
        "relu1_1..relu4_1"
    );
    assert!(style["model_version"].as_str().is_some_and(|v| v.len() == 12));
    // The same photo twice does not count twice.
    let again = app
        .client
        .post(app.url("/v1/influencers/noir_nadia/photos"))
        .bearer_auth(&app.admin_key)
        .body(read("onnx/styles/noir_nadia/0.jpg"))
        .send()
        .await
        .expect("photo");
    assert_eq!(again.json::<Value>().await.expect("json")["photo_count"], 3);
    let (status, _) = app.get_json("/v1/influencers/nobody/style").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn generation_returns_a_sized_image_deterministically_with_provenance() {
    let app = spawn_app().await;
    add_influencer(&app, "neon_nova").await;
    let fields = [
        ("user", "ana"),
        ("influencer", "neon_nova"),
        ("size", "128"),
        ("format", "png"),
    ];
    let first = generate(&app, &fields, read(CONTENT)).await;
    assert_eq!(first.status().as_u16(), 200);
    let headers = first.headers().clone();
    assert_eq!(headers["content-type"], "image/png");
    assert_eq!(headers["x-cache"], "miss");
    assert_eq!(headers["x-execution-provider"], "cpu");
    assert!(headers["x-model-version"].to_str().expect("ascii").contains('+'));
    assert_eq!(headers["x-blend"], r#"{"neon_nova":1.0}"#);
    let miss_stages = stage_times(&headers);
    for stage in [
        "styles", "cache", "decode", "queue", "model", "encode", "record", "total",
    ] {
        assert!(
            miss_stages.contains_key(stage),
            "{stage} missing from {:?}",
            headers["server-timing"]
        );
    }
    let parts: f64 = miss_stages
        .iter()
        .filter(|(name, _)| *name != "total")
        .map(|(_, ms)| ms)
        .sum();
    assert!(
        miss_stages["model"] > 0.0 && parts <= miss_stages["total"],
        "{miss_stages:?}"
    );
    let bytes = first.bytes().await.expect("body");
    let image = media::decode(&bytes, &media::MediaLimits::default()).expect("decodes");
    // `size` is the longest side, exactly: the colour model takes any size (600x400 photo).
    assert_eq!(image.dimensions(), (128, 85));

    let second = generate(&app, &fields, read(CONTENT)).await;
    assert_eq!(second.headers()["x-cache"], "hit");
    let hit_stages = stage_times(second.headers());
    assert!(
        !hit_stages.contains_key("model") && !hit_stages.contains_key("decode"),
        "{hit_stages:?}"
    );
    assert!(hit_stages.contains_key("total"), "{hit_stages:?}");
    // The same pixels, marked as a generation of its own (tests/api/honest_bytes.rs).
    assert_ne!(second.headers()["x-generation-id"], headers["x-generation-id"]);
    let again = media::decode(&second.bytes().await.expect("body"), &media::MediaLimits::default()).expect("decodes");
    assert_eq!(again.dimensions(), image.dimensions());
    assert_eq!(
        app.count("SELECT count(*) FROM generations WHERE blend_source = 'influencer'")
            .await,
        2
    );
    // Hashed on the blocking pool while the request goes on; still the upload's SHA-256.
    let inputs: Vec<String> = sqlx::query_scalar("SELECT DISTINCT input_sha256 FROM generations")
        .fetch_all(&app.pool)
        .await
        .expect("input hashes");
    assert_eq!(inputs, vec![hex_digest(&read(CONTENT))]);
}

/// The `Server-Timing` header: stage → milliseconds.
fn stage_times(headers: &reqwest::header::HeaderMap) -> std::collections::HashMap<String, f64> {
    let value = headers["server-timing"].to_str().expect("ascii");
    stylecast::generate::timing::parse_header(value).into_iter().collect()
}

/// Strength below 1 encodes nothing per request (no `encoder` stage): the output is the
/// full-strength output blended with the photo, so it lands between the two.
#[tokio::test]
async fn strength_below_one_costs_no_encoding_and_lands_between_photo_and_style() {
    let app = spawn_app().await;
    add_influencer(&app, "noir_nadia").await;
    let limits = media::MediaLimits::default();
    let mut outputs = Vec::new();
    for strength in ["1", "0.5"] {
        let fields = [
            ("user", "u"),
            ("influencer", "noir_nadia"),
            ("strength", strength),
            ("size", "128"),
        ];
        let response = generate(&app, &fields, read(CONTENT)).await;
        assert_eq!(response.status().as_u16(), 200);
        let stages = stage_times(response.headers());
        assert!(!stages.contains_key("encoder"), "strength {strength}: {stages:?}");
        outputs.push(media::decode(&response.bytes().await.expect("body"), &limits).expect("decodes"));
    }
    let photo = media::fit(&media::decode(&read(CONTENT), &limits).expect("decodes"), 128, 1);
    let mean_gap = |a: &image::RgbImage, b: &image::RgbImage| {
        a.as_raw()
            .iter()
            .zip(b.as_raw())
            .map(|(x, y)| (f64::from(*x) - f64::from(*y)).abs())
            .sum::<f64>()
            / a.as_raw().len() as f64
    };
    let (full, half) = (&outputs[0], &outputs[1]);
    let (photo_to_full, photo_to_half, half_to_full) =
        (mean_gap(&photo, full), mean_gap(&photo, half), mean_gap(half, full));
    assert!(photo_to_full > 5.0, "the style changes the photo: {photo_to_full:.2}");
    assert!(
        (photo_to_half - photo_to_full / 2.0).abs() < photo_to_full * 0.15
            && (half_to_full - photo_to_full / 2.0).abs() < photo_to_full * 0.15,
        "half strength lies half way: {photo_to_half:.2} + {half_to_full:.2} vs {photo_to_full:.2}"
    );
}

/// Strength 0 returns the photo itself, plus the watermark every output carries.
#[tokio::test]
async fn strength_zero_returns_the_input_photo() {
    use stylecast::provenance::{robustness, watermark};
    let app = spawn_app().await;
    add_influencer(&app, "neon_nova").await;
    let response = generate(
        &app,
        &[
            ("user", "u"),
            ("influencer", "neon_nova"),
            ("strength", "0"),
            ("size", "96"),
        ],
        read(CONTENT),
    )
    .await;
    assert_eq!(response.status().as_u16(), 200);
    let id = response.headers()["x-generation-id"]
        .to_str()
        .expect("ascii")
        .to_string();
    let output =
        media::decode(&response.bytes().await.expect("body"), &media::MediaLimits::default()).expect("decodes");
    let input = media::fit(
        &media::decode(&read(CONTENT), &media::MediaLimits::default()).expect("decodes"),
        96,
        1,
    );
    assert_eq!(output.dimensions(), input.dimensions());
    let psnr = robustness::psnr(&output, &input);
    assert!(psnr >= 35.0, "PSNR {psnr:.2} dB");
    let read_back = watermark::detect(&output)
        .expect("large enough")
        .map(|d| d.id.to_string());
    assert_eq!(read_back, Some(id));
}

#[tokio::test]
async fn without_a_choice_the_blend_is_the_users_interests_and_follows_them() {
    let app = spawn_app().await;
    add_influencer(&app, "noir_nadia").await;
    add_influencer(&app, "neon_nova").await;
    app.post_events(&json!([event("e1", "ana", "noir_nadia", "follow", &days_ago(1.0))]))
        .await;
    let (status, interests) = app.get_json("/v1/users/ana/interests").await;
    assert_eq!(status, 200);
    assert_eq!(interests["blend"]["source"], "interests");
    assert_eq!(interests["blend"]["weights"][0]["influencer"], "noir_nadia");

    let response = generate(&app, &[("user", "ana"), ("size", "64")], read(CONTENT)).await;
    assert_eq!(response.headers()["x-blend-source"], "interests");
    let first_blend: Value =
        serde_json::from_str(response.headers()["x-blend"].to_str().expect("ascii")).expect("json");
    assert_eq!(
        first_blend,
        json!(interests["blend"]["weights"]
            .as_array()
            .expect("weights")
            .iter()
            .map(|w| (w["influencer"].as_str().expect("id").to_string(), w["weight"].clone()))
            .collect::<serde_json::Map<_, _>>())
    );

    let shares: Vec<Value> = (0..10)
        .map(|n| event(&format!("s{n}"), "ana", "neon_nova", "share", &days_ago(0.1)))
        .collect();
    app.post_events(&Value::Array(shares)).await;
    let (_, changed) = app.get_json("/v1/users/ana/interests").await;
    assert_eq!(changed["blend"]["weights"][0]["influencer"], "neon_nova", "{changed}");
    let response = generate(&app, &[("user", "ana"), ("size", "64")], read(CONTENT)).await;
    let second_blend: Value =
        serde_json::from_str(response.headers()["x-blend"].to_str().expect("ascii")).expect("json");
    assert_ne!(first_blend, second_blend);
}

#[tokio::test]
async fn bad_images_and_bad_fields_get_4xx_with_a_code() {
    let app = spawn_app().await;
    add_influencer(&app, "neon_nova").await;
    let png = read(CONTENT);
    let bomb = {
        let mut out = std::io::Cursor::new(Vec::new());
        let encoder = image::codecs::png::PngEncoder::new(&mut out);
        image::ImageEncoder::write_image(
            encoder,
            &vec![0u8; 12_000 * 2_500],
            12_000,
            2_500,
            image::ExtendedColorType::L8,
        )
        .expect("encode");
        out.into_inner()
    };
    let cases: Vec<(Vec<u8>, u16, &str)> = vec![
        (png[..png.len() / 3].to_vec(), 400, "truncated_image"),
        (Vec::new(), 400, "empty_image"),
        (b"GIF89a not really".to_vec(), 400, "unsupported_image_format"),
        (b"%PDF-1.4".to_vec(), 400, "unsupported_image_format"),
        (bomb, 413, "image_too_many_pixels"),
    ];
    for (photo, status, code) in cases {
        let response = generate(&app, &[("user", "u"), ("influencer", "neon_nova")], photo).await;
        assert_eq!(response.status().as_u16(), status, "{code}");
        assert_eq!(response.json::<Value>().await.expect("json")["code"], code);
    }
    let fields: [(&[(&str, &str)], &str); 6] = [
        (&[("influencer", "neon_nova")], "missing_user"),
        (&[("user", "u"), ("influencer", "nobody")], "no_style"),
        (
            &[("user", "u"), ("influencer", "neon_nova"), ("strength", "1.5")],
            "invalid_strength",
        ),
        (
            &[("user", "u"), ("influencer", "neon_nova"), ("size", "4096")],
            "invalid_size",
        ),
        (
            &[("user", "u"), ("influencer", "neon_nova"), ("format", "gif")],
            "invalid_format",
        ),
        (&[("user", "u"), ("mix", "neon_nova=abc")], "invalid_mix"),
    ];
    for (fields, code) in fields {
        let response = generate(&app, fields, png.clone()).await;
        assert!(response.status().is_client_error(), "{code}");
        assert_eq!(response.json::<Value>().await.expect("json")["code"], code);
    }
    let not_multipart = app
        .client
        .post(app.url("/v1/generate"))
        .bearer_auth(&app.admin_key)
        .body("x")
        .send()
        .await
        .expect("send");
    assert_eq!(not_multipart.status().as_u16(), 400);
    assert_eq!(app.count("SELECT count(*) FROM generations").await, 0);
}

#[tokio::test]
async fn outputs_move_toward_the_chosen_style_and_a_blend_lands_between() {
    use stylecast::style::{extract, gram, service};
    let app = spawn_app().await;
    add_influencer(&app, "noir_nadia").await;
    add_influencer(&app, "neon_nova").await;
    let settings = stylecast::config::Settings::load(None).expect("settings");
    let models = stylecast::startup::load_models(&settings).0.expect("models");
    let grams_of = |bytes: Vec<u8>| {
        let models = models.clone();
        async move {
            let image = media::decode(&bytes, &media::MediaLimits::default()).expect("decodes");
            extract::photo_style(&models, image).await.expect("features").grams
        }
    };
    let noir = service::influencer_grams(&app.pool, &models, "noir_nadia")
        .await
        .expect("noir grams");
    let neon = service::influencer_grams(&app.pool, &models, "neon_nova")
        .await
        .expect("neon grams");
    let input = grams_of(read(CONTENT)).await;
    let mut outputs = Vec::new();
    for fields in [
        [("user", "u"), ("influencer", "noir_nadia"), ("size", "256")],
        [("user", "u"), ("influencer", "neon_nova"), ("size", "256")],
        [("user", "u"), ("mix", "noir_nadia=0.5,neon_nova=0.5"), ("size", "256")],
    ] {
        let response = generate(&app, &fields, read(CONTENT)).await;
        assert_eq!(response.status().as_u16(), 200);
        outputs.push(grams_of(response.bytes().await.expect("body").to_vec()).await);
    }
    let (to_noir, to_neon, mixed) = (&outputs[0], &outputs[1], &outputs[2]);
    let d = gram::distance;
    println!(
        "Gram distance to noir: input {:.5}, noir output {:.5}, mix {:.5}, neon output {:.5}",
        d(&input, &noir),
        d(to_noir, &noir),
        d(mixed, &noir),
        d(to_neon, &noir)
    );
    println!(
        "Gram distance to neon: input {:.5}, neon output {:.5}, mix {:.5}, noir output {:.5}",
        d(&input, &neon),
        d(to_neon, &neon),
        d(mixed, &neon),
        d(to_noir, &neon)
    );
    assert!(
        d(to_noir, &noir) < d(&input, &noir),
        "the noir output is closer to noir's style than the photo"
    );
    assert!(
        d(to_neon, &neon) < d(&input, &neon),
        "the neon output is closer to neon's style than the photo"
    );
    assert!(
        d(mixed, &noir) < d(to_neon, &noir) && d(mixed, &neon) < d(to_noir, &neon),
        "the blend lands between"
    );
}

#[tokio::test]
async fn a_display_name_postgres_cannot_store_is_refused_with_a_code() {
    let app = spawn_app().await;
    for name in ["a\u{0}b", "bell\u{7}"] {
        let response = app
            .client
            .put(app.url("/v1/influencers/nova"))
            .bearer_auth(&app.admin_key)
            .json(&json!({"display_name": name, "consent": true}))
            .send()
            .await
            .expect("put");
        assert_eq!(response.status().as_u16(), 400, "{name:?}");
        assert_eq!(
            response.json::<Value>().await.expect("json")["code"],
            "invalid_display_name"
        );
    }
    // A profile sent as NDJSON: 415 naming what this route takes (JSON only).
    let response = app
        .client
        .put(app.url("/v1/influencers/nova"))
        .bearer_auth(&app.admin_key)
        .header("content-type", "application/x-ndjson")
        .body(r#"{"display_name": "Nova", "consent": true}"#)
        .send()
        .await
        .expect("put");
    assert_eq!(response.status().as_u16(), 415);
    let body: Value = response.json().await.expect("json");
    assert_eq!(
        body["message"], r#"unsupported content type "application/x-ndjson"; send application/json"#,
        "{body}"
    );
}

/// `onnx.generator = "magenta"`: the Magenta pair (NHWC, fixed 256²/384², 100-d codes) serves
/// through the same endpoints; its styles are stored under its own encoder version.
#[tokio::test]
async fn the_magenta_backend_serves_when_configured() {
    use stylecast::style::{extract, gram, service};
    let app = crate::helpers::spawn_app_with(|s| s.onnx.generator = "magenta".into()).await;
    let (_, ready) = app.get_json("/readyz").await;
    assert_eq!(ready["models"]["generator"], "magenta", "{ready}");
    add_influencer(&app, "noir_nadia").await;
    let (status, style) = app.get_json("/v1/influencers/noir_nadia/style").await;
    assert_eq!(status, 200);
    assert_eq!(style["style_code"].as_array().map(Vec::len), Some(100));

    let fields = [("user", "u"), ("influencer", "noir_nadia"), ("size", "256")];
    let response = generate(&app, &fields, read(CONTENT)).await;
    assert_eq!(response.status().as_u16(), 200);
    let version = response.headers()["x-model-version"]
        .to_str()
        .expect("ascii")
        .to_string();
    let bytes = response.bytes().await.expect("body");
    let image = media::decode(&bytes, &media::MediaLimits::default()).expect("decodes");
    let photo = media::decode(&read(CONTENT), &media::MediaLimits::default()).expect("decodes");
    assert_eq!(
        image.dimensions(),
        media::fit(&photo, 256, 1).dimensions(),
        "cropped back from the 384² frame to exactly the requested longest side"
    );

    let mut settings = stylecast::config::Settings::load(None).expect("settings");
    settings.onnx.generator = "magenta".into();
    let models = stylecast::startup::load_models(&settings).0.expect("models");
    assert_eq!(version, models.version());
    assert!(version.starts_with(&models.generator.version) && models.generator.name == "magenta_transform");
    let noir = service::influencer_grams(&app.pool, &models, "noir_nadia")
        .await
        .expect("noir grams");
    let output = extract::photo_style(&models, image).await.expect("features").grams;
    let input = extract::photo_style(&models, photo).await.expect("features").grams;
    assert!(
        gram::distance(&output, &noir) < gram::distance(&input, &noir),
        "Magenta's output is closer to noir's style than the photo"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM generations WHERE model_version LIKE '%+%'")
            .await,
        1
    );
}
