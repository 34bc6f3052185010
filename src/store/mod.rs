//! Postgres: the pool, migrations, and one file of queries per aggregate.
//!
//! Queries are runtime-checked `sqlx::query_as`; every one is exercised by the
//! integration tests against a real database (migrations/README.md).

pub mod affinity;
pub mod binary_copy;
pub mod erasure;
pub mod events;
pub mod experiments;
pub mod feeds;
pub mod images;
pub mod keys;
pub mod partitions;
pub mod people;
pub mod people_ids;
pub mod served;
pub mod styles;
pub mod vectors;

use std::str::FromStr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sqlx::migrate::{MigrateDatabase, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres};

/// `[database]`: the Postgres pool.
#[derive(Debug, Clone, Deserialize)]
pub struct DatabaseSettings {
    pub url: SecretString,
    pub max_connections: u32,
    /// How long a request waits for a pooled connection before answering 503.
    pub acquire_timeout_secs: u64,
    /// Server-side statement timeout for service queries.
    pub statement_timeout_secs: u64,
    /// Monthly partitions kept ready ahead of the current month.
    pub partition_months_ahead: u32,
}

/// The read-only `stylecast_analyst` role (sql/README.md).
#[derive(Debug, Clone, Deserialize)]
pub struct AnalystSettings {
    /// Login password; unset leaves it as it is (trust or another auth method).
    pub password: Option<SecretString>,
    /// Default statement timeout of the role.
    pub statement_timeout_secs: u64,
}

pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("invalid DATABASE_URL")]
    Url(#[source] sqlx::Error),
    #[error("cannot reach Postgres at {target}")]
    Connect { target: String, source: sqlx::Error },
    #[error("applying migrations")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error(transparent)]
    Query(#[from] sqlx::Error),
}

pub fn connect_options(settings: &DatabaseSettings) -> Result<PgConnectOptions, StoreError> {
    let options = PgConnectOptions::from_str(settings.url.expose_secret()).map_err(StoreError::Url)?;
    let timeout_ms = settings.statement_timeout_secs * 1000;
    // JIT off: the service's statements are short index lookups, and on tables whose
    // statistics lag (a bulk load before autovacuum's ANALYZE) the planner's estimates cross
    // jit_above_cost, so a 0.3 ms lookup spent 11 ms compiling (measured at 100k users:
    // popularity recommendations p50 11.4 ms with JIT).
    Ok(options.options([
        ("statement_timeout", timeout_ms.to_string()),
        ("timezone", "UTC".to_string()),
        ("jit", "off".to_string()),
    ]))
}

/// A lazily connecting pool: the service starts (and answers /healthz, /readyz) while
/// Postgres is down, and requests get 503 until it is back.
pub fn pool(settings: &DatabaseSettings) -> Result<PgPool, StoreError> {
    Ok(PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(Duration::from_secs(settings.acquire_timeout_secs))
        .connect_lazy_with(connect_options(settings)?))
}

/// Creates the database named in the URL when it does not exist yet.
pub async fn create_database_if_missing(settings: &DatabaseSettings) -> Result<(), StoreError> {
    let url = settings.url.expose_secret();
    let target = redacted_target(url);
    let exists = Postgres::database_exists(url)
        .await
        .map_err(|source| StoreError::Connect {
            target: target.clone(),
            source,
        })?;
    if !exists {
        tracing::info!(database = %target, "creating database");
        Postgres::create_database(url)
            .await
            .map_err(|source| StoreError::Connect { target, source })?;
    }
    Ok(())
}

pub async fn migrate(pool: &PgPool) -> Result<(), StoreError> {
    MIGRATOR.run(pool).await?;
    Ok(())
}

/// Whether every migration this binary knows has been applied.
pub async fn migrations_applied(pool: &PgPool) -> Result<bool, sqlx::Error> {
    let latest = MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0);
    let applied: Option<i64> = sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success")
        .fetch_one(pool)
        .await?;
    Ok(applied.unwrap_or(0) >= latest)
}

/// host:port/db of a URL, without credentials, for logs and errors.
pub fn redacted_target(url: &str) -> String {
    match PgConnectOptions::from_str(url) {
        Ok(options) => format!(
            "{}:{}/{}",
            options.get_host(),
            options.get_port(),
            options.get_database().unwrap_or("")
        ),
        Err(_) => "<unparsable url>".to_string(),
    }
}

/// Whether an error is a transient conflict that a retry of the transaction resolves.
pub fn is_retryable(err: &sqlx::Error) -> bool {
    matches!(
        err.as_database_error().and_then(|db| db.code()).as_deref(),
        Some("40P01") | Some("40001")
    )
}

/// Password (when configured) and statement timeout of the read-only analyst role.
/// The role is shared by every database on the server; a concurrent update of it by
/// another service starting at the same moment is retried.
pub async fn configure_analyst_role(pool: &PgPool, settings: &AnalystSettings) -> Result<(), StoreError> {
    let mut attempt = 0;
    loop {
        let outcome = sqlx::query("SELECT configure_analyst_role($1, $2)")
            .bind(settings.password.as_ref().map(|p| p.expose_secret().to_string()))
            .bind((settings.statement_timeout_secs * 1000) as i64)
            .execute(pool)
            .await;
        match outcome {
            Ok(_) => return Ok(()),
            Err(err) if attempt < 5 && err.as_database_error().and_then(|e| e.code()).as_deref() == Some("XX000") => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(50 * attempt)).await;
            }
            Err(err) => return Err(err.into()),
        }
    }
}

/// This database's deployment id: the namespace of every Redis key the service writes. Made
/// by the migration; made anew when the database is a copy of another (its oid differs from
/// the one stored). Processes starting together on a fresh copy agree: the update re-checks
/// its condition after waiting for the row lock, so only the first one changes the id.
pub async fn deployment_id(pool: &PgPool) -> Result<uuid::Uuid, StoreError> {
    sqlx::query(
        "UPDATE deployment SET id = gen_random_uuid(), created_at = now(), database_oid = d.oid
         FROM pg_database d WHERE d.datname = current_database() AND deployment.database_oid <> d.oid",
    )
    .execute(pool)
    .await?;
    Ok(sqlx::query_scalar("SELECT id FROM deployment").fetch_one(pool).await?)
}
