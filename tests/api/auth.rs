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
