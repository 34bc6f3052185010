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
