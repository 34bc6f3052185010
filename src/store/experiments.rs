//! Experiments as stored: a name, its variants (JSON, parsed by `experiment`) and its state.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgPool;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ExperimentRow {
    pub name: String,
    pub variants: Value,
    pub state: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub stopped_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "name, variants, state, created_at, updated_at, started_at, stopped_at";

pub async fn all(pool: &PgPool) -> Result<Vec<ExperimentRow>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM experiments ORDER BY created_at, name"))
        .fetch_all(pool)
        .await
}

pub async fn running(pool: &PgPool) -> Result<Option<ExperimentRow>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM experiments WHERE state = 'running'"))
        .fetch_optional(pool)
        .await
}

/// Creates or replaces an experiment. `started_at` moves when it (re)starts, `stopped_at`
/// when it stops. A second running experiment violates `experiments_one_running`.
pub async fn upsert(pool: &PgPool, name: &str, variants: &Value, state: &str) -> Result<ExperimentRow, sqlx::Error> {
    sqlx::query_as(&format!(
        "INSERT INTO experiments AS x (name, variants, state, started_at, stopped_at)
         VALUES ($1, $2, $3, CASE WHEN $3 = 'running' THEN now() END, CASE WHEN $3 = 'stopped' THEN now() END)
         ON CONFLICT (name) DO UPDATE SET
             variants = EXCLUDED.variants, state = EXCLUDED.state, updated_at = now(),
             started_at = CASE WHEN EXCLUDED.state = 'running' AND x.state <> 'running' THEN now() ELSE x.started_at END,
             stopped_at = CASE WHEN EXCLUDED.state = 'stopped' AND x.state <> 'stopped' THEN now()
                               WHEN EXCLUDED.state = 'running' THEN NULL ELSE x.stopped_at END
         RETURNING {COLUMNS}"
    ))
    .bind(name)
    .bind(variants)
    .bind(state)
    .fetch_one(pool)
    .await
}

/// Which of these embedding model versions exist (built, current or kept).
pub async fn existing_model_versions(pool: &PgPool, versions: &[i64]) -> Result<Vec<i64>, sqlx::Error> {
    sqlx::query_scalar("SELECT version FROM embedding_models WHERE status <> 'building' AND version = ANY($1)")
        .bind(versions)
        .fetch_all(pool)
        .await
}

/// How many users each variant has been assigned so far.
pub async fn assigned_users(pool: &PgPool, name: &str) -> Result<Vec<(String, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT variant, count(*) FROM experiment_assignments WHERE experiment = $1 GROUP BY variant ORDER BY variant",
    )
    .bind(name)
    .fetch_all(pool)
    .await
}
