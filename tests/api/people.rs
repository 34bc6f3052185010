use serde_json::json;

use crate::helpers::{days_ago, event, spawn_app};

#[tokio::test]
async fn user_and_influencer_reads_show_counts_and_top_affinities() {
    let app = spawn_app().await;
    let t = days_ago(0.5);
    let batch = json!([
        event("1", "ana", "nova", "follow", &t),
        event("2", "ana", "nova", "view", &t),
        event("3", "ana", "nova", "view", &t),
        event("4", "ana", "iris", "share", &t),
        event("5", "ben", "nova", "follow", &t),
        event("6", "ben", "iris", "like", &t),
    ]);
    app.post_events(&batch).await;

    let (status, ana) = app.get_json("/v1/users/ana").await;
    assert_eq!(status, 200);
    assert_eq!(ana["events_by_kind"], json!({"follow": 1, "view": 2, "share": 1}));
    assert_eq!(ana["following"], 1);
    assert_eq!(ana["top_influencers"][0]["id"], "nova");
    assert_eq!(ana["top_influencers"][1]["id"], "iris");

    let (status, nova) = app.get_json("/v1/influencers/nova").await;
    assert_eq!(status, 200);
    assert_eq!(nova["followers"], 2);
    assert_eq!(nova["events_by_kind"], json!({"follow": 2, "view": 2}));
    assert_eq!(nova["top_fans"].as_array().map(Vec::len), Some(2));

    let (_, limited) = app.get_json("/v1/users/ana?top=1").await;
    assert_eq!(limited["top_influencers"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn unknown_people_and_bad_parameters_get_json_4xx() {
    let app = spawn_app().await;
    let (status, body) = app.get_json("/v1/users/nobody").await;
    assert_eq!((status, body["code"].as_str()), (404, Some("not_found")));
    // The message names the id, not the Rust type that holds it.
    assert_eq!(body["message"], r#"user "nobody" not found"#, "{body}");
    let (status, body) = app.get_json("/v1/influencers/nobody").await;
    assert_eq!((status, body["code"].as_str()), (404, Some("not_found")));
    assert_eq!(body["message"], r#"influencer "nobody" not found"#, "{body}");
    let (status, body) = app.get_json("/v1/users/ana?top=0").await;
    assert_eq!((status, body["code"].as_str()), (400, Some("invalid_query")));
    let (status, body) = app.get_json("/v1/users/ana?top=lots").await;
    assert_eq!((status, body["code"].as_str()), (400, Some("invalid_query")));
    let long = "x".repeat(200);
    let (status, body) = app.get_json(&format!("/v1/users/{long}")).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("invalid_id")));
    let (status, body) = app.get_json("/v1/nothing/here").await;
    assert_eq!((status, body["code"].as_str()), (404, Some("no_route")));
    // A path that exists, with a method it does not take: 405 with Allow, not 404.
    let response = app
        .client
        .patch(app.url("/v1/users/ana"))
        .bearer_auth(&app.admin_key)
        .send()
        .await
        .expect("patch");
    assert_eq!(response.status().as_u16(), 405);
    assert_eq!(response.headers()["allow"].to_str().ok(), Some("GET, DELETE"));
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["code"], "method_not_allowed", "{body}");
}
