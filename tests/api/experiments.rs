//! Served-list ids, attribution and experiments, through the API and the analyst views.

use std::time::Duration;

use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use stylecast::interest::embed;

use crate::feed::put_photo;
use crate::generate::{add_influencer, generate, read, CONTENT};
use crate::helpers::{days_ago, event, spawn_app_with, TestApp};

async fn app() -> TestApp {
    spawn_app_with(|s| {
        // Attribution is read right after serving: flush often.
        s.served.flush_interval_ms = 20;
        // The simulations are one client serving hundreds of users back to back.
        s.auth.rate_limit_per_sec = 0;
    })
    .await
}

/// Ten influencers I0..I9 with falling popularity, so every user gets a ranked list.
async fn crowd(app: &TestApp) {
    let t = days_ago(1.0);
    let mut events = Vec::new();
    for i in 0..10 {
        for u in 0..(12 - i) {
            events.push(event(
                &format!("crowd-{i}-{u}"),
                &format!("crowd{u}"),
                &format!("I{i}"),
                "like",
                &t,
            ));
        }
    }
    let response = app.post_events(&Value::Array(events)).await;
    assert_eq!(response.status(), 200);
}

/// Waits until the served-list writer has stored `n` lists.
async fn served_lists(app: &TestApp, n: i64) {
    for _ in 0..500 {
        if app.count("SELECT count(*) FROM served_lists").await >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "served lists: {} of {n}",
        app.count("SELECT count(*) FROM served_lists").await
    );
}

async fn put_experiment(app: &TestApp, name: &str, body: &Value) -> (u16, Value) {
    let response = app
        .client
        .put(app.url(&format!("/v1/experiments/{name}")))
        .bearer_auth(&app.admin_key)
        .json(body)
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json"))
}

fn two_variants(a: &str, b: &str, b_settings: Value) -> Value {
    json!({"variants": [
        {"name": a, "share": 0.5, "settings": {}},
        {"name": b, "share": 0.5, "settings": b_settings},
    ]})
}

fn items(recs: &Value) -> Vec<String> {
    recs["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["influencer"].as_str().expect("influencer").to_string())
        .collect()
}

#[tokio::test]
async fn an_event_echoing_a_served_id_is_attributed_to_the_list_and_its_rank() {
    let app = app().await;
    crowd(&app).await;
    let (status, recs) = app.get_json("/v1/users/newcomer/recommendations?k=5").await;
    assert_eq!(status, 200, "{recs}");
    let served_id = recs["served_id"].as_str().expect("served_id").to_string();
    assert!(recs.get("experiment").is_none(), "no experiment runs: {recs}");
    let shown = items(&recs);
    assert_eq!(shown.len(), 5);
    // The same request again is another served list (another id), even from the cache.
    let (_, again) = app.get_json("/v1/users/newcomer/recommendations?k=5").await;
    assert_ne!(again["served_id"], recs["served_id"]);

    let mut follow = event("follow-1", "newcomer", &shown[2], "follow", &days_ago(0.0));
    follow["served_id"] = json!(served_id);
    let mut bad = event("follow-2", "newcomer", &shown[0], "follow", &days_ago(0.0));
    bad["served_id"] = json!("not-a-uuid");
    let report: Value = app.post_events(&json!([follow, bad])).await.json().await.expect("json");
    assert_eq!(report["accepted"], 1, "{report}");
    assert_eq!(report["rejected"][0]["code"], "invalid_served_id", "{report}");

    served_lists(&app, 2).await;
    let (rank, kind): (i32, String) =
        sqlx::query_as("SELECT rank, kind FROM analytics_served_attribution WHERE served_id = $1::uuid")
            .bind(&served_id)
            .fetch_one(&app.pool)
            .await
            .expect("attributed");
    assert_eq!((rank, kind.as_str()), (3, "follow"));
    let (impressions, engagements, low, high): (i64, i64, f64, f64) = sqlx::query_as(
        "SELECT impressions, engagements, rate_low, rate_high FROM analytics_served_ctr
         WHERE surface = 'recommendations' AND variant = 'default'",
    )
    .fetch_one(&app.pool)
    .await
    .expect("ctr");
    assert_eq!((impressions, engagements), (10, 1));
    assert!(low < 0.1 && 0.1 < high, "[{low}, {high}]");
}

#[tokio::test]
async fn experiments_are_validated_assign_users_deterministically_and_stop_back_to_defaults() {
    let app = app().await;
    crowd(&app).await;
    // Two model versions, the first kept because an experiment pins it.
    let params = stylecast::interest::als::AlsParams {
        factors: 2,
        iterations: 5,
        ..Default::default()
    };
    let first = embed::rebuild(&app.pool, &params, |_| {}).await.expect("build").version;
    let second = embed::rebuild(&app.pool, &params, |_| {}).await.expect("build").version;

    for (body, code) in [
        (
            json!({"variants": [{"name": "a", "share": 0.5}, {"name": "b", "share": 0.6}]}),
            "invalid_experiment",
        ),
        (json!({"variants": [{"name": "a", "share": 1.0}]}), "invalid_experiment"),
        (two_variants("a", "a", json!({})), "invalid_experiment"),
        (
            two_variants("a", "b", json!({"model_version": 999_999})),
            "unknown_model_version",
        ),
        (
            two_variants("a", "b", json!({"blend_temperature": -1})),
            "invalid_experiment",
        ),
        (two_variants("a", "b", json!({"generator_speed": 2})), "malformed_json"),
    ] {
        let (status, error) = put_experiment(&app, "bad", &body).await;
        assert_eq!((status, error["code"].as_str()), (400, Some(code)), "{body} → {error}");
    }
    let reader = app.key_with_scopes(&[stylecast::keys::Scope::Read]).await;
    let refused = app
        .client
        .put(app.url("/v1/experiments/x"))
        .bearer_auth(&reader)
        .json(&two_variants("a", "b", json!({})))
        .send()
        .await
        .expect("request");
    assert_eq!(refused.status(), 403);

    let (status, defined) = put_experiment(
        &app,
        "pinned",
        &two_variants("current", "older", json!({"model_version": first})),
    )
    .await;
    assert_eq!(status, 200, "{defined}");
    assert_eq!(defined["state"], "running");
    let (status, conflict) = put_experiment(&app, "other", &two_variants("a", "b", json!({}))).await;
    assert_eq!((status, conflict["code"].as_str()), (409, Some("experiment_running")));

    // Every user lands in one variant, the same each time; the older variant is scored by
    // the pinned model, the control by the current one.
    let mut seen = std::collections::BTreeMap::new();
    let users: Vec<String> = (0..12)
        .map(|u| format!("crowd{u}"))
        .chain((0..12).map(|u| format!("new{u}")))
        .collect();
    for (u, user) in users.iter().enumerate() {
        let path = format!("/v1/users/{user}/recommendations?k=3");
        let (_, recs) = app.get_json(&path).await;
        let variant = recs["variant"].as_str().expect("variant").to_string();
        assert_eq!(recs["experiment"], "pinned");
        let (_, again) = app.get_json(&path).await;
        assert_eq!(again["variant"], recs["variant"], "assignment is deterministic");
        if u < 12 {
            let expected = if variant == "older" { first } else { second };
            assert_eq!(recs["model_version"], expected, "{recs}");
        }
        *seen.entry(variant).or_insert(0) += 1;
    }
    assert_eq!(seen.len(), 2, "both variants get users: {seen:?}");

    // A third build drops neither the pinned version nor the previous one.
    embed::rebuild(&app.pool, &params, |_| {}).await.expect("build");
    let kept = app
        .count(&format!(
            "SELECT count(*) FROM embedding_models WHERE version = {first}"
        ))
        .await;
    assert_eq!(kept, 1, "the pinned model version is kept");

    served_lists(&app, 48).await;
    let assigned = app
        .count("SELECT count(*) FROM experiment_assignments WHERE experiment = 'pinned'")
        .await;
    assert_eq!(assigned, 24, "12 crowd users and 12 new users, each recorded once");
    let (_, listed) = app.get_json("/v1/experiments").await;
    let total: i64 = listed[0]["assigned_users"]
        .as_object()
        .expect("assigned")
        .values()
        .map(|n| n.as_i64().unwrap_or(0))
        .sum();
    assert_eq!(total, 24, "{listed}");

    let mut stop = two_variants("current", "older", json!({"model_version": first}));
    stop["state"] = json!("stopped");
    let (status, stopped) = put_experiment(&app, "pinned", &stop).await;
    assert_eq!((status, stopped["state"].as_str()), (200, Some("stopped")));
    assert!(stopped["stopped_at"].is_string());
    let (_, recs) = app.get_json("/v1/users/crowd0/recommendations?k=3").await;
    assert!(
        recs.get("experiment").is_none(),
        "stopped: defaults for everyone: {recs}"
    );
    // Another experiment may start now.
    let (status, _) = put_experiment(&app, "other", &two_variants("a", "b", json!({}))).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn blends_honour_the_variant_temperature_and_images_are_served_lists() {
    let app = app().await;
    for id in ["noir_nadia", "neon_nova"] {
        add_influencer(&app, id).await;
    }
    let (status, _) = put_experiment(
        &app,
        "temperature",
        &two_variants(
            "control",
            "sharp",
            json!({"blend_temperature": 0.01, "feed_blend_slot": false}),
        ),
    )
    .await;
    assert_eq!(status, 200);
    // Users with the same engagement, so only the variant tells their blends apart.
    let t = days_ago(1.0);
    let mut events = Vec::new();
    for u in 0..16 {
        for (influencer, times) in [("noir_nadia", 3), ("neon_nova", 2)] {
            for n in 0..times {
                events.push(event(
                    &format!("t{u}-{influencer}-{n}"),
                    &format!("twin{u}"),
                    influencer,
                    "share",
                    &t,
                ));
            }
        }
    }
    assert_eq!(app.post_events(&Value::Array(events)).await.status(), 200);
    let mut top_weight = std::collections::BTreeMap::<String, Vec<f64>>::new();
    for u in 0..16 {
        let user = format!("twin{u}");
        let (_, recs) = app.get_json(&format!("/v1/users/{user}/recommendations?k=1")).await;
        let variant = recs["variant"].as_str().expect("variant").to_string();
        let (status, interests) = app.get_json(&format!("/v1/users/{user}/interests")).await;
        assert_eq!(status, 200, "{interests}");
        let top = interests["blend"]["weights"][0]["weight"].as_f64().expect("weight");
        top_weight.entry(variant).or_default().push(top);
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let (control, sharp) = (mean(&top_weight["control"]), mean(&top_weight["sharp"]));
    assert!(sharp > 0.99 && control < 0.9, "control {control}, sharp {sharp}");

    // A generation is a served list of one image, its id the generation's.
    let response = generate(&app, &[("user", "twin0"), ("size", "64")], read(CONTENT)).await;
    assert_eq!(response.status(), 200);
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let generation_id = header("x-generation-id").expect("generation id");
    assert_eq!(header("x-experiment").as_deref(), Some("temperature"));
    assert!(header("x-variant").is_some());
    // A feed page too, with its own served id and the same variant.
    assert_eq!(put_photo(&app, "twin0", read(CONTENT)).await.0, 201);
    let (status, page) = app.get_json("/v1/users/twin0/feed").await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["experiment"], "temperature");
    assert_eq!(page["variant"].as_str(), header("x-variant").as_deref());
    let page_id = page["served_id"].as_str().expect("served_id").to_string();
    // The feed mix follows the variant: the blend image leads the control's first page only.
    let has_blend = page["items"]
        .as_array()
        .expect("items")
        .iter()
        .any(|i| i["slot"] == "blend");
    assert_eq!(has_blend, page["variant"] == "control", "{page}");
    served_lists(&app, 18).await;
    let surface = |id: String| {
        let pool = app.pool.clone();
        async move {
            sqlx::query_as::<_, (String, i32, i32)>(
                "SELECT surface, cardinality(influencers), cardinality(image_ids) FROM served_lists WHERE id = $1::uuid",
            )
            .bind(id)
            .fetch_one(&pool)
            .await
            .expect("served list")
        }
    };
    let (kind, _, images) = surface(generation_id).await;
    assert_eq!((kind.as_str(), images), ("generation", 1));
    let (kind, influencers, images) = surface(page_id).await;
    let slots = page["items"].as_array().expect("items").len() as i32;
    assert_eq!((kind.as_str(), influencers, images), ("feed", slots, slots));
}

/// One simulated round: `users` users fetch recommendations under the running experiment;
/// each follows one served influencer with the probability of their variant.
async fn simulate(app: &TestApp, prefix: &str, users: usize, follow_probability: impl Fn(&str) -> f64, seed: u64) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut follows = Vec::new();
    for u in 0..users {
        let user = format!("{prefix}{u}");
        let (status, recs) = app.get_json(&format!("/v1/users/{user}/recommendations?k=5")).await;
        assert_eq!(status, 200, "{recs}");
        let shown = items(&recs);
        let p = follow_probability(recs["variant"].as_str().expect("variant"));
        if rng.random::<f64>() < p {
            let pick = &shown[rng.random_range(0..shown.len())];
            let mut follow = event(&format!("{user}-follow"), &user, pick, "follow", &days_ago(0.0));
            follow["served_id"] = recs["served_id"].clone();
            follows.push(follow);
        }
    }
    for batch in follows.chunks(500) {
        let response = app.post_events(&Value::Array(batch.to_vec())).await;
        assert_eq!(response.status(), 200);
    }
}

#[derive(Debug, sqlx::FromRow)]
struct VariantResult {
    variant: String,
    rec_users: i64,
    follow_rate: f64,
    follow_rate_low: f64,
    follow_rate_high: f64,
    /// NULL for the control (no difference from itself).
    follow_rate_diff_low: Option<f64>,
    follow_rate_diff_high: Option<f64>,
}

async fn results(app: &TestApp, experiment: &str) -> Vec<VariantResult> {
    sqlx::query_as(
        "SELECT variant, rec_users, follow_rate, follow_rate_low, follow_rate_high,
                follow_rate_diff_low, follow_rate_diff_high
         FROM analytics_experiment_results WHERE experiment = $1 ORDER BY NOT is_control",
    )
    .bind(experiment)
    .fetch_all(&app.pool)
    .await
    .expect("results")
}

#[tokio::test]
async fn a_simulated_experiment_reports_both_rates_and_a_difference_that_excludes_zero() {
    let app = app().await;
    crowd(&app).await;
    let (status, _) = put_experiment(&app, "follow_test", &two_variants("a", "b", json!({}))).await;
    assert_eq!(status, 200);
    let users = 600;
    simulate(&app, "sim", users, |v| if v == "b" { 0.6 } else { 0.3 }, 7).await;
    served_lists(&app, users as i64).await;
    let rows = results(&app, "follow_test").await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    let (a, b) = (&rows[0], &rows[1]);
    assert_eq!((a.variant.as_str(), b.variant.as_str()), ("a", "b"));
    eprintln!("simulated A: {a:?}\nsimulated B: {b:?}");
    assert_eq!(a.rec_users + b.rec_users, users as i64);
    assert!(a.follow_rate_low <= 0.3 && 0.3 <= a.follow_rate_high, "{a:?}");
    assert!(b.follow_rate_low <= 0.6 && 0.6 <= b.follow_rate_high, "{b:?}");
    assert_eq!((a.follow_rate_diff_low, a.follow_rate_diff_high), (None, None), "{a:?}");
    assert!(
        b.follow_rate_diff_low.is_some_and(|low| low > 0.0),
        "B - A excludes 0: {b:?}"
    );
    assert!((b.follow_rate - a.follow_rate - 0.3).abs() < 0.12, "{a:?} {b:?}");
}

#[tokio::test]
async fn an_a_a_experiment_over_20_seeds_contains_zero_at_least_18_times() {
    let app = app().await;
    crowd(&app).await;
    let mut contains_zero = 0;
    let mut served = 0;
    for seed in 0..20u64 {
        let name = format!("aa_{seed}");
        let (status, _) = put_experiment(&app, &name, &two_variants("a", "b", json!({}))).await;
        assert_eq!(status, 200);
        let users = 200;
        simulate(&app, &format!("aa{seed}-"), users, |_| 0.3, seed).await;
        served += users as i64;
        served_lists(&app, served).await;
        let rows = results(&app, &name).await;
        assert_eq!(rows.len(), 2, "{rows:?}");
        let (low, high) = (
            rows[1].follow_rate_diff_low.expect("low"),
            rows[1].follow_rate_diff_high.expect("high"),
        );
        if low <= 0.0 && 0.0 <= high {
            contains_zero += 1;
        }
        let mut stop = two_variants("a", "b", json!({}));
        stop["state"] = json!("stopped");
        assert_eq!(put_experiment(&app, &name, &stop).await.0, 200);
    }
    eprintln!("A/A: the difference's interval contained 0 in {contains_zero} of 20 seeds");
    assert!(
        contains_zero >= 18,
        "the A/A interval contained 0 in {contains_zero} of 20 runs"
    );
}

#[tokio::test]
async fn served_lists_older_than_the_retention_go_and_erasure_takes_a_users_lists() {
    let app = spawn_app_with(|s| {
        s.served.flush_interval_ms = 20;
        s.served.retention_days = 30.0;
        s.served.retention_interval_secs = 1;
    })
    .await;
    crowd(&app).await;
    sqlx::query(
        "INSERT INTO served_lists (id, surface, user_external_id, influencers, image_ids, served_at)
         VALUES (gen_random_uuid(), 'recommendations', 'crowd0', '{I0}', '{}', now() - interval '31 days')",
    )
    .execute(&app.pool)
    .await
    .expect("an old list");
    let (_, recs) = app.get_json("/v1/users/crowd0/recommendations?k=3").await;
    let fresh = recs["served_id"].as_str().expect("served_id").to_string();
    for _ in 0..200 {
        let old = app
            .count("SELECT count(*) FROM served_lists WHERE served_at < now() - interval '30 days'")
            .await;
        let kept = app
            .count(&format!("SELECT count(*) FROM served_lists WHERE id = '{fresh}'"))
            .await;
        if old == 0 && kept == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        app.count("SELECT count(*) FROM served_lists").await,
        1,
        "the old list is gone, the fresh one kept"
    );

    // Erasing the user takes what was served to them and their assignments.
    let (status, _) = put_experiment(&app, "erase_me", &two_variants("a", "b", json!({}))).await;
    assert_eq!(status, 200);
    app.get_json("/v1/users/crowd0/recommendations?k=3").await;
    served_lists(&app, 2).await;
    let erased: Value = app
        .client
        .delete(app.url("/v1/users/crowd0"))
        .bearer_auth(&app.admin_key)
        .send()
        .await
        .expect("erase")
        .json()
        .await
        .expect("json");
    assert_eq!(erased["removed"]["served_lists"], 2, "{erased}");
    assert_eq!(erased["removed"]["experiment_assignments"], 1, "{erased}");
    assert_eq!(
        app.count("SELECT count(*) FROM served_lists WHERE user_external_id = 'crowd0'")
            .await,
        0
    );
    // A list served just before the erasure but written after it (queued while it ran) is
    // left out; another user's list in the same batch is kept.
    let list = |user: &str| stylecast::store::served::ServedRow {
        id: uuid::Uuid::new_v4(),
        surface: "recommendations",
        user: user.to_string(),
        influencers: vec![Some("I0".into())],
        image_ids: vec![None],
        model_version: None,
        assignment: Some(("erase_me".into(), "a".into())),
        served_at: chrono::Utc::now() - chrono::Duration::seconds(2),
    };
    stylecast::store::served::insert(&app.pool, &[list("crowd0"), list("crowd1")])
        .await
        .expect("insert");
    let of = |user: &str| {
        format!(
            "SELECT (SELECT count(*) FROM served_lists WHERE user_external_id = '{user}')
                  + (SELECT count(*) FROM experiment_assignments WHERE user_external_id = '{user}')"
        )
    };
    assert_eq!(
        app.count(&of("crowd0")).await,
        0,
        "nothing of the erased user comes back"
    );
    assert!(
        app.count(&of("crowd1")).await >= 2,
        "the other user's list and assignment are written"
    );
}

/// `generator` is a variant setting: the experiment's users are painted by Magenta, loaded
/// beside the default generator with its own style codes, in generations and feed images.
#[tokio::test]
async fn the_generator_is_a_variant_painted_with_its_own_style_codes() {
    // Photos stored before the second generator was loaded get its codes at start-up.
    let earlier = app().await;
    add_influencer(&earlier, "neon_nova").await;
    let (status, refused) = put_experiment(
        &earlier,
        "painter",
        &two_variants("control", "magenta", json!({"generator": "magenta"})),
    )
    .await;
    assert_eq!(
        (status, refused["code"].as_str()),
        (400, Some("generator_not_loaded")),
        "{refused}"
    );
    let database = earlier.database_url.clone();
    let app = spawn_app_with(|s| {
        s.database.url = secrecy::SecretString::from(database);
        s.onnx.experiment_generators = vec!["magenta".into()];
        s.served.flush_interval_ms = 20;
        s.auth.rate_limit_per_sec = 0;
    })
    .await;
    let coded = || earlier.count("SELECT count(*) FROM influencer_style_codes c WHERE c.photo_count = 3");
    for _ in 0..300 {
        if coded().await == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(coded().await, 1, "neon_nova's three photos coded by Magenta's encoder");
    // Photos added now are coded by both encoders at once.
    add_influencer(&app, "noir_nadia").await;
    assert_eq!(coded().await, 2);
    assert_eq!(earlier.count("SELECT count(*) FROM photo_style_codes").await, 6);

    let (status, _) = put_experiment(
        &app,
        "painter",
        &two_variants("control", "magenta", json!({"generator": "magenta"})),
    )
    .await;
    assert_eq!(status, 200);
    let t = days_ago(1.0);
    let events: Vec<Value> = (0..12)
        .map(|u| event(&format!("p{u}"), &format!("painted{u}"), "noir_nadia", "like", &t))
        .collect();
    assert_eq!(app.post_events(&Value::Array(events)).await.status(), 200);
    // variant → (the version that painted its users, one of its users)
    let mut painted = std::collections::BTreeMap::<String, (String, String)>::new();
    for u in 0..12 {
        let user = format!("painted{u}");
        let response = generate(&app, &[("user", user.as_str()), ("size", "64")], read(CONTENT)).await;
        assert_eq!(response.status(), 200);
        let header = |name: &str| response.headers()[name].to_str().expect("ascii").to_string();
        let (variant, version, id) = (
            header("x-variant"),
            header("x-model-version"),
            header("x-generation-id"),
        );
        let recorded = format!("SELECT count(*) FROM generations WHERE id = '{id}' AND model_version = '{version}'");
        assert_eq!(
            earlier.count(&recorded).await,
            1,
            "recorded with the version that painted it"
        );
        let (seen, _) = painted.entry(variant).or_insert((version.clone(), user));
        assert_eq!(*seen, version, "one generator per variant");
    }
    let (control, magenta) = (&painted["control"], &painted["magenta"]);
    let (_, ready) = app.get_json("/readyz").await;
    let default_generator = ready["models"]["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|v| v[0] == "generator")
        .and_then(|v| v[1].as_str())
        .expect("the default generator's version")
        .to_string();
    assert!(control.0.starts_with(&default_generator), "{ready} {control:?}");
    assert!(!magenta.0.starts_with(&default_generator), "{magenta:?}");
    assert_eq!(ready["experiment_generators"][0]["generator"], "magenta", "{ready}");

    // Feed images of each variant's user are painted by that variant's generator.
    for (version, user) in [control, magenta] {
        assert_eq!(put_photo(&app, user, read(CONTENT)).await.0, 201);
        crate::feed::until_ready(&app, user, Duration::from_secs(120)).await;
        let feed_images =
            format!("SELECT count(*) FROM generations WHERE user_external_id = '{user}' AND feed_slot IS NOT NULL");
        let by_version = format!("{feed_images} AND model_version = '{version}'");
        assert!(earlier.count(&feed_images).await >= 1);
        assert_eq!(
            earlier.count(&feed_images).await,
            earlier.count(&by_version).await,
            "{user}"
        );
    }

    // Stopped: everyone is painted by the default generator again.
    let mut stop = two_variants("control", "magenta", json!({"generator": "magenta"}));
    stop["state"] = json!("stopped");
    assert_eq!(put_experiment(&app, "painter", &stop).await.0, 200);
    let response = generate(&app, &[("user", magenta.1.as_str()), ("size", "64")], read(CONTENT)).await;
    let version = response.headers()["x-model-version"].to_str().expect("ascii");
    assert!(version.starts_with(&default_generator), "{version}");
}
