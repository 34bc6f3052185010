use serde_json::{json, Value};

use crate::helpers::{days_ago, event, spawn_app, spawn_app_with};

#[tokio::test]
async fn healthz_and_readyz_report_the_live_parts() {
    let app = spawn_app().await;
    let health = app.client.get(app.url("/healthz")).send().await.expect("request");
    assert_eq!(health.status().as_u16(), 200);

    let ready = app.client.get(app.url("/readyz")).send().await.expect("request");
    assert_eq!(ready.status().as_u16(), 200);
    let body: Value = ready.json().await.expect("json");
    assert_eq!(body["ready"], true);
    assert_eq!(body["database"]["migrations_applied"], true);
    assert_eq!(body["cache"], "redis");
    assert_eq!(body["onnxruntime"]["loaded"], true, "{body}");
}

#[tokio::test]
async fn readyz_says_memory_cache_when_redis_is_absent_or_down() {
    let absent = spawn_app_with(|s| s.redis.url = None).await;
    let body: Value = absent
        .client
        .get(absent.url("/readyz"))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(body["cache"], "memory");

    let down = spawn_app_with(|s| s.redis.url = Some("redis://127.0.0.1:1".to_string().into())).await;
    let ready = down.client.get(down.url("/readyz")).send().await.expect("request");
    assert_eq!(
        ready.status().as_u16(),
        200,
        "a dead Redis does not make the service unready"
    );
    let body: Value = ready.json().await.expect("json");
    assert_eq!(body["cache"], "memory");
    let report: Value = down
        .post_events(&json!([event("e", "u", "i", "view", &days_ago(0.1))]))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(report["accepted"], 1);
}

#[tokio::test]
async fn without_the_onnx_runtime_the_service_starts_explains_the_fix_and_still_ingests() {
    // ort allows one runtime per process, so this runs the real binary in its own process.
    let app = spawn_app().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_stylecast"))
        .arg("serve")
        .env("DATABASE_URL", &app.database_url)
        .env("ORT_DYLIB_PATH", "/nonexistent/libonnxruntime.so")
        .env("STYLECAST_ADMIN_KEY", &app.admin_key)
        .env("STYLECAST__SERVER__PORT", port.to_string())
        .env("RUST_LOG", "error")
        .spawn()
        .expect("start stylecast serve");
    let _guard = KillOnDrop(child);
    let base = format!("http://127.0.0.1:{port}");
    let mut ready = None;
    for _ in 0..100 {
        if let Ok(response) = app.client.get(format!("{base}/readyz")).send().await {
            ready = Some(response);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let ready = ready.expect("the service came up");
    assert_eq!(ready.status().as_u16(), 503, "generation is down, so not ready");
    let body: Value = ready.json().await.expect("json");
    assert_eq!(body["onnxruntime"]["loaded"], false);
    let ingest_pool = app
        .client
        .get(format!("{base}/readyz?capability=ingest"))
        .send()
        .await
        .expect("readyz");
    assert_eq!(ingest_pool.status().as_u16(), 200, "ingest is up");
    assert!(
        body["onnxruntime"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("/nonexistent")),
        "{body}"
    );
    assert!(
        body["onnxruntime"]["fix"]
            .as_str()
            .is_some_and(|f| f.contains("install-ort.sh")),
        "{body}"
    );

    let report: Value = app
        .client
        .post(format!("{base}/v1/events"))
        .bearer_auth(&app.admin_key)
        .json(&json!([event("o1", "u", "i", "view", &days_ago(0.1))]))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(report["accepted"], 1);

    assert_eq!(body["models"]["loaded"], false);
    let form = reqwest::multipart::Form::new().text("user", "u").part(
        "photo",
        reqwest::multipart::Part::bytes(vec![1, 2, 3]).file_name("p.png"),
    );
    let generate = app
        .client
        .post(format!("{base}/v1/generate"))
        .bearer_auth(&app.admin_key)
        .multipart(form)
        .send()
        .await
        .expect("request");
    assert_eq!(generate.status().as_u16(), 503);
    assert!(generate.headers().contains_key("retry-after"));
    let error: Value = generate.json().await.expect("json");
    assert_eq!(error["code"], "models_unavailable");
    assert!(
        error["message"].as_str().is_some_and(|m| m.contains("install-ort.sh")),
        "{error}"
    );
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn metrics_count_requests_and_events() {
    let app = spawn_app().await;
    let t = days_ago(0.1);
    app.post_events(&json!([
        event("m1", "u", "i", "view", &t),
        event("m1", "u", "i", "view", &t),
        json!(1)
    ]))
    .await;
    let text = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("request")
        .text()
        .await
        .expect("text");
    assert!(text.contains("stylecast_http_requests_total{"), "{text}");
    assert!(text.contains(r#"route="/v1/events""#));
    assert!(text.contains("stylecast_http_request_duration_seconds_bucket"));
    for outcome in ["accepted", "duplicate", "rejected"] {
        assert!(
            text.contains(&format!(r#"stylecast_events_total{{outcome="{outcome}"}}"#)),
            "{outcome}"
        );
    }
}

#[tokio::test]
async fn graceful_shutdown_finishes_the_batch_in_flight() {
    let app = spawn_app().await;
    let t = days_ago(0.1);
    let batch: Vec<Value> = (0..10_000)
        .map(|n| event(&format!("g{n}"), &format!("u{}", n % 300), "i", "view", &t))
        .collect();
    let request = app
        .client
        .post(app.url("/v1/events"))
        .bearer_auth(&app.admin_key)
        .json(&batch)
        .send();
    let in_flight = tokio::spawn(request);
    tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    app.handle.stop(true).await;
    let response = in_flight.await.expect("task").expect("the in-flight batch is answered");
    assert_eq!(response.status().as_u16(), 200);
    let report: Value = response.json().await.expect("json");
    assert_eq!(report["accepted"], 10_000);
    assert_eq!(app.count("SELECT count(*) FROM engagement_events").await, 10_000);
    let health = app.url("/healthz");
    app.server.await.expect("server task").expect("server stopped cleanly");
    assert!(app.client.get(health).send().await.is_err(), "the server is stopped");
}

/// Without the models (here: a model folder that does not exist) generation answers 503, so
/// `/readyz` does too; a pool that only ingests asks about `ingest` and stays in rotation.
#[tokio::test]
async fn readyz_is_unready_while_generation_is_down_and_answers_per_capability() {
    let app = spawn_app_with(|s| s.onnx.model_dir = "/nonexistent/stylecast-models".into()).await;
    let (status, body) = app.get_json("/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["ready"], false);
    assert_eq!(
        body["capabilities"],
        json!({"ingest": true, "recommend": true, "generate": false}),
        "{body}"
    );
    let photo = crate::generate::read(crate::generate::CONTENT);
    let generation = crate::generate::generate(&app, &[("user", "ana"), ("size", "64")], photo).await;
    assert_eq!(generation.status().as_u16(), 503, "generation itself is down");
    for (capability, expected) in [("ingest", 200), ("recommend", 200), ("generate", 503)] {
        let (status, body) = app.get_json(&format!("/readyz?capability={capability}")).await;
        assert_eq!(status, expected, "{capability}: {body}");
        assert_eq!(body["ready"], expected == 200, "{capability}");
    }
    let (status, body) = app.get_json("/readyz?capability=everything").await;
    assert_eq!((status, body["code"].as_str()), (400, Some("invalid_query")), "{body}");

    // With the models every capability is up.
    let healthy = spawn_app().await;
    let (status, body) = healthy.get_json("/readyz?capability=generate").await;
    assert_eq!(
        (status, body["capabilities"]["generate"].as_bool()),
        (200, Some(true)),
        "{body}"
    );
}

/// The OpenAPI document types image bodies as binary strings (clients generate byte
/// uploads, not integer arrays) and lists every Server-Timing stage.
#[tokio::test]
async fn openapi_types_image_bodies_as_binary_and_lists_every_timing_stage() {
    let app = spawn_app().await;
    let (status, doc) = app.get_json("/openapi.json").await;
    assert_eq!(status, 200);
    let generate = &doc["paths"]["/v1/generate"]["post"];
    let png = &generate["responses"]["200"]["content"]["image/png"]["schema"];
    let png = match png.get("$ref").and_then(Value::as_str) {
        Some(reference) => &doc["components"]["schemas"][reference.rsplit('/').next().unwrap_or("")],
        None => png,
    };
    assert_eq!(
        (png["type"].as_str(), png["format"].as_str()),
        (Some("string"), Some("binary")),
        "{png}"
    );
    let timing = generate["responses"]["200"]["headers"]["Server-Timing"]["description"]
        .as_str()
        .unwrap_or_default();
    for stage in [
        "styles", "cache", "decode", "encoder", "tensors", "queue", "model", "encode", "record", "total",
    ] {
        assert!(
            timing.contains(stage),
            "Server-Timing description lacks {stage}: {timing}"
        );
    }
}
