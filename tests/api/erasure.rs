//! Erasure of a user, proved by a search: after `DELETE /v1/users/{user}` a full data dump
//! of the database and every Redis key and value of the deployment hold neither the user's
//! external id nor their photo's SHA-256, and no table keyed by user holds their id.

use std::time::Duration;

use redis::AsyncCommands;
use serde_json::{json, Value};
use stylecast::keys::Scope;

use crate::feed::{put_photo, until_ready};
use crate::generate::{add_influencer, generate, read, CONTENT};
use crate::helpers::{days_ago, event, hex_digest, spawn_app, TestApp};
use crate::provenance::verify;

/// Distinctive, so a search for it cannot hit anything else.
const SUBJECT: &str = "erasure_subject_q7x";

/// `DELETE path` (a user's or an influencer's) with the given key.
async fn erase(app: &TestApp, key: &str, path: &str) -> (u16, Value) {
    let response = app
        .client
        .delete(app.url(path))
        .bearer_auth(key)
        .send()
        .await
        .expect("delete user");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json"))
}

/// The subject's events: event ids built from the user id, as platforms often do.
fn subject_events() -> Value {
    let t = days_ago(1.0);
    json!([
        event(&format!("{SUBJECT}-1"), SUBJECT, "noir_nadia", "follow", &t),
        event(&format!("{SUBJECT}-2"), SUBJECT, "noir_nadia", "share", &t),
        event(&format!("{SUBJECT}-3"), SUBJECT, "neon_nova", "like", &t),
        event(&format!("{SUBJECT}-4"), SUBJECT, "neon_nova", "view", &t),
        event(&format!("{SUBJECT}-5"), SUBJECT, "neon_nova", "hide", &t),
        event("bo-1", "bo", "neon_nova", "follow", &t),
        event("bo-2", "bo", "noir_nadia", "like", &t),
    ])
}

/// Every key of this app's deployment in Redis with its value's bytes (strings, and the
/// fields of stream entries).
async fn redis_dump(app: &TestApp) -> Vec<(String, Vec<u8>)> {
    let client = redis::Client::open(crate::helpers::redis_url()).expect("redis url");
    let mut conn = client.get_multiplexed_async_connection().await.expect("redis");
    let keys: Vec<String> = conn.keys(format!("{}*", app.redis_prefix)).await.expect("keys");
    let mut dump = Vec::new();
    for key in keys {
        let kind: String = redis::cmd("TYPE").arg(&key).query_async(&mut conn).await.expect("type");
        let value: Vec<u8> = match kind.as_str() {
            "string" => conn.get(&key).await.expect("get"),
            "stream" => {
                let entries: redis::streams::StreamRangeReply = conn.xrange_all(&key).await.expect("xrange");
                format!("{:?}", entries.ids.iter().map(|e| &e.map).collect::<Vec<_>>()).into_bytes()
            }
            _ => Vec::new(),
        };
        dump.push((key, value));
    }
    dump
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn an_erased_user_is_found_nowhere_and_their_images_keep_anonymous_provenance() {
    let app = spawn_app().await;
    for id in ["noir_nadia", "neon_nova"] {
        add_influencer(&app, id).await;
    }
    assert_eq!(app.post_events(&subject_events()).await.status().as_u16(), 200);
    let photo = read(CONTENT);
    let upload_sha256 = hex_digest(&photo);
    assert_eq!(put_photo(&app, SUBJECT, photo.clone()).await.0, 201);
    let stored_sha256: String = sqlx::query_scalar(
        "SELECT p.sha256 FROM user_photos p JOIN users u ON u.id = p.user_id WHERE u.external_id = $1",
    )
    .bind(SUBJECT)
    .fetch_one(&app.pool)
    .await
    .expect("stored photo");
    until_ready(&app, SUBJECT, Duration::from_secs(60)).await;
    let settings = stylecast::config::Settings::load(None).expect("settings");
    stylecast::interest::embed::rebuild(&app.pool, &settings.embedding.als, |_| {})
        .await
        .expect("rebuild");
    let image = generate(
        &app,
        &[("user", SUBJECT), ("influencer", "noir_nadia"), ("size", "256")],
        photo,
    )
    .await;
    assert_eq!(image.status().as_u16(), 200);
    let image = image.bytes().await.expect("image").to_vec();
    let (status, _) = app.get_json(&format!("/v1/users/{SUBJECT}/recommendations")).await;
    assert_eq!(status, 200);
    let user_id: i64 = sqlx::query_scalar("SELECT id FROM users WHERE external_id = $1")
        .bind(SUBJECT)
        .fetch_one(&app.pool)
        .await
        .expect("user id");
    assert!(
        redis_dump(&app)
            .await
            .iter()
            .any(|(k, v)| k.contains(SUBJECT) || contains(v, SUBJECT)),
        "before erasure Redis holds the user (recommendations cache)"
    );

    let reader = app
        .key_with_scopes(&[Scope::Read, Scope::Ingest, Scope::Generate])
        .await;
    assert_eq!(
        erase(&app, &reader, &format!("/v1/users/{SUBJECT}")).await.0,
        403,
        "erasure needs the erase scope"
    );
    let (status, report) = erase(&app, &app.admin_key, &format!("/v1/users/{SUBJECT}")).await;
    assert_eq!(status, 200, "{report}");
    let removed = &report["removed"];
    assert_eq!(removed["events"], 5, "{report}");
    assert_eq!(removed["event_keys"], 5, "{report}");
    assert_eq!(
        (removed["follows"].as_u64(), removed["photos"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(removed["hides"], 1, "{report}");
    assert!(removed["images"].as_u64() >= Some(1), "feed images: {report}");
    assert!(
        removed["generations_anonymised"].as_u64() >= Some(2),
        "feed and request: {report}"
    );
    assert!(removed["vectors"].as_u64() >= Some(1), "{report}");

    // Idempotent by answer: nothing is left to find.
    let (status, again) = erase(&app, &app.admin_key, &format!("/v1/users/{SUBJECT}")).await;
    assert_eq!((status, again["code"].as_str()), (404, Some("unknown_user")), "{again}");

    // The image still verifies to its generation, which names no user.
    let (status, verdict) = verify(&app, image).await;
    assert_eq!(status, 200, "{verdict}");
    let generation = &verdict["generation"];
    assert_eq!(generation["user_external_id"], Value::Null, "{verdict}");
    assert!(generation["user_erased_at"].is_string(), "{verdict}");
    assert_eq!(generation["blend"], json!({"noir_nadia": 1.0}), "{verdict}");

    // A search of everything the database holds.
    let dump = std::process::Command::new("pg_dump")
        .args(["--data-only", "--no-owner", &app.database_url])
        .output()
        .expect("run pg_dump");
    assert!(dump.status.success(), "{}", String::from_utf8_lossy(&dump.stderr));
    let dump = String::from_utf8_lossy(&dump.stdout);
    assert!(dump.contains("noir_nadia"), "the dump holds data");
    for secret in [SUBJECT, upload_sha256.as_str(), stored_sha256.as_str()] {
        assert!(!dump.contains(secret), "pg_dump still holds {secret}");
    }
    let hashes = app
        .count("SELECT count(*) FROM erasure_log WHERE subject_kind = 'user' AND length(subject_hash) = 64")
        .await;
    assert_eq!(hashes, 1, "only the erasure log's salted hash is left");
    // No table keyed by user holds the internal id.
    let keyed: Vec<String> = sqlx::query_scalar(
        "SELECT c.table_name::text FROM information_schema.columns c
         JOIN information_schema.tables t USING (table_schema, table_name)
         WHERE c.table_schema = 'public' AND c.column_name = 'user_id' AND t.table_type = 'BASE TABLE'",
    )
    .fetch_all(&app.pool)
    .await
    .expect("tables keyed by user");
    assert!(keyed.len() >= 10, "{keyed:?}");
    for table in keyed {
        let left = app
            .count(&format!("SELECT count(*) FROM \"{table}\" WHERE user_id = {user_id}"))
            .await;
        assert_eq!(left, 0, "{table} still references the user");
    }
    assert_eq!(
        app.count(&format!("SELECT count(*) FROM users WHERE id = {user_id}"))
            .await,
        0
    );
    // And of everything Redis holds for this deployment.
    for (key, value) in redis_dump(&app).await {
        for secret in [SUBJECT, upload_sha256.as_str(), stored_sha256.as_str()] {
            assert!(
                !key.contains(secret) && !contains(&value, secret),
                "Redis {key} holds {secret}"
            );
        }
    }

    // Others are untouched.
    let (status, bo) = app.get_json("/v1/users/bo").await;
    assert_eq!(status, 200, "{bo}");
}

#[tokio::test]
async fn events_of_an_erased_user_sent_again_are_refused_and_bring_nobody_back() {
    let app = spawn_app().await;
    assert_eq!(app.post_events(&subject_events()).await.status().as_u16(), 200);
    assert_eq!(
        erase(&app, &app.admin_key, &format!("/v1/users/{SUBJECT}")).await.0,
        200
    );

    // A platform's retry of the same batch: the subject's five are refused, bo's are
    // duplicates, nothing is stored for the subject.
    let report: Value = app.post_events(&subject_events()).await.json().await.expect("json");
    assert_eq!(report["accepted"], 0, "{report}");
    assert_eq!(report["duplicates"], 2, "{report}");
    let rejected = report["rejected"].as_array().expect("rejected");
    assert_eq!(rejected.len(), 5, "{report}");
    assert!(rejected.iter().all(|r| r["code"] == "erased_user"), "{report}");
    assert_eq!(
        app.count(&format!("SELECT count(*) FROM users WHERE external_id = '{SUBJECT}'"))
            .await,
        0
    );
    let (status, _) = app.get_json(&format!("/v1/users/{SUBJECT}")).await;
    assert_eq!(status, 404, "the user did not come back");

    // With the refusal turned off, re-sent events make a new user (documented).
    let lenient = crate::helpers::spawn_app_with(|s| s.ingest.refuse_erased_user_days = 0.0).await;
    assert_eq!(lenient.post_events(&subject_events()).await.status().as_u16(), 200);
    assert_eq!(
        erase(&lenient, &lenient.admin_key, &format!("/v1/users/{SUBJECT}"))
            .await
            .0,
        200
    );
    let report: Value = lenient.post_events(&subject_events()).await.json().await.expect("json");
    assert_eq!(report["accepted"], 5, "{report}");
}

#[tokio::test]
async fn an_erased_influencer_leaves_recommendations_blends_and_feeds_at_once_and_is_found_nowhere() {
    const GONE: &str = "neon_nova";
    let app = spawn_app().await;
    for id in ["noir_nadia", GONE] {
        add_influencer(&app, id).await;
    }
    let t = days_ago(1.0);
    let events = json!([
        event("e1", "ana", "noir_nadia", "like", &t),
        event("e2", "ana", GONE, "share", &t),
        event("e3", "bo", GONE, "follow", &t),
        event("e4", "bo", "noir_nadia", "view", &t),
        event("e5", "cy", GONE, "hide", &t),
        event("e6", "dee", "noir_nadia", "follow", &t),
    ]);
    assert_eq!(app.post_events(&events).await.status().as_u16(), 200);
    let photo_hashes: Vec<String> = sqlx::query_scalar(
        "SELECT p.sha256 FROM influencer_photos p JOIN influencers i ON i.id = p.influencer_id WHERE i.external_id = $1",
    )
    .bind(GONE)
    .fetch_all(&app.pool)
    .await
    .expect("photo hashes");
    assert!(!photo_hashes.is_empty());
    assert_eq!(put_photo(&app, "ana", read(CONTENT)).await.0, 201);
    let before = until_ready(&app, "ana", Duration::from_secs(60)).await;
    assert!(before.to_string().contains(GONE), "{before}");
    let settings = stylecast::config::Settings::load(None).expect("settings");
    stylecast::interest::embed::rebuild(&app.pool, &settings.embedding.als, |_| {})
        .await
        .expect("rebuild");
    let mix = [
        ("user", "ana"),
        ("mix", "noir_nadia=0.5,neon_nova=0.5"),
        ("size", "256"),
    ];
    let image = generate(&app, &mix, read(CONTENT)).await;
    assert_eq!(image.status().as_u16(), 200);
    let image = image.bytes().await.expect("image").to_vec();
    tokio::time::sleep(Duration::from_secs(6)).await; // the recommender's model re-check
    let (_, recs) = app.get_json("/v1/users/dee/recommendations?k=10").await;
    assert_eq!(recs["strategy"], "als", "{recs}");
    assert!(recs.to_string().contains(GONE), "{recs}");

    let path = format!("/v1/influencers/{GONE}");
    let (status, report) = erase(&app, &app.admin_key, &path).await;
    assert_eq!(status, 200, "{report}");
    let removed = &report["removed"];
    assert_eq!(
        (removed["events"].as_u64(), removed["follows"].as_u64()),
        (Some(3), Some(1)),
        "{report}"
    );
    assert_eq!(
        (removed["hides"].as_u64(), removed["styles"].as_u64()),
        (Some(1), Some(1)),
        "{report}"
    );
    assert!(
        removed["photos"].as_u64() >= Some(1) && removed["images"].as_u64() >= Some(1),
        "{report}"
    );
    assert!(removed["generations_anonymised"].as_u64() >= Some(2), "{report}");
    let (status, again) = erase(&app, &app.admin_key, &path).await;
    assert_eq!(
        (status, again["code"].as_str()),
        (404, Some("unknown_influencer")),
        "{again}"
    );

    // Gone from recommendations (the model in memory too) and blends at once.
    let (_, recs) = app.get_json("/v1/users/dee/recommendations?k=10").await;
    assert!(!recs.to_string().contains(GONE), "{recs}");
    let (_, popular) = app.get_json("/v1/users/newcomer/recommendations?k=10").await;
    assert!(!popular.to_string().contains(GONE), "{popular}");
    let (_, interests) = app.get_json("/v1/users/ana/interests").await;
    assert!(!interests.to_string().contains(GONE), "{interests}");
    // Feeds re-render without them.
    let after = until_ready(&app, "ana", Duration::from_secs(60)).await;
    assert!(!after.to_string().contains(GONE), "{after}");
    // An image made with them still verifies; its blend keeps their share, unnamed.
    let (status, verdict) = verify(&app, image).await;
    assert_eq!(status, 200, "{verdict}");
    let blend = &verdict["generation"]["blend"];
    assert_eq!(blend["erased_influencer"], 0.5, "{verdict}");
    assert_eq!(blend["noir_nadia"], 0.5, "{verdict}");

    let dump = std::process::Command::new("pg_dump")
        .args(["--data-only", "--no-owner", &app.database_url])
        .output()
        .expect("run pg_dump");
    assert!(dump.status.success(), "{}", String::from_utf8_lossy(&dump.stderr));
    let dump = String::from_utf8_lossy(&dump.stdout);
    assert!(dump.contains("noir_nadia"), "the dump holds data");
    for secret in std::iter::once(GONE).chain(photo_hashes.iter().map(String::as_str)) {
        assert!(!dump.contains(secret), "pg_dump still holds {secret}");
    }
    for (key, value) in redis_dump(&app).await {
        assert!(
            !key.contains(GONE) && !contains(&value, GONE),
            "Redis {key} holds {GONE}"
        );
    }
}
