//! Embedding model versions and their vectors.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgPool;

use super::binary_copy::{BinaryCopy, TripleReader};
use crate::interest::als::AlsParams;

/// Every positive affinity contribution decayed to now, as (user_id, influencer_id, affinity),
/// streamed to `each` row by row: the ALS input. A user × influencer pair can come more than
/// once (activity, follow, likes); the caller adds them up. Reading the three tables
/// directly skips the `affinity` view's per-pair GROUP BY, and one REPEATABLE READ
/// snapshot without a statement timeout replaces a single statement that at a million
/// users ran past the service's 30 s limit.
pub async fn stream_affinity(pool: &PgPool, mut each: impl FnMut(i64, i64, f64)) -> Result<u64, sqlx::Error> {
    use futures_util::TryStreamExt;

    let mut tx = unbounded_snapshot(pool).await?;
    // Binary COPY: at ten million rows, decoding rows one by one and printing and parsing
    // the floats as text cost more than the query itself.
    let query = "WITH p AS (
             SELECT coalesce((weights ->> 'follow')::double precision, 0) AS follow_weight,
                    coalesce((weights ->> 'like')::double precision, 0) AS like_weight,
                    half_life_days * 86400.0 AS half_life_secs,
                    extract(epoch FROM now()) - 1577836800.0 AS now_secs
             FROM affinity_params)
         SELECT a.user_id, a.influencer_id, (a.score_ref / power(2.0, p.now_secs / p.half_life_secs))::float8
           FROM affinity_activity a CROSS JOIN p WHERE a.score_ref > 0
         UNION ALL
         SELECT f.user_id, f.influencer_id, (p.follow_weight * f.weight
                * power(2.0, (extract(epoch FROM f.changed_at) - 1577836800.0 - p.now_secs) / p.half_life_secs))::float8
           FROM follows f CROSS JOIN p WHERE f.active AND p.follow_weight > 0
         UNION ALL
         SELECT l.user_id, l.influencer_id, (p.like_weight * l.weight
                * power(2.0, (extract(epoch FROM l.changed_at) - 1577836800.0 - p.now_secs) / p.half_life_secs))::float8
           FROM likes l CROSS JOIN p WHERE l.active AND p.like_weight > 0";
    let mut stream = tx
        .copy_out_raw(&format!("COPY ({query}) TO STDOUT (FORMAT binary)"))
        .await?;
    let mut reader = TripleReader::default();
    let mut count = 0u64;
    while let Some(chunk) = stream.try_next().await? {
        reader.feed(&chunk, |user, influencer, affinity| {
            each(user, influencer, affinity);
            count += 1;
        })?;
    }
    drop(stream);
    reader.finish()?;
    tx.commit().await?;
    Ok(count)
}

/// A read-only REPEATABLE READ transaction without the service's statement timeout, for
/// the background reads that scan whole tables (model builds, the popularity ranking).
pub async fn unbounded_snapshot(pool: &PgPool) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    sqlx::query("SET LOCAL statement_timeout = 0").execute(&mut *tx).await?;
    Ok(tx)
}

/// One user's positive affinity decayed to now: the fold-in input.
pub async fn user_affinity(pool: &PgPool, user_id: i64) -> Result<Vec<(i64, f64)>, sqlx::Error> {
    sqlx::query_as("SELECT influencer_id, affinity_now(score_ref) FROM affinity WHERE user_id = $1 AND score_ref > 0")
        .bind(user_id)
        .fetch_all(pool)
        .await
}

/// Which trainer made a model version's vectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trainer {
    /// `stylecast embed`: the ALS in this binary.
    Native,
    /// `stylecast embed --import`: factors trained elsewhere (spark/als.py).
    Spark,
}

impl Trainer {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Native => "native",
            Self::Spark => "spark",
        }
    }
}

pub async fn begin_build(pool: &PgPool, params: &AlsParams, trainer: Trainer) -> Result<i64, sqlx::Error> {
    let params = serde_json::to_value(params).unwrap_or(Value::Null);
    sqlx::query_scalar(
        "INSERT INTO embedding_models (params, status, trainer) VALUES ($1, 'building', $2) RETURNING version",
    )
    .bind(params)
    .bind(trainer.as_str())
    .fetch_one(pool)
    .await
}

/// Writes vectors of one side with binary COPY (the floats go as their bytes: no printing
/// here, no parsing in Postgres), a megabyte at a time so a million vectors are never held
/// whole.
pub async fn copy_vectors(
    pool: &PgPool,
    table: VectorTable,
    version: i64,
    ids: &[i64],
    vectors: &ndarray::Array2<f32>,
) -> Result<(), sqlx::Error> {
    const CHUNK: usize = 1 << 20;
    let sql = match table {
        VectorTable::Users => "COPY user_vectors (model_version, user_id, vector) FROM STDIN (FORMAT binary)",
        VectorTable::Influencers => {
            "COPY influencer_vectors (model_version, influencer_id, vector) FROM STDIN (FORMAT binary)"
        }
    };
    let mut conn = pool.acquire().await?;
    let mut copy = conn.copy_in_raw(sql).await?;
    let mut writer = BinaryCopy::with_capacity(CHUNK + 4096);
    for (id, row) in ids.iter().zip(vectors.rows()) {
        writer.row(3);
        writer.int8(version);
        writer.int8(*id);
        writer.float4_array(row.iter().copied());
        if writer.len() >= CHUNK {
            copy.send(writer.take_chunk()).await?;
        }
    }
    copy.send(writer.finish()).await?;
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
    // Keep the previous version for readers that loaded it a moment ago, and any version a
    // running experiment serves; drop the rest (including builds that died half-way).
    sqlx::query(
        "DELETE FROM embedding_models WHERE version < $1
           AND version <> coalesce((SELECT max(version) FROM embedding_models WHERE status = 'retired' AND version < $1), 0)
           AND version NOT IN (SELECT (v->'settings'->>'model_version')::int8
                               FROM experiments x, jsonb_array_elements(x.variants) v
                               WHERE x.state = 'running' AND v->'settings'->>'model_version' IS NOT NULL)",
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

/// The ALS parameters of a built version (current or kept), None when it is gone.
pub async fn model_params(pool: &PgPool, version: i64) -> Result<Option<Value>, sqlx::Error> {
    sqlx::query_scalar("SELECT params FROM embedding_models WHERE version = $1 AND status <> 'building'")
        .bind(version)
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

/// Influencers the user follows now, and those they hide now ("not interested").
pub async fn followed_and_hidden(pool: &PgPool, user_id: i64) -> Result<(Vec<i64>, Vec<i64>), sqlx::Error> {
    let rows: Vec<(i64, bool)> = sqlx::query_as(
        "SELECT influencer_id, TRUE FROM follows WHERE user_id = $1 AND active
         UNION ALL
         SELECT influencer_id, FALSE FROM hides WHERE user_id = $1 AND active",
    )
    .bind(user_id)
    .fetch_all(pool)
    .await?;
    let (followed, hidden): (Vec<_>, Vec<_>) = rows.into_iter().partition(|(_, is_follow)| *is_follow);
    Ok((
        followed.into_iter().map(|r| r.0).collect(),
        hidden.into_iter().map(|r| r.0).collect(),
    ))
}

/// External ids of the influencers the user hides now.
pub async fn hidden_named(pool: &PgPool, user_id: i64) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT i.external_id FROM hides h JOIN influencers i ON i.id = h.influencer_id
         WHERE h.user_id = $1 AND h.active",
    )
    .bind(user_id)
    .fetch_all(pool)
    .await
}

/// Every influencer anyone has positive affinity with, by total affinity decayed to now
/// (the cold-start ranking), best first. Summed per influencer straight from the three
/// tables, without the `affinity` view's per-pair GROUP BY, and outside the statement
/// timeout: it runs in the background, over every user.
pub async fn popular_influencers(pool: &PgPool) -> Result<Vec<(i64, String, f64)>, sqlx::Error> {
    let mut tx = unbounded_snapshot(pool).await?;
    let ranked = sqlx::query_as(
        "WITH p AS (
             SELECT coalesce((weights ->> 'follow')::double precision, 0) AS follow_weight,
                    coalesce((weights ->> 'like')::double precision, 0) AS like_weight,
                    half_life_days * 86400.0 AS half_life_secs
             FROM affinity_params),
         parts AS (
             SELECT influencer_id, sum(score_ref) AS score_ref FROM affinity_activity GROUP BY influencer_id
             UNION ALL
             SELECT f.influencer_id, sum(p.follow_weight * f.weight
                        * power(2.0, (extract(epoch FROM f.changed_at) - 1577836800.0) / p.half_life_secs))
             FROM follows f CROSS JOIN p WHERE f.active GROUP BY f.influencer_id
             UNION ALL
             SELECT l.influencer_id, sum(p.like_weight * l.weight
                        * power(2.0, (extract(epoch FROM l.changed_at) - 1577836800.0) / p.half_life_secs))
             FROM likes l CROSS JOIN p WHERE l.active GROUP BY l.influencer_id),
         totals AS (
             SELECT influencer_id, sum(score_ref) AS score_ref FROM parts
             GROUP BY influencer_id HAVING sum(score_ref) > 0)
         SELECT t.influencer_id, i.external_id, affinity_now(t.score_ref) FROM totals t
         JOIN influencers i ON i.id = t.influencer_id
         ORDER BY t.score_ref DESC, i.external_id",
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(ranked)
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
