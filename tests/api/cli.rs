use std::process::Command;

use crate::helpers::spawn_app;

#[tokio::test]
async fn keys_create_prints_a_working_key_once_and_list_hides_it() {
    let app = spawn_app().await;
    let bin = env!("CARGO_BIN_EXE_stylecast");
    let created = Command::new(bin)
        .args(["keys", "create", "--name", "feed-service", "--scopes", "ingest,read"])
        .env("DATABASE_URL", &app.database_url)
        .env("RUST_LOG", "error")
        .output()
        .expect("run stylecast keys create");
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    let token = String::from_utf8(created.stdout).expect("utf8").trim().to_string();
    assert!(token.starts_with("sck_"));

    let response = app.post_events_as(&token, "application/json", b"[]".to_vec()).await;
    assert_eq!(response.status().as_u16(), 200);

    let listed = Command::new(bin)
        .args(["keys", "list"])
        .env("DATABASE_URL", &app.database_url)
        .output()
        .expect("list");
    let listing = String::from_utf8_lossy(&listed.stdout);
    assert!(listing.contains("feed-service") && listing.contains("ingest,read"));
    assert!(!listing.contains(token.rsplit('_').next().expect("secret")));

    let bad = Command::new(bin)
        .args(["keys", "create", "--name", "x", "--scopes", "root"])
        .env("DATABASE_URL", &app.database_url)
        .output()
        .expect("run");
    assert!(!bad.status.success());
}

fn stylecast(database_url: &str, args: &[&str]) -> (bool, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_stylecast"));
    command.env("DATABASE_URL", database_url);
    run(command, args)
}

/// (success, stdout, stderr) of the binary, quiet and without Redis.
fn run(mut command: Command, args: &[&str]) -> (bool, String, String) {
    let output = command
        .args(args)
        .env("STYLECAST__LOG__FILTER", "error")
        .env_remove("REDIS_URL")
        .output()
        .expect("run stylecast");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn seed_ingests_the_planned_events_once_and_a_rerun_is_all_duplicates() {
    let app = spawn_app().await;
    let args = [
        "seed",
        "--users",
        "30",
        "--influencers",
        "5",
        "--events",
        "500",
        "--batch",
        "200",
        "--seed",
        "7",
    ];
    let (ok, stdout, stderr) = stylecast(&app.database_url, &args);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("in 3 batches: 500 accepted, 0 duplicates, 0 rejected"),
        "{stdout}"
    );
    assert_eq!(app.count("SELECT count(*) FROM engagement_events").await, 500);
    assert!(app.count("SELECT count(*) FROM users").await <= 30);
    assert!(app.count("SELECT count(*) FROM influencers").await <= 5);

    let (ok, stdout, stderr) = stylecast(&app.database_url, &args);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("0 accepted, 500 duplicates"), "{stdout}");
    assert_eq!(app.count("SELECT count(*) FROM engagement_events").await, 500);

    // Other sizes draw other events: none of them is taken for a duplicate (issue 24 item 7).
    let resized = [
        "seed",
        "--users",
        "7",
        "--influencers",
        "3",
        "--events",
        "300",
        "--seed",
        "7",
    ];
    let (ok, stdout, stderr) = stylecast(&app.database_url, &resized);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("300 accepted, 0 duplicates"), "{stdout}");
    assert_eq!(app.count("SELECT count(*) FROM engagement_events").await, 800);

    let (ok, _, stderr) = stylecast(&app.database_url, &["seed", "--users", "0"]);
    assert!(!ok && stderr.contains("at least one user"), "{stderr}");
}

#[tokio::test]
async fn demo_makes_the_page_alive_idempotently_and_eval_styles_scores_every_style() {
    let app = spawn_app().await;
    let (ok, stdout, stderr) = stylecast(&app.database_url, &["demo"]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("8 influencers (24 photos, 8 styles computed now), 12 demo users"),
        "{stdout}"
    );
    assert_eq!(app.count("SELECT count(*) FROM influencer_styles").await, 8);
    assert_eq!(app.count("SELECT count(*) FROM influencer_photos").await, 24);
    let events = app.count("SELECT count(*) FROM engagement_events").await;
    assert!(events > 100);

    // The page's first calls: ana has an interest blend and ALS recommendations.
    let (status, interests) = app.get_json("/v1/users/ana/interests").await;
    assert_eq!(status, 200, "{interests}");
    assert_eq!(interests["blend"]["source"], "interests");
    let (status, recs) = app.get_json("/v1/users/ana/recommendations?k=3").await;
    assert_eq!(status, 200, "{recs}");
    assert_eq!(recs["strategy"], "als");
    assert_eq!(recs["items"].as_array().map(Vec::len), Some(3));

    let (ok, stdout, stderr) = stylecast(&app.database_url, &["demo"]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("0 styles computed now"), "{stdout}");
    assert!(stdout.contains(" 0 events accepted"), "{stdout}");
    assert_eq!(app.count("SELECT count(*) FROM engagement_events").await, events);
    assert_eq!(app.count("SELECT count(*) FROM influencer_photos").await, 24);

    let (ok, stdout, stderr) = stylecast(&app.database_url, &["eval-styles"]);
    assert!(ok, "{stderr}");
    for id in [
        "noir_nadia",
        "golden_gabe",
        "neon_nova",
        "vintage_vera",
        "pastel_pia",
        "brick_bo",
        "meadow_mo",
        "ink_iris",
    ] {
        assert!(stdout.lines().any(|l| l.starts_with(id)), "{id} missing:\n{stdout}");
    }
    let summary = stdout.lines().last().unwrap_or_default();
    assert!(summary.starts_with("8 styles x 2 held-out photos"), "{summary}");
    let mean: f64 = summary
        .split("mean style ratio ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .and_then(|v| v.parse().ok())
        .expect("mean ratio in the summary");
    // The generator must move held-out photos towards the styles on average.
    assert!(mean > 0.0 && mean < 1.0, "mean style ratio {mean}");
}

#[test]
fn help_lists_every_command() {
    let output = Command::new(env!("CARGO_BIN_EXE_stylecast"))
        .arg("--help")
        .output()
        .expect("run");
    let help = String::from_utf8_lossy(&output.stdout);
    for command in [
        "serve",
        "migrate",
        "generate",
        "styles",
        "embed",
        "eval-recs",
        "seed",
        "demo",
        "eval-styles",
        "keys",
    ] {
        assert!(help.contains(command), "{command} missing from --help:\n{help}");
    }
}

/// A training line naming a user or item beyond `--users` / `--items` is an error that
/// names the line, not an index-out-of-bounds panic.
#[test]
fn eval_recs_refuses_ids_outside_the_declared_sizes() {
    let dir = std::env::temp_dir().join(format!("stylecast-eval-recs-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let train = dir.join("train.tsv");
    std::fs::write(&train, "0\t1\t1\n5\t0\t1\n").expect("write");
    let (train, out) = (
        train.to_string_lossy(),
        dir.join("recs.tsv").to_string_lossy().into_owned(),
    );
    let args = [
        "eval-recs",
        "--train",
        &train,
        "--users",
        "2",
        "--items",
        "2",
        "--out",
        &out,
    ];
    let (ok, _, stderr) = run(Command::new(env!("CARGO_BIN_EXE_stylecast")), &args);
    std::fs::remove_dir_all(&dir).ok();
    assert!(!ok);
    assert!(
        stderr.contains("line 2") && stderr.contains("outside --users"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[tokio::test]
async fn generate_refuses_an_out_it_cannot_write_before_rendering_and_keys_need_a_name() {
    let app = spawn_app().await;
    let photo = "onnx/styles/content_heldout/coffee.png";
    let base = ["generate", "--photo", photo, "--user", "ana", "--out"];
    let gif = [&base[..], &["x.gif"]].concat();
    let (ok, _, stderr) = stylecast(&app.database_url, &gif);
    assert!(
        !ok && stderr.contains("--out x.gif") && stderr.contains(".webp"),
        "{stderr}"
    );
    assert!(!std::path::Path::new("x.gif").exists());

    let missing = format!("/nonexistent-{}/out.png", uuid::Uuid::new_v4().simple());
    let into_missing = [&base[..], &[missing.as_str()]].concat();
    let (ok, _, stderr) = stylecast(&app.database_url, &into_missing);
    assert!(
        !ok && stderr.contains("does not exist") && stderr.contains(&missing),
        "{stderr}"
    );
    // Refused before anything ran: no generation was recorded.
    assert_eq!(app.count("SELECT count(*) FROM generations").await, 0);

    for name in ["", "   "] {
        let (ok, stdout, stderr) = stylecast(&app.database_url, &["keys", "create", "--name", name]);
        assert!(
            !ok && stdout.is_empty() && stderr.contains("--name must not be empty"),
            "{stderr}"
        );
    }
    assert_eq!(app.count("SELECT count(*) FROM api_keys").await, 0);
}
