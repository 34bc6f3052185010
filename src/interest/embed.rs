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
    /// How old the in-memory popularity ranking (cold start) may be when served; `serve`
    /// refreshes it every half of this. 0 recomputes it for every request.
    pub popularity_max_age_secs: u64,
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
    /// Streaming the affinity out of Postgres into the matrix.
    pub load_seconds: f64,
    pub train_seconds: f64,
    /// Writing both sides' vectors and publishing the version.
    pub write_seconds: f64,
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
    with_build_lock(pool, build(pool, params, progress, started)).await
}

/// Runs `work` holding the build lock (one build or import at a time across every process),
/// or answers `Busy` at once.
pub(super) async fn with_build_lock<T, E: From<EmbedError> + From<sqlx::Error>>(
    pool: &PgPool,
    work: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, E> {
    let mut lock = pool.acquire().await?;
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(BUILD_LOCK)
        .fetch_one(&mut *lock)
        .await?;
    if !locked {
        return Err(EmbedError::Busy.into());
    }
    let outcome = work.await;
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
    let matrix = load_matrix(pool).await?;
    if matrix.cells.is_empty() {
        return Err(EmbedError::NoData);
    }
    let LoadedMatrix {
        user_ids,
        influencer_ids,
        cells: dense,
    } = matrix;
    let data = Confidences::from_triples(user_ids.len(), influencer_ids.len(), dense, params.alpha);
    let interactions = data.nnz();
    let load_seconds = started.elapsed().as_secs_f64();

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
    let write_started = Instant::now();
    let version = vectors::begin_build(pool, params, vectors::Trainer::Native).await?;
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
        load_seconds,
        train_seconds,
        write_seconds: write_started.elapsed().as_secs_f64(),
        total_seconds: started.elapsed().as_secs_f64(),
    })
}

/// The interaction matrix with dense indices: `cells` index `user_ids` and `influencer_ids`,
/// both sorted, so the same data gives the same matrix (and, seeded, the same model)
/// whatever order Postgres streamed it in.
pub(super) struct LoadedMatrix {
    pub user_ids: Vec<i64>,
    pub influencer_ids: Vec<i64>,
    pub cells: Vec<(u32, u32, f32)>,
}

/// Streams affinity into 12-byte cells, numbering ids as they first appear, then renumbers
/// both sides in id order. A million users × 10M cells holds about 120 MB of cells here.
pub(super) async fn load_matrix(pool: &PgPool) -> Result<LoadedMatrix, sqlx::Error> {
    let mut users = DenseIds::default();
    let mut influencers = DenseIds::default();
    let mut cells = Vec::new();
    vectors::stream_affinity(pool, |user, influencer, affinity| {
        cells.push((users.index(user), influencers.index(influencer), affinity as f32));
    })
    .await?;
    let (user_ids, user_order) = users.into_sorted();
    let (influencer_ids, influencer_order) = influencers.into_sorted();
    for cell in &mut cells {
        cell.0 = user_order[cell.0 as usize];
        cell.1 = influencer_order[cell.1 as usize];
    }
    Ok(LoadedMatrix {
        user_ids,
        influencer_ids,
        cells,
    })
}

/// Ids numbered in the order they first appear.
#[derive(Default)]
struct DenseIds {
    seen: Vec<i64>,
    index: HashMap<i64, u32>,
}

impl DenseIds {
    fn index(&mut self, id: i64) -> u32 {
        let next = self.seen.len() as u32;
        *self.index.entry(id).or_insert_with(|| {
            self.seen.push(id);
            next
        })
    }

    /// The ids sorted, and for each first-seen number its position among them.
    fn into_sorted(self) -> (Vec<i64>, Vec<u32>) {
        let mut by_id: Vec<u32> = (0..self.seen.len() as u32).collect();
        by_id.sort_unstable_by_key(|&n| self.seen[n as usize]);
        let mut position = vec![0u32; self.seen.len()];
        for (rank, &n) in by_id.iter().enumerate() {
            position[n as usize] = rank as u32;
        }
        let sorted = by_id.iter().map(|&n| self.seen[n as usize]).collect();
        (sorted, position)
    }
}

#[cfg(test)]
mod tests {
    use super::DenseIds;

    #[test]
    fn dense_ids_are_renumbered_in_id_order() {
        let mut ids = DenseIds::default();
        let first_seen: Vec<u32> = [30, 10, 30, 20, 10].into_iter().map(|id| ids.index(id)).collect();
        assert_eq!(first_seen, vec![0, 1, 0, 2, 1]);
        let (sorted, position) = ids.into_sorted();
        assert_eq!(sorted, vec![10, 20, 30]);
        // 30 was seen first and sorts last; 10 second and sorts first.
        assert_eq!(position, vec![2, 0, 1]);
    }
}
