//! Embedding model versions and their vectors.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgPool;

use crate::interest::als::AlsParams;

/// Positive affinity decayed to now, as (user_id, influencer_id, affinity): the ALS input.
pub async fn affinity_triples(pool: &PgPool) -> Result<Vec<(i64, i64, f64)>, sqlx::Error> {
    sqlx::query_as("SELECT user_id, influencer_id, affinity_now(score_ref) FROM affinity WHERE score_ref > 0")
        .fetch_all(pool)
        .await
}

/// One user's positive affinity decayed to now: the fold-in input.
pub async fn user_affinity(pool: &PgPool, user_id: i64) -> Result<Vec<(i64, f64)>, sqlx::Error> {
    sqlx::query_as("SELECT influencer_id, affinity_now(score_ref) FROM affinity WHERE user_id = $1 AND score_ref > 0")
        .bind(user_id)
        .fetch_all(pool)
        .await
}

pub async fn begin_build(pool: &PgPool, params: &AlsParams) -> Result<i64, sqlx::Error> {
    let params = serde_json::to_value(params).unwrap_or(Value::Null);
    sqlx::query_scalar("INSERT INTO embedding_models (params, status) VALUES ($1, 'building') RETURNING version")
        .bind(params)
        .fetch_one(pool)
        .await
}

/// Writes vectors of one side with COPY (fast for millions of floats).
pub async fn copy_vectors(
    pool: &PgPool,
    table: VectorTable,
    version: i64,
    ids: &[i64],
    vectors: &ndarray::Array2<f32>,
) -> Result<(), sqlx::Error> {
    let mut data = String::with_capacity(ids.len() * vectors.ncols() * 12);
    for (id, row) in ids.iter().zip(vectors.rows()) {
        let values: Vec<String> = row.iter().map(|v| v.to_string()).collect();
        data.push_str(&format!("{version}\t{id}\t{{{}}}\n", values.join(",")));
    }
    let sql = match table {
        VectorTable::Users => "COPY user_vectors (model_version, user_id, vector) FROM STDIN",
        VectorTable::Influencers => "COPY influencer_vectors (model_version, influencer_id, vector) FROM STDIN",
    };
    let mut conn = pool.acquire().await?;
    let mut copy = conn.copy_in_raw(sql).await?;
    for chunk in data.as_bytes().chunks(1 << 20) {
        copy.send(chunk).await?;
    }
    copy.finish().await?;
    Ok(())
}

#[derive(Debug, Clone, Copy)]
pub enum VectorTable {
    Users,
    Influencers,
}

pub struct BuildSummary {
    pub users: i32,
    pub influencers: i32,
    pub interactions: i64,
    pub train_seconds: f64,
}

/// Makes `version` the current model in one transaction and drops all but the previous one.
pub async fn publish(pool: &PgPool, version: i64, summary: &BuildSummary) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("UPDATE embedding_models SET is_current = FALSE, status = 'retired' WHERE is_current")
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "UPDATE embedding_models SET is_current = TRUE, status = 'ready', built_at = now(),
                users = $2, influencers = $3, interactions = $4, train_seconds = $5
         WHERE version = $1",
    )
    .bind(version)
    .bind(summary.users)
    .bind(summary.influencers)
    .bind(summary.interactions)
    .bind(summary.train_seconds)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    // Keep the previous version for readers that loaded it a moment ago; drop the rest
    // (including builds that died half-way).
    sqlx::query(
        "DELETE FROM embedding_models WHERE version < $1
           AND version <> coalesce((SELECT max(version) FROM embedding_models WHERE status = 'retired' AND version < $1), 0)",
    )
    .bind(version)
    .execute(pool)
    .await?;
    Ok(())
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CurrentModel {
    pub version: i64,
    pub params: Value,
    pub built_at: Option<DateTime<Utc>>,
}

pub async fn current_model(pool: &PgPool) -> Result<Option<CurrentModel>, sqlx::Error> {
    sqlx::query_as("SELECT version, params, built_at FROM embedding_models WHERE is_current")
        .fetch_optional(pool)
        .await
}

/// Influencer vectors of a version with their external ids.
pub async fn influencer_vectors(pool: &PgPool, version: i64) -> Result<Vec<(i64, String, Vec<f32>)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT v.influencer_id, i.external_id, v.vector FROM influencer_vectors v
         JOIN influencers i ON i.id = v.influencer_id WHERE v.model_version = $1 ORDER BY v.influencer_id",
    )
    .bind(version)
    .fetch_all(pool)
    .await
}

pub async fn user_vector(pool: &PgPool, version: i64, user_id: i64) -> Result<Option<Vec<f32>>, sqlx::Error> {
    sqlx::query_scalar("SELECT vector FROM user_vectors WHERE model_version = $1 AND user_id = $2")
        .bind(version)
        .bind(user_id)
        .fetch_optional(pool)
        .await
}

/// Influencers the user follows now.
pub async fn followed(pool: &PgPool, user_id: i64) -> Result<Vec<i64>, sqlx::Error> {
    sqlx::query_scalar("SELECT influencer_id FROM follows WHERE user_id = $1 AND active")
        .bind(user_id)
        .fetch_all(pool)
        .await
}

/// Influencers by total affinity decayed to now (the cold-start ranking).
pub async fn popular_influencers(pool: &PgPool, limit: i64) -> Result<Vec<(i64, String, f64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT a.influencer_id, i.external_id, affinity_now(sum(a.score_ref)) FROM affinity a
         JOIN influencers i ON i.id = a.influencer_id
         GROUP BY a.influencer_id, i.external_id HAVING sum(a.score_ref) > 0
         ORDER BY sum(a.score_ref) DESC, i.external_id LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await
}

pub async fn user_id(pool: &PgPool, external_id: &str) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar("SELECT id FROM users WHERE external_id = $1")
        .bind(external_id)
        .fetch_optional(pool)
        .await
}

/// One user's positive affinity decayed to now, by influencer external id.
pub async fn user_affinity_named(pool: &PgPool, user_id: i64) -> Result<Vec<(String, f64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT i.external_id, affinity_now(a.score_ref) FROM affinity a JOIN influencers i ON i.id = a.influencer_id
         WHERE a.user_id = $1 AND a.score_ref > 0",
    )
    .bind(user_id)
    .fetch_all(pool)
    .await
}
