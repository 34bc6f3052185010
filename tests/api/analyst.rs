//! The analyst role, connected for real: reads the views, nothing else.

use serde_json::json;
use sqlx::{Connection, PgConnection};

use crate::helpers::{days_ago, event, spawn_app};

const VIEWS: [&str; 16] = [
    "affinity",
    "analytics_affinity",
    "analytics_daily_engagement",
    "analytics_follower_growth",
    "analytics_user_top_influencers",
    "analytics_recommendation_coverage",
    "analytics_generations_daily",
    "analytics_generations",
    "analytics_engagement_events",
    "analytics_image_store",
    "analytics_feed_image_engagement",
    "analytics_hidden_influencers",
    "analytics_served_attribution",
    "analytics_served_ctr",
    "analytics_experiment_results",
    "analytics_experiments",
];

#[tokio::test]
async fn the_analyst_role_reads_every_view_and_nothing_else() {
    let app = spawn_app().await;
    let t = days_ago(1.0);
    app.post_events(&json!([
        event("a1", "ana", "nova", "follow", &t),
        event("a2", "ana", "nova", "view", &t),
        event("a3", "ben", "nova", "view", &t),
        event("a4", "ben", "nova", "unfollow", &t),
    ]))
    .await;
    let analyst_url = app
        .database_url
        .replace("postgres://postgres@", "postgres://stylecast_analyst@");
    let mut analyst = PgConnection::connect(&analyst_url)
        .await
        .expect("connect as stylecast_analyst");

    // Every view in the schema is meant for analysts: the list above is complete, and the
    // role reads each one (a new view without its grant fails here).
    let mut all_views: Vec<String> =
        sqlx::query_scalar("SELECT viewname::text FROM pg_views WHERE schemaname = 'public' ORDER BY viewname")
            .fetch_all(&app.pool)
            .await
            .expect("views");
    let mut listed: Vec<String> = VIEWS.iter().map(|v| v.to_string()).collect();
    listed.sort();
    all_views.sort();
    assert_eq!(all_views, listed, "views in the schema vs the analyst's list");
    let affinity: f64 =
        sqlx::query_scalar("SELECT affinity_now FROM analytics_affinity WHERE user_id = 'ana' AND influencer = 'nova'")
            .fetch_one(&mut analyst)
            .await
            .expect("analytics_affinity");
    assert!(affinity > 0.0, "{affinity}");
    for view in VIEWS {
        let rows: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {view}"))
            .fetch_one(&mut analyst)
            .await
            .unwrap_or_else(|e| panic!("{view}: {e}"));
        assert!(rows >= 0);
    }
    let views: i64 =
        sqlx::query_scalar("SELECT events FROM analytics_daily_engagement WHERE influencer = 'nova' AND kind = 'view'")
            .fetch_one(&mut analyst)
            .await
            .expect("views");
    assert_eq!(views, 2);
    let net: i64 = sqlx::query_scalar("SELECT cumulative_net FROM analytics_follower_growth WHERE influencer = 'nova'")
        .fetch_one(&mut analyst)
        .await
        .expect("growth");
    assert_eq!(net, 0);
    let top: String =
        sqlx::query_scalar("SELECT influencer FROM analytics_user_top_influencers WHERE user_id = 'ana' AND rank = 1")
            .fetch_one(&mut analyst)
            .await
            .expect("top");
    assert_eq!(top, "nova");

    for forbidden in [
        "SELECT * FROM api_keys",
        "SELECT * FROM deployment",
        "SELECT * FROM engagement_events",
        "SELECT * FROM users",
        "SELECT * FROM generations",
        "SELECT * FROM served_lists",
        "SELECT * FROM experiment_assignments",
        "INSERT INTO users (external_id) VALUES ('mallory')",
        "UPDATE affinity_params SET half_life_days = 1",
        "DELETE FROM event_keys",
        "CREATE TABLE scratch (x int)",
        "CREATE TEMP TABLE scratch (x int)",
    ] {
        let err = sqlx::query(forbidden).execute(&mut analyst).await.expect_err(forbidden);
        let code = err.as_database_error().and_then(|e| e.code()).map(|c| c.to_string());
        assert_eq!(code.as_deref(), Some("42501"), "{forbidden}: {err}");
    }
    let timeout: String = sqlx::query_scalar("SHOW statement_timeout")
        .fetch_one(&mut analyst)
        .await
        .expect("show");
    assert_eq!(timeout, "30s");
    assert_eq!(
        app.count("SELECT count(*) FROM users WHERE external_id = 'mallory'")
            .await,
        0
    );
}

#[tokio::test]
async fn every_analyst_view_and_column_is_commented() {
    let app = spawn_app().await;
    let uncommented: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname || coalesce('.' || a.attname, '')
         FROM pg_class c
         LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
         WHERE c.relkind = 'v' AND c.relname LIKE 'analytics_%'
           AND (obj_description(c.oid, 'pg_class') IS NULL OR (a.attname IS NOT NULL AND col_description(c.oid, a.attnum) IS NULL))",
    )
    .fetch_all(&app.pool)
    .await
    .expect("catalog");
    assert!(uncommented.is_empty(), "missing comments: {uncommented:?}");
}

#[tokio::test]
async fn every_example_query_runs_as_the_analyst() {
    let app = spawn_app().await;
    app.post_events(&json!([event("x1", "ana", "nova", "like", &days_ago(2.0))]))
        .await;
    let analyst_url = app
        .database_url
        .replace("postgres://postgres@", "postgres://stylecast_analyst@");
    let mut analyst = PgConnection::connect(&analyst_url)
        .await
        .expect("connect as stylecast_analyst");
    let mut ran = 0;
    for entry in std::fs::read_dir("sql/examples").expect("sql/examples") {
        let path = entry.expect("entry").path();
        let sql = std::fs::read_to_string(&path).expect("read");
        sqlx::raw_sql(&sql)
            .execute(&mut analyst)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        ran += 1;
    }
    assert!(ran >= 2);
}
