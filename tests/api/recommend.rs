use serde_json::{json, Value};
use stylecast::interest::embed;

use crate::helpers::{days_ago, event, spawn_app, TestApp};

/// Two taste communities: users a0..a11 engage with influencers A0..A5, users b0..b11 with
/// B0..B5, each with four of the six (rotating); every user follows one influencer.
async fn two_communities(app: &TestApp) {
    let t = days_ago(1.0);
    let mut events = Vec::new();
    for group in ["a", "b"] {
        let influencer_group = group.to_uppercase();
        for u in 0..12 {
            for k in 0..4 {
                let i = (u + k) % 6;
                let kind = if k == 0 { "follow" } else { "like" };
                let mut e = event(
                    &format!("{group}{u}-{k}"),
                    &format!("{group}{u}"),
                    &format!("{influencer_group}{i}"),
                    kind,
                    &t,
                );
                e["post_id"] = json!(format!("p{k}"));
                events.push(e);
            }
        }
    }
    let report: Value = app.post_events(&Value::Array(events)).await.json().await.expect("json");
    assert_eq!(report["accepted"], 96);
}

/// Low rank on purpose: with as many factors as influencers, ALS fits every cell and has
/// no reason to rank unseen in-community influencers above the other community.
fn params() -> stylecast::interest::als::AlsParams {
    stylecast::interest::als::AlsParams {
        factors: 2,
        regularization: 0.1,
        iterations: 15,
        ..Default::default()
    }
}

fn influencers(recs: &Value) -> Vec<String> {
    recs["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["influencer"].as_str().expect("id").to_string())
        .collect()
}

#[tokio::test]
async fn without_a_model_recommendations_fall_back_to_popularity_and_say_so() {
    let app = spawn_app().await;
    two_communities(&app).await;
    let (status, recs) = app.get_json("/v1/users/a0/recommendations?k=5").await;
    assert_eq!(status, 200);
    assert_eq!(recs["strategy"], "popularity");
    assert_eq!(recs["model_version"], Value::Null);
    let items = influencers(&recs);
    assert_eq!(items.len(), 5);
    assert!(!items.contains(&"A0".to_string()), "a0 follows A0: {items:?}");
    let (_, stranger) = app.get_json("/v1/users/nobody-yet/recommendations?k=3").await;
    assert_eq!(stranger["strategy"], "popularity");
    assert_eq!(influencers(&stranger).len(), 3);
}

#[tokio::test]
async fn after_a_rebuild_users_get_their_communitys_influencers_first() {
    let app = spawn_app().await;
    two_communities(&app).await;
    let report = embed::rebuild(&app.pool, &params(), |_| {}).await.expect("rebuild");
    assert_eq!((report.users, report.influencers), (24, 12));

    for (user, own, followed) in [("a0", 'A', "A0"), ("b5", 'B', "B5")] {
        let (status, recs) = app.get_json(&format!("/v1/users/{user}/recommendations?k=11")).await;
        assert_eq!(status, 200);
        assert_eq!(recs["strategy"], "als");
        assert_eq!(recs["model_version"], report.version);
        let items = influencers(&recs);
        assert_eq!(items.len(), 11, "every influencer but the followed one");
        assert!(!items.contains(&followed.to_string()));
        assert!(items[..5].iter().all(|i| i.starts_with(own)), "{user}: {items:?}");
        let scores: Vec<f64> = recs["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|i| i["score"].as_f64().expect("score"))
            .collect();
        assert!(scores.windows(2).all(|w| w[0] >= w[1]), "sorted by score");
    }
}

#[tokio::test]
async fn a_new_user_is_folded_in_and_follows_new_engagement_without_a_rebuild() {
    let app = spawn_app().await;
    two_communities(&app).await;
    embed::rebuild(&app.pool, &params(), |_| {}).await.expect("rebuild");

    let t = days_ago(0.1);
    app.post_events(&json!([
        event("n1", "newbie", "A1", "share", &t),
        event("n2", "newbie", "A2", "share", &t)
    ]))
    .await;
    let (_, first) = app.get_json("/v1/users/newbie/recommendations?k=4").await;
    assert_eq!(first["strategy"], "als");
    assert!(influencers(&first).iter().all(|i| i.starts_with('A')), "{first}");
    let (_, again) = app.get_json("/v1/users/newbie/recommendations?k=4").await;
    assert_eq!(again, first);
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains(r#"stylecast_recommendation_cache_total{result="hit"}"#),
        "served from the cache"
    );

    // Heavy engagement with the other community flips the ranking at once: the batch
    // invalidates the cached answer and the vector is folded in again.
    let events: Vec<Value> = (0..6)
        .flat_map(|i| {
            (0..5).map(move |n| {
                event(
                    &format!("m{i}-{n}"),
                    "newbie",
                    &format!("B{i}"),
                    "share",
                    &days_ago(0.05),
                )
            })
        })
        .collect();
    app.post_events(&Value::Array(events)).await;
    let (_, second) = app.get_json("/v1/users/newbie/recommendations?k=4").await;
    assert!(influencers(&second).iter().all(|i| i.starts_with('B')), "{second}");
}

#[tokio::test]
async fn a_rebuild_publishes_a_new_version_atomically_and_keeps_one_previous() {
    let app = spawn_app().await;
    two_communities(&app).await;
    let first = embed::rebuild(&app.pool, &params(), |_| {}).await.expect("first");
    let second = embed::rebuild(&app.pool, &params(), |_| {}).await.expect("second");
    let third = embed::rebuild(&app.pool, &params(), |_| {}).await.expect("third");
    assert!(first.version < second.version && second.version < third.version);
    assert_eq!(
        app.count("SELECT count(*) FROM embedding_models WHERE is_current")
            .await,
        1
    );
    let current: i64 = sqlx::query_scalar("SELECT version FROM embedding_models WHERE is_current")
        .fetch_one(&app.pool)
        .await
        .expect("current");
    assert_eq!(current, third.version);
    assert_eq!(
        app.count("SELECT count(*) FROM embedding_models").await,
        2,
        "current and the one before"
    );
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM user_vectors WHERE model_version = {}",
            third.version
        ))
        .await,
        24
    );
}

#[tokio::test]
async fn embed_command_prints_a_summary_and_bad_k_is_a_400() {
    let app = spawn_app().await;
    two_communities(&app).await;
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_stylecast"))
        .arg("embed")
        .env("DATABASE_URL", &app.database_url)
        .env("STYLECAST__EMBEDDING__ALS__FACTORS", "8")
        .env("RUST_LOG", "error")
        .output()
        .expect("run stylecast embed");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let summary = String::from_utf8_lossy(&output.stdout);
    assert!(
        summary.contains("24 users x 12 influencers") && summary.contains("8 factors"),
        "{summary}"
    );

    for k in ["0", "101", "many"] {
        let (status, body) = app.get_json(&format!("/v1/users/a0/recommendations?k={k}")).await;
        assert_eq!((status, body["code"].as_str()), (400, Some("invalid_query")), "k={k}");
    }
}
