use serde_json::{json, Value};

use crate::helpers::{days_ago, event, spawn_app};

#[tokio::test]
async fn a_mixed_batch_lands_its_valid_events_and_names_each_bad_one() {
    let app = spawn_app().await;
    let now = days_ago(0.01);
    let batch = json!([
        event("e1", "u1", "i1", "like", &now),
        {"event_id": "e2", "user": 42, "influencer": "i1", "kind": "like", "occurred_at": now},
        event("e3", "u1", "i1", "poke", &now),
        event("e4", "u1", "i2", "follow", "2099-01-01T00:00:00Z"),
        event("e5", "u1", "i2", "comment", "not a time"),
        {"event_id": "e6", "user": "u1", "kind": "view", "occurred_at": now},
        "just a string",
        event("e7", "u2", "i2", "share", &now),
    ]);
    let response = app.post_events(&batch).await;
    assert_eq!(response.status().as_u16(), 200);
    let report: Value = response.json().await.expect("json");
    assert_eq!(report["accepted"], 2);
    assert_eq!(report["duplicates"], 0);
    let rejected: Vec<(u64, &str)> = report["rejected"]
        .as_array()
        .expect("array")
        .iter()
        .map(|r| (r["index"].as_u64().expect("index"), r["code"].as_str().expect("code")))
        .collect();
    assert_eq!(
        rejected,
        [
            (1, "invalid_type"),
            (2, "unknown_kind"),
            (3, "timestamp_in_future"),
            (4, "invalid_timestamp"),
            (5, "missing_field"),
            (6, "invalid_event")
        ]
    );
    assert!(report["rejected"][0]["message"]
        .as_str()
        .expect("message")
        .contains("user"));
    assert_eq!(app.count("SELECT count(*) FROM engagement_events").await, 2);
    assert_eq!(app.count("SELECT count(*) FROM event_keys").await, 2);
}

#[tokio::test]
async fn replaying_a_batch_changes_nothing() {
    let app = spawn_app().await;
    let t = days_ago(1.0);
    let batch = json!([
        event("r1", "u1", "i1", "follow", &t),
        event("r2", "u1", "i1", "like", &t),
        event("r3", "u2", "i1", "comment", &t),
        event("r3", "u2", "i1", "comment", &t),
    ]);
    let first: Value = app.post_events(&batch).await.json().await.expect("json");
    assert_eq!(
        (first["accepted"].as_u64(), first["duplicates"].as_u64()),
        (Some(3), Some(1))
    );
    let affinity_before: f64 = sqlx::query_scalar("SELECT sum(score_ref) FROM affinity")
        .fetch_one(&app.pool)
        .await
        .expect("sum");

    let second: Value = app.post_events(&batch).await.json().await.expect("json");
    assert_eq!(
        (second["accepted"].as_u64(), second["duplicates"].as_u64()),
        (Some(0), Some(4))
    );
    assert_eq!(app.count("SELECT count(*) FROM engagement_events").await, 3);
    assert_eq!(app.count("SELECT count(*) FROM users").await, 2);
    let affinity_after: f64 = sqlx::query_scalar("SELECT sum(score_ref) FROM affinity")
        .fetch_one(&app.pool)
        .await
        .expect("sum");
    assert_eq!(affinity_before, affinity_after);

    // Old and new ids together: the plain key insert fails on the old ones and the batch
    // falls back to ON CONFLICT; only the new events land and count.
    let overlapping = json!([
        event("r1", "u1", "i1", "follow", &t),
        event("r4", "u2", "i2", "follow", &t),
        event("r3", "u2", "i1", "comment", &t),
        event("r5", "u2", "i2", "view", &t),
    ]);
    let third: Value = app.post_events(&overlapping).await.json().await.expect("json");
    assert_eq!(
        (third["accepted"].as_u64(), third["duplicates"].as_u64()),
        (Some(2), Some(2))
    );
    assert_eq!(app.count("SELECT count(*) FROM engagement_events").await, 5);
    assert_eq!(app.count("SELECT count(*) FROM follows WHERE active").await, 2);
    assert_eq!(app.count("SELECT count(*) FROM affinity_activity WHERE influencer_id = (SELECT id FROM influencers WHERE external_id = 'i2')").await, 1);
}

#[tokio::test]
async fn the_same_event_id_at_another_time_is_still_a_duplicate_across_partitions() {
    let app = spawn_app().await;
    let first = json!([event("x1", "u1", "i1", "view", &days_ago(1.0))]);
    let moved = json!([event("x1", "u1", "i1", "view", &days_ago(70.0))]);
    assert_eq!(
        app.post_events(&first).await.json::<Value>().await.expect("json")["accepted"],
        1
    );
    let report: Value = app.post_events(&moved).await.json().await.expect("json");
    assert_eq!(
        (report["accepted"].as_u64(), report["duplicates"].as_u64()),
        (Some(0), Some(1))
    );
    assert_eq!(app.count("SELECT count(*) FROM engagement_events").await, 1);
}

#[tokio::test]
async fn ndjson_batches_are_accepted_line_by_line() {
    let app = spawn_app().await;
    let t = days_ago(0.5);
    let body = format!(
        "{}\n\n{}\n{{\"event_id\": broken\n{}\n",
        event("n1", "u1", "i1", "like", &t),
        event("n2", "u1", "i1", "view", &t),
        event("n3", "u2", "i1", "share", &t)
    );
    let response = app
        .post_events_as(&app.admin_key, "application/x-ndjson", body.into_bytes())
        .await;
    assert_eq!(response.status().as_u16(), 200);
    let report: Value = response.json().await.expect("json");
    assert_eq!(report["accepted"], 3);
    assert_eq!(report["rejected"][0]["index"], 2);
    assert_eq!(report["rejected"][0]["code"], "malformed_json");
}

#[tokio::test]
async fn unfollow_and_unlike_update_state_and_take_their_affinity_back() {
    let app = spawn_app().await;
    let batch = json!([
        event("f1", "u1", "i1", "follow", &days_ago(3.0)),
        {"event_id": "l1", "user": "u1", "influencer": "i1", "kind": "like", "occurred_at": days_ago(3.0), "post_id": "p1"},
        {"event_id": "l2", "user": "u1", "influencer": "i1", "kind": "like", "occurred_at": days_ago(3.0), "post_id": "p2"},
        event("c1", "u1", "i1", "comment", &days_ago(3.0)),
    ]);
    app.post_events(&batch).await;
    let (_, user) = app.get_json("/v1/users/u1").await;
    assert_eq!((user["following"].as_i64(), user["likes"].as_i64()), (Some(1), Some(2)));
    let with_all = user["top_influencers"][0]["affinity"].as_f64().expect("affinity");

    let undo = json!([
        event("f2", "u1", "i1", "unfollow", &days_ago(1.0)),
        {"event_id": "l3", "user": "u1", "influencer": "i1", "kind": "unlike", "occurred_at": days_ago(1.0), "post_id": "p1"},
    ]);
    app.post_events(&undo).await;
    let (_, user) = app.get_json("/v1/users/u1").await;
    assert_eq!((user["following"].as_i64(), user["likes"].as_i64()), (Some(0), Some(1)));
    let (_, influencer) = app.get_json("/v1/influencers/i1").await;
    assert_eq!(influencer["followers"], 0);

    // What is left: one like (weight 1) and one comment (weight 2), three days old.
    let left = user["top_influencers"][0]["affinity"].as_f64().expect("affinity");
    let expected = 3.0 * 0.5_f64.powf(3.0 / 30.0);
    assert!((left - expected).abs() < 1e-6, "left {left}, expected {expected}");
    assert!(with_all > left);
}

#[tokio::test]
async fn a_late_unfollow_older_than_the_follow_changes_nothing() {
    let app = spawn_app().await;
    app.post_events(&json!([event("a", "u1", "i1", "follow", &days_ago(1.0))]))
        .await;
    app.post_events(&json!([event("b", "u1", "i1", "unfollow", &days_ago(2.0))]))
        .await;
    let (_, user) = app.get_json("/v1/users/u1").await;
    assert_eq!(user["following"], 1);
    assert_eq!(app.count("SELECT count(*) FROM engagement_events").await, 2);
}

#[tokio::test]
async fn affinity_decays_by_half_every_half_life() {
    let app = spawn_app().await;
    let batch = json!([
        event("d1", "u1", "i1", "follow", &days_ago(30.0)),
        {"event_id": "d2", "user": "u1", "influencer": "i2", "kind": "share", "occurred_at": days_ago(60.0), "weight": 2.0},
        event("d3", "u1", "i3", "view", &days_ago(0.0)),
    ]);
    app.post_events(&batch).await;
    let (_, user) = app.get_json("/v1/users/u1").await;
    let top: Vec<(String, f64)> = user["top_influencers"]
        .as_array()
        .expect("array")
        .iter()
        .map(|t| {
            (
                t["id"].as_str().expect("id").to_string(),
                t["affinity"].as_f64().expect("affinity"),
            )
        })
        .collect();
    // follow 5 × ½ (one half-life); share 3 × weight 2 × ¼ (two half-lives); view 0.3 now.
    assert_eq!(top.iter().map(|t| t.0.as_str()).collect::<Vec<_>>(), ["i1", "i2", "i3"]);
    for ((_, got), want) in top.iter().zip([2.5, 1.5, 0.3]) {
        assert!((got - want).abs() < 1e-4, "got {got}, want {want}");
    }
}

#[tokio::test]
async fn malformed_bodies_get_a_json_400_with_a_code() {
    let app = spawn_app().await;
    let cases: [(&str, &[u8], &str); 4] = [
        ("application/json", b"[{\"event_id\": ", "malformed_json"),
        ("application/json", b"{\"event_id\": \"x\"}", "expected_array"),
        ("application/json", b"[\"caf\xe9\"]", "invalid_utf8"),
        ("application/json", b"", "malformed_json"),
    ];
    for (content_type, body, code) in cases {
        let response = app.post_events_as(&app.admin_key, content_type, body.to_vec()).await;
        assert_eq!(response.status().as_u16(), 400, "{code}");
        let error: Value = response.json().await.expect("json");
        assert_eq!(error["code"], code);
        assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let ndjson = app
        .post_events_as(&app.admin_key, "application/x-ndjson", b"\xff\xfe{}\n".to_vec())
        .await;
    let report: Value = ndjson.json().await.expect("json");
    assert_eq!(report["rejected"][0]["code"], "invalid_utf8");
    let csv = app.post_events_as(&app.admin_key, "text/csv", b"a,b".to_vec()).await;
    assert_eq!(csv.status().as_u16(), 415);
    assert_eq!(
        csv.json::<Value>().await.expect("json")["code"],
        "unsupported_media_type"
    );
    assert_eq!(app.count("SELECT count(*) FROM engagement_events").await, 0);
}

#[tokio::test]
async fn oversized_batches_get_413_with_a_json_error() {
    let app = spawn_app().await;
    let t = days_ago(0.1);
    let too_many: Vec<Value> = (0..10_001)
        .map(|n| event(&format!("m{n}"), "u", "i", "view", &t))
        .collect();
    let response = app.post_events(&Value::Array(too_many)).await;
    assert_eq!(response.status().as_u16(), 413);
    assert_eq!(response.json::<Value>().await.expect("json")["code"], "too_many_events");

    let padding = "x".repeat(6 * 1024 * 1024);
    let response = app
        .post_events_as(
            &app.admin_key,
            "application/json",
            format!("[\"{padding}\"]").into_bytes(),
        )
        .await;
    assert_eq!(response.status().as_u16(), 413);
    assert_eq!(
        response.json::<Value>().await.expect("json")["code"],
        "payload_too_large"
    );
    assert_eq!(app.count("SELECT count(*) FROM engagement_events").await, 0);
}

#[tokio::test]
async fn a_full_batch_of_ten_thousand_events_lands() {
    let app = spawn_app().await;
    let t = days_ago(0.2);
    let batch: Vec<Value> = (0..10_000)
        .map(|n| {
            event(
                &format!("big{n}"),
                &format!("u{}", n % 97),
                &format!("i{}", n % 13),
                "view",
                &t,
            )
        })
        .collect();
    let report: Value = app.post_events(&Value::Array(batch)).await.json().await.expect("json");
    assert_eq!(report["accepted"], 10_000);
    assert_eq!(app.count("SELECT count(*) FROM users").await, 97);
    // 97 and 13 are coprime: n mod 1261 gives every (user, influencer) pair once.
    assert_eq!(app.count("SELECT count(*) FROM affinity").await, 97 * 13);
}

#[tokio::test]
async fn concurrent_batches_with_overlapping_ids_count_each_event_once() {
    let app = spawn_app().await;
    let t = days_ago(0.3);
    // 8 clients, each sending 4 batches of 500 drawn from 3,000 ids with heavy overlap,
    // touching the same users, influencers and follow/like rows.
    let mut clients = Vec::new();
    for client in 0..8u64 {
        let app_url = app.url("/v1/events");
        let key = app.admin_key.clone();
        let t = t.clone();
        clients.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut accepted = 0;
            let mut duplicates = 0;
            for batch in 0..4u64 {
                let events: Vec<Value> = (0..500u64)
                    .map(|n| {
                        let id = (client * 331 + batch * 997 + n * 7) % 3000;
                        let kind = ["follow", "unfollow", "like", "unlike", "view", "share"][(id % 6) as usize];
                        let mut e = event(
                            &format!("c{id}"),
                            &format!("u{}", id % 50),
                            &format!("i{}", id % 7),
                            kind,
                            &t,
                        );
                        e["post_id"] = json!(format!("p{}", id % 3));
                        e
                    })
                    .collect();
                let report: Value = http
                    .post(&app_url)
                    .bearer_auth(&key)
                    .json(&events)
                    .send()
                    .await
                    .expect("send")
                    .json()
                    .await
                    .expect("json");
                accepted += report["accepted"].as_i64().expect("accepted");
                duplicates += report["duplicates"].as_i64().expect("duplicates");
            }
            (accepted, duplicates)
        }));
    }
    let mut accepted = 0;
    let mut duplicates = 0;
    for client in clients {
        let (a, d) = client.await.expect("client task");
        accepted += a;
        duplicates += d;
    }
    let distinct = app.count("SELECT count(*) FROM engagement_events").await;
    assert_eq!(accepted, distinct, "every accepted event is stored exactly once");
    assert_eq!(accepted + duplicates, 8 * 4 * 500);
    assert_eq!(
        app.count("SELECT count(DISTINCT event_id) FROM engagement_events")
            .await,
        distinct
    );
    assert_eq!(app.count("SELECT count(*) FROM users").await, 50);
    assert_state_equals_recomputation(&app).await;
}

/// The incrementally kept state equals the canonical recomputation from the event log.
pub async fn assert_state_equals_recomputation(app: &crate::helpers::TestApp) {
    let snapshot = |table: &'static str| {
        let pool = app.pool.clone();
        async move {
            let sql = match table {
                "follows" => {
                    "SELECT user_id, influencer_id, '' AS post_id, active, changed_by_event FROM follows ORDER BY 1, 2"
                }
                _ => "SELECT user_id, influencer_id, post_id, active, changed_by_event FROM likes ORDER BY 1, 2, 3",
            };
            sqlx::query_as::<_, (i64, i64, String, bool, String)>(sql)
                .fetch_all(&pool)
                .await
                .expect("snapshot")
        }
    };
    // Scores are stored at the 2020 epoch (about 2^84 today); a pair whose events cancel
    // out may keep a rounding residue far below one unit of today's weight.
    let unit = ((chrono::Utc::now().timestamp() as f64 - 1_577_836_800.0) / (30.0 * 86_400.0)).exp2();
    let affinity = || async {
        let rows = sqlx::query_as::<_, (i64, i64, f64)>(
            "SELECT user_id, influencer_id, score_ref FROM affinity ORDER BY 1, 2",
        )
        .fetch_all(&app.pool)
        .await
        .expect("affinity");
        rows.into_iter()
            .filter(|row| row.2.abs() > 1e-9 * unit)
            .collect::<Vec<_>>()
    };
    let (follows, likes, scores) = (snapshot("follows").await, snapshot("likes").await, affinity().await);
    sqlx::query("SELECT rebuild_state_from_log()")
        .execute(&app.pool)
        .await
        .expect("rebuild");
    assert_eq!(follows, snapshot("follows").await);
    assert_eq!(likes, snapshot("likes").await);
    let rebuilt = affinity().await;
    assert_eq!(scores.len(), rebuilt.len(), "the same pairs have affinity");
    for (a, b) in scores.iter().zip(&rebuilt) {
        assert_eq!((a.0, a.1), (b.0, b.1));
        assert!((a.2 - b.2).abs() <= 1e-9 * unit.max(b.2.abs()), "{a:?} vs {b:?}");
    }
}

#[tokio::test]
async fn stored_events_keep_every_field_exactly() {
    let app = spawn_app().await;
    let batch = json!([
        {"event_id": "f1", "user": "ü-1", "influencer": "i1", "kind": "like",
         "occurred_at": "2026-11-02T03:04:05.123456Z", "post_id": "p/ß", "weight": 2.5},
        {"event_id": "f2", "user": "u2", "influencer": "i1", "kind": "view",
         "occurred_at": "2026-10-31T23:59:59.999999Z"},
    ]);
    let report: Value = app.post_events(&batch).await.json().await.expect("json");
    assert_eq!(report["accepted"], 2);
    let rows: Vec<(String, String, String, String, Option<String>, f32)> = sqlx::query_as(
        "SELECT e.event_id, u.external_id, e.kind::text,
                to_char(e.occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US'), e.post_id, e.weight
         FROM engagement_events e JOIN users u ON u.id = e.user_id ORDER BY e.event_id",
    )
    .fetch_all(&app.pool)
    .await
    .expect("rows");
    assert_eq!(
        rows,
        [
            (
                "f1".into(),
                "ü-1".into(),
                "like".into(),
                "2026-11-02T03:04:05.123456".into(),
                Some("p/ß".into()),
                2.5
            ),
            (
                "f2".into(),
                "u2".into(),
                "view".into(),
                "2026-10-31T23:59:59.999999".into(),
                None,
                1.0
            ),
        ]
    );
}
