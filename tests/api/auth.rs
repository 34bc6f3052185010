use serde_json::Value;
use stylecast::keys::Scope;

use crate::helpers::spawn_app;

#[tokio::test]
async fn missing_or_wrong_keys_get_401_json() {
    let app = spawn_app().await;
    let no_key = app
        .client
        .post(app.url("/v1/events"))
        .body("[]")
        .send()
        .await
        .expect("request");
    assert_eq!(no_key.status().as_u16(), 401);
    assert_eq!(no_key.json::<Value>().await.expect("json")["code"], "unauthorized");

    let forged = "sck_00000000000000000000000000000000_deadbeef";
    for key in ["nonsense", forged, &format!("{}x", app.admin_key)] {
        let response = app.post_events_as(key, "application/json", b"[]".to_vec()).await;
        assert_eq!(response.status().as_u16(), 401, "{key}");
        assert_eq!(response.json::<Value>().await.expect("json")["code"], "unauthorized");
    }
    let basic = app
        .client
        .get(app.url("/v1/users/u1"))
        .basic_auth("a", Some("b"))
        .send()
        .await
        .expect("request");
    assert_eq!(basic.status().as_u16(), 401);
}

#[tokio::test]
async fn a_key_without_the_scope_gets_403_json() {
    let app = spawn_app().await;
    let reader = app.key_with_scopes(&[Scope::Read]).await;
    let response = app.post_events_as(&reader, "application/json", b"[]".to_vec()).await;
    assert_eq!(response.status().as_u16(), 403);
    let error: Value = response.json().await.expect("json");
    assert_eq!(error["code"], "forbidden");
    assert!(error["message"].as_str().expect("message").contains("ingest"));

    let ingester = app.key_with_scopes(&[Scope::Ingest]).await;
    let read = app
        .client
        .get(app.url("/v1/users/u1"))
        .bearer_auth(&ingester)
        .send()
        .await
        .expect("request");
    assert_eq!(read.status().as_u16(), 403);
    let ok = app.post_events_as(&ingester, "application/json", b"[]".to_vec()).await;
    assert_eq!(ok.status().as_u16(), 200);
}

#[tokio::test]
async fn a_revoked_key_stops_working() {
    let app = spawn_app().await;
    let token = app.key_with_scopes(&[Scope::Ingest]).await;
    let id = stylecast::keys::parse_token(&token).expect("token").id;
    assert_eq!(
        app.post_events_as(&token, "application/json", b"[]".to_vec())
            .await
            .status()
            .as_u16(),
        200
    );
    assert!(stylecast::store::keys::revoke(&app.pool, id).await.expect("revoke"));
    assert_eq!(
        app.post_events_as(&token, "application/json", b"[]".to_vec())
            .await
            .status()
            .as_u16(),
        401
    );
}

#[tokio::test]
async fn keys_are_stored_only_as_salted_hashes() {
    let app = spawn_app().await;
    let token = app.key_with_scopes(&[Scope::Read]).await;
    let secret = token.rsplit('_').next().expect("secret");
    let leaked = app
        .count(&format!(
            "SELECT count(*) FROM api_keys WHERE encode(secret_hash, 'hex') LIKE '%{secret}%' OR name LIKE '%{secret}%'"
        ))
        .await;
    assert_eq!(leaked, 0);
    assert_eq!(app.count("SELECT count(DISTINCT salt) FROM api_keys").await, 1);
}

/// Every authenticated route, with the one scope it needs.
/// (`GET /v1/images/{id}` is public by design: its id is the SHA-256 of the image.)
const ROUTES: [(&str, &str, Scope); 15] = [
    ("POST", "/v1/events", Scope::Ingest),
    ("GET", "/v1/users/u1", Scope::Read),
    ("GET", "/v1/users/u1/recommendations", Scope::Read),
    ("GET", "/v1/users/u1/interests", Scope::Read),
    ("GET", "/v1/influencers/i1", Scope::Read),
    ("GET", "/v1/influencers/i1/style", Scope::Read),
    ("PUT", "/v1/influencers/i1", Scope::Admin),
    ("POST", "/v1/influencers/i1/photos", Scope::Admin),
    ("POST", "/v1/generate", Scope::Generate),
    ("PUT", "/v1/users/u1/photo", Scope::Generate),
    ("DELETE", "/v1/users/u1/photo", Scope::Generate),
    ("GET", "/v1/users/u1/feed", Scope::Read),
    ("POST", "/v1/provenance/verify", Scope::Read),
    ("DELETE", "/v1/users/u1", Scope::Erase),
    ("DELETE", "/v1/influencers/i1", Scope::Erase),
];

#[tokio::test]
async fn every_route_checks_its_scope_for_every_key() {
    let app = spawn_app().await;
    for scope in Scope::ALL {
        let key = app.key_with_scopes(&[scope]).await;
        for (method, path, needed) in ROUTES {
            let request = app
                .client
                .request(method.parse().expect("method"), app.url(path))
                .bearer_auth(&key);
            let request = match method {
                "PUT" if path.starts_with("/v1/influencers") => request.json(&serde_json::json!({"consent": true})),
                "POST" if path == "/v1/events" => request.json(&serde_json::json!([])),
                _ => request,
            };
            let status = request.send().await.expect("request").status().as_u16();
            // Admin keys may erase too.
            if scope == needed || (needed == Scope::Erase && scope == Scope::Admin) {
                assert!(status != 401 && status != 403, "{method} {path} with {scope}: {status}");
            } else {
                assert_eq!(status, 403, "{method} {path} with {scope}");
            }
        }
        for (method, path, _) in ROUTES {
            let anonymous = app
                .client
                .request(method.parse().expect("method"), app.url(path))
                .send()
                .await
                .expect("request");
            assert_eq!(anonymous.status().as_u16(), 401, "{method} {path} without a key");
        }
    }
}

#[tokio::test]
async fn a_key_over_its_rate_limit_gets_429_with_retry_after_and_others_are_unaffected() {
    let app = crate::helpers::spawn_app_with(|s| {
        s.auth.rate_limit_per_sec = 1;
        s.auth.rate_limit_burst = 3;
    })
    .await;
    let busy = app.key_with_scopes(&[Scope::Read]).await;
    let calm = app.key_with_scopes(&[Scope::Read]).await;
    let get = |key: String| {
        let request = app.client.get(app.url("/v1/users/nobody")).bearer_auth(key);
        async move { request.send().await.expect("request") }
    };
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(get(busy.clone()).await.status().as_u16());
    }
    assert_eq!(&statuses[..3], &[404, 404, 404], "the burst is allowed");
    assert!(statuses[3..].iter().all(|s| *s == 429), "{statuses:?}");
    let limited = get(busy.clone()).await;
    assert!(limited.headers().contains_key("retry-after"));
    assert_eq!(limited.json::<Value>().await.expect("json")["code"], "rate_limited");
    assert_eq!(get(calm).await.status().as_u16(), 404, "another key has its own budget");
}
