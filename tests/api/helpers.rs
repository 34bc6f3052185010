//! spawn_app(): the real application on port 0, against its own fresh database cloned from
//! a migrated template, and its own Redis key prefix.

use std::time::Duration;

use actix_web::dev::ServerHandle;
use secrecy::SecretString;
use serde_json::{json, Value};
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, Executor, PgConnection, PgPool};
use stylecast::config::Settings;
use stylecast::startup::Application;
use tokio::sync::OnceCell;
use uuid::Uuid;

pub fn server_url() -> String {
    std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_string())
}

pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_string())
}

static TEMPLATE: OnceCell<String> = OnceCell::const_new();

/// A migrated template database, made once per schema version (named by the migrations'
/// checksums) and cloned for every test, which is far faster than migrating each.
async fn template() -> &'static str {
    TEMPLATE
        .get_or_init(|| async {
            let digest: Vec<u8> = stylecast::store::MIGRATOR
                .iter()
                .flat_map(|m| m.checksum.iter().copied())
                .collect();
            let name = format!("stylecast_tmpl_{}", &hex_digest(&digest)[..16]);
            let mut admin = PgConnection::connect(&format!("{}/postgres", server_url()))
                .await
                .expect("connect to Postgres");
            admin.execute("SELECT pg_advisory_lock(7421001)").await.expect("lock");
            drop_stale_test_databases(&mut admin).await;
            let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
                .bind(&name)
                .fetch_one(&mut admin)
                .await
                .expect("query pg_database");
            if !exists {
                admin
                    .execute(format!(r#"CREATE DATABASE "{name}""#).as_str())
                    .await
                    .expect("create template");
                let pool = PgPool::connect(&format!("{}/{name}", server_url()))
                    .await
                    .expect("connect template");
                stylecast::store::migrate(&pool).await.expect("migrate template");
                pool.close().await;
            }
            admin
                .execute("SELECT pg_advisory_unlock(7421001)")
                .await
                .expect("unlock");
            name
        })
        .await
}

/// Databases of earlier runs (this binary is the only user of the prefix).
async fn drop_stale_test_databases(admin: &mut PgConnection) {
    let stale: Vec<String> = sqlx::query_scalar(
        "SELECT datname FROM pg_database WHERE datname LIKE 'stylecast_test_%'
         AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.datname = pg_database.datname)",
    )
    .fetch_all(&mut *admin)
    .await
    .unwrap_or_default();
    for name in stale {
        let _ = admin
            .execute(format!(r#"DROP DATABASE IF EXISTS "{name}""#).as_str())
            .await;
    }
}

pub fn hex_digest(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

pub struct TestApp {
    pub address: String,
    pub database_url: String,
    pub pool: PgPool,
    pub admin_key: String,
    /// This app's Redis key prefix (`redis.key_prefix`).
    pub redis_prefix: String,
    pub client: reqwest::Client,
    pub handle: ServerHandle,
    pub server: tokio::task::JoinHandle<std::io::Result<()>>,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// The URL of a fresh, migrated database of this test's own (a clone of the template).
pub async fn fresh_database() -> String {
    let template = template().await;
    let database = format!("stylecast_test_{}", Uuid::new_v4().simple());
    let mut admin = PgConnection::connect(&format!("{}/postgres", server_url()))
        .await
        .expect("connect");
    admin
        .execute(format!(r#"CREATE DATABASE "{database}" TEMPLATE "{template}""#).as_str())
        .await
        .expect("clone template");
    format!("{}/{database}", server_url())
}

pub async fn spawn_app_with(customize: impl FnOnce(&mut Settings)) -> TestApp {
    let database_url = fresh_database().await;
    let admin_key = format!("test-admin-{}", Uuid::new_v4());

    let mut settings = Settings::load(None).expect("settings");
    settings.server.port = 0;
    settings.server.workers = 2;
    settings.database.url = SecretString::from(database_url.clone());
    settings.redis.url = Some(SecretString::from(redis_url()));
    settings.redis.key_prefix = format!("test:{}:", Uuid::new_v4().simple());
    settings.auth.admin_key = Some(SecretString::from(admin_key.clone()));
    // Tests read popularity right after writing events; the refreshed ranking has its own test.
    settings.embedding.popularity_max_age_secs = 0;
    customize(&mut settings);
    let redis_prefix = settings.redis.key_prefix.clone();

    let app = Application::build(settings).await.expect("build app");
    let port = app.port();
    let handle = app.handle();
    let server = tokio::spawn(app.run_until_stopped());
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .connect(&database_url)
        .await
        .expect("test pool");
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        database_url,
        pool,
        admin_key,
        redis_prefix,
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("client"),
        handle,
        server,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn post_events(&self, body: &Value) -> reqwest::Response {
        self.post_events_as(&self.admin_key, "application/json", body.to_string().into_bytes())
            .await
    }

    pub async fn post_events_as(&self, key: &str, content_type: &str, body: Vec<u8>) -> reqwest::Response {
        self.client
            .post(self.url("/v1/events"))
            .bearer_auth(key)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("request")
    }

    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        let response = self
            .client
            .get(self.url(path))
            .bearer_auth(&self.admin_key)
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        (status, response.json().await.expect("json body"))
    }

    pub async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sql)
            .fetch_one(&self.pool)
            .await
            .expect("count query")
    }

    /// A key with exactly these scopes, stored as `stylecast keys create` stores it.
    pub async fn key_with_scopes(&self, scopes: &[stylecast::keys::Scope]) -> String {
        let key = stylecast::keys::generate();
        stylecast::store::keys::insert(&self.pool, &key, "test", scopes)
            .await
            .expect("insert key");
        key.token
    }
}

/// One event as a platform sends it.
pub fn event(id: &str, user: &str, influencer: &str, kind: &str, occurred_at: &str) -> Value {
    json!({ "event_id": id, "user": user, "influencer": influencer, "kind": kind, "occurred_at": occurred_at })
}

/// An RFC 3339 time `days` before now.
pub fn days_ago(days: f64) -> String {
    let at = chrono::Utc::now() - chrono::Duration::milliseconds((days * 86_400_000.0) as i64);
    at.to_rfc3339()
}
