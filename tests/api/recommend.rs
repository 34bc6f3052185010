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
        let (status, recs) = app
            .get_json(&format!("/v1/users/{user}/recommendations?k=11&exclude=followed"))
            .await;
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
    let (_, mut again) = app.get_json("/v1/users/newbie/recommendations?k=4").await;
    // The same list from the cache, served again under its own id.
    assert_ne!(again["served_id"], first["served_id"]);
    again["served_id"] = first["served_id"].clone();
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
    let (_, second) = app
        .get_json("/v1/users/newbie/recommendations?k=4&exclude=followed")
        .await;
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

    for query in [
        "k=0",
        "k=101",
        "k=many",
        "exclude=everything",
        "exclude_influencers=A1,,A2",
        "exclude_influencers=bad%01id",
    ] {
        let (status, body) = app.get_json(&format!("/v1/users/a0/recommendations?{query}")).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (400, Some("invalid_query")),
            "{query}: {body}"
        );
    }
    let too_many: Vec<String> = (0..101).map(|n| format!("x{n}")).collect();
    let (status, body) = app
        .get_json(&format!(
            "/v1/users/a0/recommendations?exclude_influencers={}",
            too_many.join(",")
        ))
        .await;
    assert_eq!((status, body["code"].as_str()), (400, Some("invalid_query")), "{body}");
}

/// The user's positive affinity and follows, as the database holds them.
async fn engaged_with(app: &TestApp, user: &str) -> (Vec<String>, Vec<String>) {
    let engaged = sqlx::query_scalar(
        "SELECT i.external_id FROM affinity a JOIN influencers i ON i.id = a.influencer_id
         JOIN users u ON u.id = a.user_id WHERE u.external_id = $1 AND a.score_ref > 0",
    )
    .bind(user)
    .fetch_all(&app.pool)
    .await
    .expect("engaged");
    let followed = sqlx::query_scalar(
        "SELECT i.external_id FROM follows f JOIN influencers i ON i.id = f.influencer_id
         JOIN users u ON u.id = f.user_id WHERE u.external_id = $1 AND f.active",
    )
    .bind(user)
    .fetch_all(&app.pool)
    .await
    .expect("followed");
    (engaged, followed)
}

#[tokio::test]
async fn by_default_everything_the_user_engaged_with_is_left_out_and_followed_leaves_out_only_follows() {
    let app = spawn_app().await;
    two_communities(&app).await;
    for stage in ["popularity", "als"] {
        if stage == "als" {
            embed::rebuild(&app.pool, &params(), |_| {}).await.expect("rebuild");
        }
        let (engaged, followed) = engaged_with(&app, "a0").await;
        assert_eq!((engaged.len(), followed.len()), (4, 1), "{stage}");

        // The service re-reads the current model version every few seconds.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        let default = loop {
            let (status, default) = app.get_json("/v1/users/a0/recommendations?k=100").await;
            assert_eq!(status, 200, "{default}");
            if default["strategy"] == stage || std::time::Instant::now() > deadline {
                break default;
            }
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        };
        assert_eq!(default["strategy"], stage, "{default}");
        let (_, explicit) = app.get_json("/v1/users/a0/recommendations?k=100&exclude=engaged").await;
        assert_eq!(
            influencers(&default),
            influencers(&explicit),
            "{stage}: engaged is the default"
        );
        let items = influencers(&default);
        assert_eq!(items.len(), 12 - engaged.len(), "{stage}: {items:?}");
        assert!(items.iter().all(|i| !engaged.contains(i)), "{stage}: {items:?}");

        let (_, only_follows) = app
            .get_json("/v1/users/a0/recommendations?k=100&exclude=followed")
            .await;
        let items = influencers(&only_follows);
        assert_eq!(items.len(), 11, "{stage}: {items:?}");
        assert!(!items.contains(&followed[0]), "{stage}: {items:?}");
        assert!(
            engaged.iter().filter(|i| **i != followed[0]).all(|i| items.contains(i)),
            "{stage}: liked influencers stay with exclude=followed: {items:?}"
        );

        // Request-time rules come on top, and the answer is still k long when it can be.
        let named: Vec<String> = influencers(&default)[..2].to_vec();
        let (_, ruled) = app
            .get_json(&format!(
                "/v1/users/a0/recommendations?k=3&exclude_influencers={}",
                named.join(",")
            ))
            .await;
        let items = influencers(&ruled);
        assert_eq!(items, influencers(&default)[2..5].to_vec(), "{stage}");
    }
}

#[tokio::test]
async fn served_popularity_is_refreshed_in_the_background_within_its_max_age() {
    let app = crate::helpers::spawn_app_with(|s| s.embedding.popularity_max_age_secs = 2).await;
    // Computed at start-up, while nobody has engaged with anyone: empty.
    let (_, empty) = app.get_json("/v1/users/nobody/recommendations").await;
    assert_eq!(influencers(&empty), Vec::<String>::new(), "{empty}");
    two_communities(&app).await;
    // Within max_age (2 s) a new ranking is served without any request computing it; poll
    // with users that have never been asked for (each answer is cached per user).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut served = Vec::new();
    for n in 0.. {
        let (_, recs) = app.get_json(&format!("/v1/users/stranger{n}/recommendations")).await;
        served = influencers(&recs);
        if served.len() == 12 || std::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(served.len(), 12, "every influencer, by popularity: {served:?}");
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
        metrics.contains("stylecast_popularity_refresh_seconds"),
        "refreshes are timed"
    );
}

#[tokio::test]
async fn a_hidden_influencer_is_never_recommended_until_unhidden_and_analysts_see_it() {
    let app = spawn_app().await;
    two_communities(&app).await;
    let (_, before) = app.get_json("/v1/users/a0/recommendations?k=100").await;
    let top = influencers(&before)[0].clone();
    // a0 hides the top recommendation and one it follows (A0).
    let hides = json!([
        event("h-top", "a0", &top, "hide", &days_ago(0.5)),
        event("h-a0", "a0", "A0", "hide", &days_ago(0.5)),
    ]);
    assert_eq!(app.post_events(&hides).await.status().as_u16(), 200);
    for stage in ["popularity", "als"] {
        if stage == "als" {
            embed::rebuild(&app.pool, &params(), |_| {}).await.expect("rebuild");
            tokio::time::sleep(std::time::Duration::from_secs(6)).await; // the model re-check
        }
        for mode in ["engaged", "followed"] {
            let (_, recs) = app
                .get_json(&format!("/v1/users/a0/recommendations?k=100&exclude={mode}"))
                .await;
            assert_eq!(recs["strategy"], stage, "{recs}");
            let items = influencers(&recs);
            assert!(
                !items.contains(&top) && !items.contains(&"A0".to_string()),
                "{stage} {mode}: {items:?}"
            );
        }
    }
    let (hidden, unhidden): (i64, i64) = sqlx::query_as(
        "SELECT hidden_by_users, unhidden_by_users FROM analytics_hidden_influencers WHERE influencer = $1",
    )
    .bind(&top)
    .fetch_one(&app.pool)
    .await
    .expect("analyst view");
    assert_eq!((hidden, unhidden), (1, 0));

    let unhide = json!([event("u-top", "a0", &top, "unhide", &days_ago(0.1))]);
    assert_eq!(app.post_events(&unhide).await.status().as_u16(), 200);
    let (_, after) = app.get_json("/v1/users/a0/recommendations?k=100").await;
    assert!(influencers(&after).contains(&top), "{after}");
    // An older hide replayed after the unhide changes nothing: the newest event wins.
    let replay = json!([event("h-old", "a0", &top, "hide", &days_ago(0.3))]);
    assert_eq!(app.post_events(&replay).await.status().as_u16(), 200);
    let (_, still) = app.get_json("/v1/users/a0/recommendations?k=100").await;
    assert!(influencers(&still).contains(&top), "{still}");
    let daily: i64 = sqlx::query_scalar(
        "SELECT coalesce(sum(events), 0)::int8 FROM analytics_daily_engagement WHERE kind IN ('hide', 'unhide')",
    )
    .fetch_one(&app.pool)
    .await
    .expect("daily engagement");
    assert_eq!(daily, 4, "every hide and unhide is counted");
}
