//! Honest bytes (issue 20): every response carries its own generation, even from the cache;
//! the cache belongs to one database; truncated uploads are refused on every route.

use redis::AsyncCommands;
use serde_json::Value;
use stylecast::media::{self, OutputFormat};

use crate::generate::{add_influencer, generate, read, CONTENT};
use crate::helpers::{redis_url, spawn_app, spawn_app_with, TestApp};
use crate::provenance::verify;

/// One generation through the API: (x-generation-id, x-cache, bytes).
async fn generation(app: &TestApp, user: &str, format: &str) -> (String, String, Vec<u8>) {
    let fields = [
        ("user", user),
        ("influencer", "neon_nova"),
        ("size", "256"),
        ("format", format),
    ];
    let response = generate(app, &fields, read(CONTENT)).await;
    assert_eq!(response.status().as_u16(), 200);
    let header = |name: &str| response.headers()[name].to_str().expect("ascii").to_string();
    let (id, cache) = (header("x-generation-id"), header("x-cache"));
    (id, cache, response.bytes().await.expect("body").to_vec())
}

/// The watermark and the XMP of `bytes` both name `id`, and `verify` finds that generation,
/// made for `user`.
async fn assert_carries(app: &TestApp, bytes: &[u8], id: &str, user: &str) {
    let (status, verdict) = verify(app, bytes.to_vec()).await;
    assert_eq!(status, 200, "{verdict}");
    assert_eq!(verdict["found"], true, "{verdict}");
    assert_eq!(verdict["generation_id"], id, "watermark: {verdict}");
    assert_eq!(verdict["xmp"]["generation_id"], id, "XMP: {verdict}");
    assert_eq!(verdict["generation"]["user_external_id"], user, "{verdict}");
}

#[tokio::test]
async fn two_users_on_one_cache_entry_each_get_their_own_generation() {
    let app = spawn_app().await;
    add_influencer(&app, "neon_nova").await;
    let (ana_id, ana_cache, ana_bytes) = generation(&app, "ana", "png").await;
    let (ben_id, ben_cache, ben_bytes) = generation(&app, "ben", "png").await;
    // The second output format shares the pixels too.
    let (cy_id, cy_cache, cy_bytes) = generation(&app, "cy", "jpeg").await;
    assert_eq!(
        (ana_cache.as_str(), ben_cache.as_str(), cy_cache.as_str()),
        ("miss", "hit", "hit")
    );
    assert_ne!(ana_id, ben_id);
    assert_carries(&app, &ana_bytes, &ana_id, "ana").await;
    assert_carries(&app, &ben_bytes, &ben_id, "ben").await;
    assert_carries(&app, &cy_bytes, &cy_id, "cy").await;
    // The same pixels, marked apart: each watermark moves pixels by a few levels on average.
    let limits = media::MediaLimits::default();
    let (ana, ben) = (
        media::decode(&ana_bytes, &limits).expect("ana"),
        media::decode(&ben_bytes, &limits).expect("ben"),
    );
    assert_eq!(ana.dimensions(), ben.dimensions());
    let total: u64 = ana
        .as_raw()
        .iter()
        .zip(ben.as_raw())
        .map(|(a, b)| u64::from(a.abs_diff(*b)))
        .sum();
    let mean = total as f64 / ana.as_raw().len() as f64;
    assert!(mean < 4.0, "pixels differ by {mean:.2} levels on average");
    let recorded: Vec<(String, bool)> =
        sqlx::query_as("SELECT user_external_id, cache_hit FROM generations ORDER BY created_at")
            .fetch_all(&app.pool)
            .await
            .expect("generations");
    assert_eq!(
        recorded,
        vec![("ana".into(), false), ("ben".into(), true), ("cy".into(), true)]
    );
    assert_eq!(
        app.count("SELECT count(DISTINCT output_sha256) FROM generations").await,
        3,
        "each output is its own file"
    );
}

#[tokio::test]
async fn two_databases_on_one_redis_never_serve_each_others_entries() {
    let shared_prefix = format!("test:{}:", uuid::Uuid::new_v4().simple());
    let (first_prefix, second_prefix) = (shared_prefix.clone(), shared_prefix.clone());
    let first = spawn_app_with(move |s| s.redis.key_prefix = first_prefix).await;
    let second = spawn_app_with(move |s| s.redis.key_prefix = second_prefix).await;
    for app in [&first, &second] {
        add_influencer(app, "neon_nova").await;
    }
    let deployment = |app: &TestApp| {
        let pool = app.pool.clone();
        async move {
            let id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM deployment")
                .fetch_one(&pool)
                .await
                .expect("deployment id");
            id
        }
    };
    let (first_deployment, second_deployment) = (deployment(&first).await, deployment(&second).await);
    assert_ne!(
        first_deployment, second_deployment,
        "each database makes its own at migrate"
    );

    let (first_id, first_cache, _) = generation(&first, "ana", "png").await;
    let (second_id, second_cache, second_bytes) = generation(&second, "ana", "png").await;
    assert_eq!((first_cache.as_str(), second_cache.as_str()), ("miss", "miss"));
    assert_carries(&second, &second_bytes, &second_id, "ana").await;
    let (status, verdict) = verify(&first, second_bytes).await;
    assert_eq!((status, verdict["code"].as_str()), (200, Some("unknown_generation")));
    assert_ne!(first_id, second_id);

    // Recommendations are cached per deployment too.
    for app in [&first, &second] {
        let (status, body) = app.get_json("/v1/users/ana/recommendations").await;
        assert_eq!(status, 200, "{body}");
    }
    let client = redis::Client::open(redis_url()).expect("redis url");
    let mut conn = client.get_multiplexed_async_connection().await.expect("redis");
    let keys: Vec<String> = conn.keys(format!("{shared_prefix}*")).await.expect("keys");
    for deployment in [first_deployment, second_deployment] {
        let own = format!("{shared_prefix}{}:", deployment.simple());
        assert!(
            keys.iter().any(|k| k.starts_with(&format!("{own}pixels:"))),
            "{own}: {keys:?}"
        );
        assert!(
            keys.iter().any(|k| k.starts_with(&format!("{own}recs:"))),
            "{own}: {keys:?}"
        );
    }
    assert!(
        keys.iter().all(
            |k| k.starts_with(&format!("{shared_prefix}{}:", first_deployment.simple()))
                || k.starts_with(&format!("{shared_prefix}{}:", second_deployment.simple()))
        ),
        "every key is under a deployment: {keys:?}"
    );
}

/// A photo-like upload in each accepted format.
fn uploads() -> Vec<(&'static str, Vec<u8>)> {
    let photo = media::decode(&read(CONTENT), &media::MediaLimits::default()).expect("photo");
    [
        ("jpeg", OutputFormat::Jpeg),
        ("png", OutputFormat::Png),
        ("webp", OutputFormat::Webp),
    ]
    .into_iter()
    .map(|(name, format)| (name, media::encode(&photo, format).expect("encode")))
    .collect()
}

/// Every route that takes an image, with the upload as its body.
async fn send_to(app: &TestApp, route: &str, body: Vec<u8>) -> (u16, Value) {
    let request = match route {
        "generate" => return respond(generate(app, &[("user", "ana"), ("influencer", "neon_nova")], body).await).await,
        "influencer_photo" => app.client.post(app.url("/v1/influencers/neon_nova/photos")),
        "user_photo" => app.client.put(app.url("/v1/users/ana/photo")),
        "verify" => app.client.post(app.url("/v1/provenance/verify")),
        other => panic!("no route {other}"),
    };
    let response = request
        .bearer_auth(&app.admin_key)
        .header("content-type", "application/octet-stream")
        .body(body)
        .send()
        .await
        .expect("send");
    respond(response).await
}

async fn respond(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn truncated_uploads_get_400_on_every_route() {
    let app = spawn_app().await;
    add_influencer(&app, "neon_nova").await;
    for (format, whole) in uploads() {
        for route in ["generate", "influencer_photo", "user_photo", "verify"] {
            for keep in [1.0 / 3.0, 2.0 / 3.0, 0.97] {
                let cut = whole[..(whole.len() as f64 * keep) as usize].to_vec();
                let (status, body) = send_to(&app, route, cut).await;
                assert_eq!(
                    (status, body["code"].as_str()),
                    (400, Some("truncated_image")),
                    "{format} cut to {keep:.2} sent to {route}: {body}"
                );
                assert!(
                    body["message"].as_str().unwrap_or("").contains("truncated"),
                    "{format} {route}: {body}"
                );
            }
        }
    }
    // The whole files still go through (verify answers that they carry no watermark).
    for (format, whole) in uploads() {
        for route in ["generate", "influencer_photo", "user_photo", "verify"] {
            let (status, body) = send_to(&app, route, whole.clone()).await;
            assert!(status < 300, "{format} whole to {route}: {status} {body}");
        }
    }
}

/// A file corrupted inside (not cut) is refused too: a JPEG whose first segment's length
/// is wrong, so the next marker is not where it says.
#[tokio::test]
async fn a_jpeg_with_broken_markers_gets_400() {
    let app = spawn_app().await;
    add_influencer(&app, "neon_nova").await;
    let (_, mut jpeg) = uploads().remove(0);
    jpeg[4..6].copy_from_slice(&[0x00, 0x03]);
    let (status, body) = send_to(&app, "generate", jpeg).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("corrupt_image")), "{body}");
}

/// The proptest targets of `tests/fuzz_inputs.rs`, driven through the HTTP routes: a real
/// upload in each format, with bytes overwritten and cut anywhere, sent to every route that
/// takes an image. Each answer is a success or a 4xx whose JSON body names the problem;
/// never a 5xx, a dropped connection or a body without a code.
#[test]
fn mangled_uploads_on_every_route_get_a_coded_answer() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestCaseError, TestRunner};

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let app = runtime.block_on(async {
        let app = spawn_app().await;
        add_influencer(&app, "neon_nova").await;
        app
    });
    let uploads = uploads();
    let mangled = (
        prop::sample::select(vec![0usize, 1, 2]),
        prop::sample::select(vec!["generate", "influencer_photo", "user_photo", "verify"]),
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
        prop::option::of(any::<prop::sample::Index>()),
    );
    // Each case that decodes runs the generator, so fewer cases than the in-process targets.
    let mut runner = TestRunner::new(Config {
        cases: 48,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&mangled, |(format, route, flips, cut)| {
            let mut body = uploads[format].1.clone();
            for (at, value) in flips {
                let i = at.index(body.len());
                body[i] = value;
            }
            if let Some(cut) = cut {
                body.truncate(cut.index(body.len()) + 1);
            }
            let (status, answer) = runtime.block_on(send_to(&app, route, body));
            let coded = answer["code"].as_str().is_some_and(|c| !c.is_empty())
                && answer["message"].as_str().is_some_and(|m| !m.is_empty());
            if status < 300 || ((400..500).contains(&status) && coded) {
                Ok(())
            } else {
                Err(TestCaseError::fail(format!(
                    "{} to {route}: {status} {answer}",
                    uploads[format].0
                )))
            }
        })
        .expect("every mangled upload gets a success or a coded 4xx");
}
