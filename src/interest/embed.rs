//! Rebuilding all interest vectors: affinity → ALS → a new model version, published
//! atomically. One build at a time across every process (an advisory lock).

use std::collections::HashMap;
use std::time::Instant;

use serde::Deserialize;
use sqlx::PgPool;

use super::als::{self, AlsParams, Confidences};
use crate::store::vectors::{self, BuildSummary, VectorTable};

/// `[embedding]`: the interest vectors' build and how their recommendations are cached.
#[derive(Debug, Clone, Deserialize)]
pub struct EmbeddingSettings {
    /// `[embedding.als]`: factors, regularization, alpha (confidence 1 + alpha · affinity),
    /// iterations, cg_steps, seed.
    pub als: AlsParams,
    /// Seconds between scheduled rebuilds by `serve`; 0 turns them off.
    pub rebuild_interval_secs: u64,
    /// How long a user's recommendations stay cached (engagement invalidates them sooner).
    pub recommendation_ttl_secs: u64,
}

/// Arbitrary but fixed: the advisory lock key of embedding builds.
const BUILD_LOCK: i64 = 7_421_002;

#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error("another embedding build is running")]
    Busy,
    #[error("no positive affinity to learn from yet")]
    NoData,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error("training task failed: {0}")]
    Task(String),
}

#[derive(Debug, Clone)]
pub struct EmbedReport {
    pub version: i64,
    pub users: usize,
    pub influencers: usize,
    pub interactions: usize,
    pub train_seconds: f64,
    pub total_seconds: f64,
}

/// What the build is doing, for progress bars.
pub enum Stage {
    Loading,
    Training { iteration: usize, of: usize },
    Writing,
}

pub async fn rebuild(
    pool: &PgPool,
    params: &AlsParams,
    progress: impl Fn(Stage) + Send + Sync + 'static,
) -> Result<EmbedReport, EmbedError> {
    let started = Instant::now();
    let mut lock = pool.acquire().await?;
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(BUILD_LOCK)
        .fetch_one(&mut *lock)
        .await?;
    if !locked {
        return Err(EmbedError::Busy);
    }
    let outcome = build(pool, params, progress, started).await;
    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(BUILD_LOCK)
        .execute(&mut *lock)
        .await?;
    outcome
}

async fn build(
    pool: &PgPool,
    params: &AlsParams,
    progress: impl Fn(Stage) + Send + Sync + 'static,
    started: Instant,
) -> Result<EmbedReport, EmbedError> {
    progress(Stage::Loading);
    let triples = vectors::affinity_triples(pool).await?;
    if triples.is_empty() {
        return Err(EmbedError::NoData);
    }
    let (user_ids, user_index) = dense_ids(triples.iter().map(|t| t.0));
    let (influencer_ids, influencer_index) = dense_ids(triples.iter().map(|t| t.1));
    let dense: Vec<(u32, u32, f32)> = triples
        .iter()
        .map(|&(u, i, a)| (user_index[&u], influencer_index[&i], a as f32))
        .collect();
    let data = Confidences::from_triples(user_ids.len(), influencer_ids.len(), &dense, params.alpha);
    let interactions = data.nnz();

    let train_params = *params;
    let train_started = Instant::now();
    let (model, progress) = tokio::task::spawn_blocking(move || {
        let model = als::train(&data, &train_params, |iteration| {
            progress(Stage::Training {
                iteration,
                of: train_params.iterations,
            })
        });
        (model, progress)
    })
    .await
    .map_err(|err| EmbedError::Task(err.to_string()))?;
    let train_seconds = train_started.elapsed().as_secs_f64();

    progress(Stage::Writing);
    let version = vectors::begin_build(pool, params).await?;
    vectors::copy_vectors(
        pool,
        VectorTable::Influencers,
        version,
        &influencer_ids,
        &model.item_factors,
    )
    .await?;
    vectors::copy_vectors(pool, VectorTable::Users, version, &user_ids, &model.user_factors).await?;
    let summary = BuildSummary {
        users: user_ids.len() as i32,
        influencers: influencer_ids.len() as i32,
        interactions: interactions as i64,
        train_seconds,
    };
    vectors::publish(pool, version, &summary).await?;
    Ok(EmbedReport {
        version,
        users: user_ids.len(),
        influencers: influencer_ids.len(),
        interactions,
        train_seconds,
        total_seconds: started.elapsed().as_secs_f64(),
    })
}

/// Sorted distinct ids and their dense indices.
fn dense_ids(ids: impl Iterator<Item = i64>) -> (Vec<i64>, HashMap<i64, u32>) {
    let mut distinct: Vec<i64> = ids.collect();
    distinct.sort_unstable();
    distinct.dedup();
    let index = distinct.iter().enumerate().map(|(n, id)| (*id, n as u32)).collect();
    (distinct, index)
}
