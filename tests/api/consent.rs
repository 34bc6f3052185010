//! Consent: an influencer whose consent is withdrawn (or never given) is never used for
//! generation — not when named, not in a mix, not in a user's interest blend, whether the
//! blend comes from affinity, from the ALS model or from popularity.

use serde_json::{json, Value};

use crate::generate::{add_influencer, generate, read, CONTENT};
use crate::helpers::{days_ago, event, spawn_app, TestApp};

async fn set_consent(app: &TestApp, id: &str, consent: bool) {
    let response = app
        .client
        .put(app.url(&format!("/v1/influencers/{id}")))
        .bearer_auth(&app.admin_key)
        .json(&json!({ "display_name": id, "consent": consent }))
        .send()
        .await
        .expect("put");
    assert_eq!(response.status().as_u16(), 200);
}

/// The influencers of a user's interest blend, largest weight first.
async fn interest_blend(app: &TestApp, user: &str) -> (String, Vec<String>) {
    let (status, body) = app.get_json(&format!("/v1/users/{user}/interests")).await;
    assert_eq!(status, 200, "{body}");
    let names = body["blend"]["weights"]
        .as_array()
        .expect("weights")
        .iter()
        .map(|w| w["influencer"].as_str().expect("influencer").to_string())
        .collect();
    (body["blend"]["source"].as_str().unwrap_or("").to_string(), names)
}

/// The influencers named in a generation's `X-Blend` header.
fn blend_header(response: &reqwest::Response) -> Vec<String> {
    let header = response.headers()["x-blend"].to_str().expect("ascii");
    let blend: serde_json::Map<String, Value> = serde_json::from_str(header).expect("json");
    blend.keys().cloned().collect()
}

async fn assert_code(response: reqwest::Response, code: &str) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.expect("json body");
    assert!((400..500).contains(&status), "{code}: status {status}, {body}");
    assert_eq!(body["code"], code, "{body}");
}

#[tokio::test]
async fn an_influencer_without_consent_is_never_used_for_generation() {
    let app = spawn_app().await;
    add_influencer(&app, "noir_nadia").await;
    add_influencer(&app, "neon_nova").await;
    // ana's top affinity by far is noir_nadia; others engage with both, so the ALS model
    // and popularity also rank noir_nadia first.
    let mut events = vec![event("a1", "ana", "noir_nadia", "follow", &days_ago(1.0))];
    events.extend((0..5).map(|n| event(&format!("a-s{n}"), "ana", "noir_nadia", "share", &days_ago(0.5))));
    events.push(event("a-v", "ana", "neon_nova", "view", &days_ago(0.5)));
    for user in ["bo", "cy", "di", "ed"] {
        events.push(event(
            &format!("{user}-f"),
            user,
            "noir_nadia",
            "follow",
            &days_ago(2.0),
        ));
        events.push(event(&format!("{user}-l"), user, "neon_nova", "like", &days_ago(2.0)));
    }
    let response = app.post_events(&Value::Array(events)).await;
    assert_eq!(response.status().as_u16(), 200);

    // With consent, noir_nadia leads ana's blend and can be named: what follows tests consent.
    let (_, before) = interest_blend(&app, "ana").await;
    assert_eq!(before.first().map(String::as_str), Some("noir_nadia"), "{before:?}");
    let named = [("user", "ana"), ("influencer", "noir_nadia"), ("size", "64")];
    let first = generate(&app, &named, read(CONTENT)).await;
    assert_eq!(first.status().as_u16(), 200);

    set_consent(&app, "noir_nadia", false).await;
    // The same request again must not come from the generation cache.
    assert_code(generate(&app, &named, read(CONTENT)).await, "no_style").await;
    let mix = [("user", "ana"), ("mix", "noir_nadia=0.5,neon_nova=0.5"), ("size", "64")];
    assert_code(generate(&app, &mix, read(CONTENT)).await, "no_style").await;
    assert_blends_leave_out(&app, "noir_nadia", "affinity").await;

    let settings = stylecast::config::Settings::load(None).expect("settings");
    stylecast::interest::embed::rebuild(&app.pool, &settings.embedding.als, |_| {})
        .await
        .expect("ALS rebuild");
    assert_blends_leave_out(&app, "noir_nadia", "the ALS model").await;

    // Restoring consent restores the style: the exclusion came from consent alone.
    set_consent(&app, "noir_nadia", true).await;
    let (_, restored) = interest_blend(&app, "ana").await;
    assert!(restored.iter().any(|i| i == "noir_nadia"), "{restored:?}");

    // Generations recorded while consent was withdrawn never name noir_nadia.
    assert_eq!(
        app.count("SELECT count(*) FROM generations WHERE blend ? 'noir_nadia'")
            .await,
        1,
        "only the generation made before consent was withdrawn"
    );
}

/// Neither ana's interests (top affinity: `withdrawn`), nor a generation without a choice,
/// nor the popularity blend of a newcomer name `withdrawn`.
async fn assert_blends_leave_out(app: &TestApp, withdrawn: &str, stage: &str) {
    let (_, blend) = interest_blend(app, "ana").await;
    assert!(!blend.is_empty(), "{stage}: ana still has a blend");
    assert!(!blend.iter().any(|i| i == withdrawn), "{stage}: interests {blend:?}");
    let response = generate(app, &[("user", "ana"), ("size", "64")], read(CONTENT)).await;
    assert_eq!(response.status().as_u16(), 200, "{stage}");
    let used = blend_header(&response);
    assert!(!used.iter().any(|i| i == withdrawn), "{stage}: generated with {used:?}");
    let (source, newcomer) = interest_blend(app, "newcomer").await;
    assert_eq!(source, "popularity", "{stage}");
    assert!(
        !newcomer.iter().any(|i| i == withdrawn),
        "{stage}: popularity {newcomer:?}"
    );
}

#[tokio::test]
async fn an_influencer_who_never_consented_cannot_be_named() {
    let app = spawn_app().await;
    add_influencer(&app, "neon_nova").await;
    set_consent(&app, "vintage_vera", false).await;
    for n in 0..2 {
        // Photos may be stored ahead of consent; they must not make the style usable.
        let response = app
            .client
            .post(app.url("/v1/influencers/vintage_vera/photos"))
            .bearer_auth(&app.admin_key)
            .body(read(&format!("onnx/styles/vintage_vera/{n}.jpg")))
            .send()
            .await
            .expect("photo");
        assert!(response.status().as_u16() < 500);
    }
    let named = [("user", "bo"), ("influencer", "vintage_vera"), ("size", "64")];
    assert_code(generate(&app, &named, read(CONTENT)).await, "no_style").await;
    let (_, blend) = interest_blend(&app, "bo").await;
    assert_eq!(blend, ["neon_nova"]);
}
