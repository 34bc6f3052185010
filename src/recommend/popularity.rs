//! The cold-start ranking: influencers by total affinity decayed to now, computed ahead of
//! time and held in memory. Aggregating the affinity of every user for each request took
//! about 20 s at a million users; here requests read a ranking at most `max_age` old, which
//! a background task refreshes every `max_age / 2`. A `max_age` of zero recomputes it for
//! every request (small databases, tests).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use sqlx::PgPool;

use super::ranked::Scored;
use crate::store::vectors;

/// One computed ranking, best first.
pub struct Ranking {
    computed_at: Instant,
    ranked: Vec<(i64, String, f64)>,
    by_external_id: HashMap<String, f64>,
}

impl Ranking {
    fn new(ranked: Vec<(i64, String, f64)>) -> Self {
        let by_external_id = ranked.iter().map(|(_, id, score)| (id.clone(), *score)).collect();
        Self {
            computed_at: Instant::now(),
            ranked,
            by_external_id,
        }
    }

    /// The first `limit` influencers not in `excluded` (internal ids).
    pub fn top(&self, limit: usize, excluded: &HashSet<i64>) -> Vec<Scored> {
        self.ranked
            .iter()
            .filter(|(id, _, _)| !excluded.contains(id))
            .take(limit)
            .map(|(_, influencer, score)| Scored {
                influencer: influencer.clone(),
                score: *score,
            })
            .collect()
    }

    /// The scores of the given influencers (external ids) that anyone engaged with.
    pub fn scores_of(&self, influencers: &[String]) -> Vec<(String, f64)> {
        influencers
            .iter()
            .filter_map(|id| self.by_external_id.get(id).map(|score| (id.clone(), *score)))
            .collect()
    }
}

pub struct Popularity {
    pool: PgPool,
    max_age: Duration,
    current: RwLock<Option<Arc<Ranking>>>,
    /// Bumped by `invalidate`: a recomputation that began before it does not store its result.
    generation: AtomicU64,
    /// One recomputation at a time; requests that find the ranking too old wait for it.
    refreshing: tokio::sync::Mutex<()>,
}

impl Popularity {
    pub fn new(pool: PgPool, max_age: Duration) -> Self {
        Self {
            pool,
            max_age,
            current: RwLock::new(None),
            generation: AtomicU64::new(0),
            refreshing: tokio::sync::Mutex::new(()),
        }
    }

    /// A ranking at most `max_age` old: the one in memory, or a fresh one when it is older.
    pub async fn ranking(&self) -> Result<Arc<Ranking>, sqlx::Error> {
        let requested = Instant::now();
        if let Some(ranking) = self.fresh(requested) {
            return Ok(ranking);
        }
        let _one_at_a_time = self.refreshing.lock().await;
        // Whoever held the lock may have computed one after this request arrived.
        if let Some(ranking) = self.fresh(requested) {
            return Ok(ranking);
        }
        self.recompute().await
    }

    /// Keeps the ranking fresh so requests never wait for it; returns only when `max_age`
    /// is zero (then every request recomputes it).
    pub async fn keep_fresh(self: Arc<Self>) {
        if self.max_age.is_zero() {
            return;
        }
        loop {
            {
                let _one_at_a_time = self.refreshing.lock().await;
                if let Err(err) = self.recompute().await {
                    tracing::warn!(error = %err, "popularity ranking not refreshed; will retry");
                }
            }
            tokio::time::sleep(self.max_age / 2).await;
        }
    }

    /// Drops the ranking (an influencer was erased): the next request computes a new one.
    pub fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut current) = self.current.write() {
            *current = None;
        }
    }

    fn fresh(&self, requested: Instant) -> Option<Arc<Ranking>> {
        let current = self.current.read().ok()?.clone()?;
        let usable = if self.max_age.is_zero() {
            current.computed_at >= requested
        } else {
            current.computed_at.elapsed() <= self.max_age
        };
        usable.then_some(current)
    }

    async fn recompute(&self) -> Result<Arc<Ranking>, sqlx::Error> {
        let started = Instant::now();
        let generation = self.generation.load(Ordering::SeqCst);
        let ranking = Arc::new(Ranking::new(vectors::popular_influencers(&self.pool).await?));
        metrics::histogram!("stylecast_popularity_refresh_seconds").record(started.elapsed().as_secs_f64());
        if let Ok(mut current) = self.current.write() {
            if self.generation.load(Ordering::SeqCst) == generation {
                *current = Some(ranking.clone());
            }
        }
        Ok(ranking)
    }
}
