//! Influencer recommendations: top-k by u·v over the current ALS model, the user's vector
//! folded in from their affinity at request time (so it follows engagement within seconds
//! of a batch, without a rebuild), influencers they follow excluded. Users the model cannot
//! place (no model yet, no affinity with modelled influencers) get decayed popularity.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ndarray::Array2;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use tokio::sync::RwLock;

use crate::cache::Cache;
use crate::ingest::event::UserRef;
use crate::interest::als::{self, AlsParams};
use crate::store::vectors;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Scored by the ALS model.
    Als,
    /// Cold start: ranked by total decayed affinity.
    Popularity,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Scored {
    pub influencer: String,
    pub score: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Recommendations {
    pub user: String,
    pub strategy: Strategy,
    /// The embedding model that scored them (None for popularity without a model).
    pub model_version: Option<i64>,
    pub items: Vec<Scored>,
}

/// The current model's influencer side, held in memory.
struct LoadedModel {
    version: i64,
    alpha: f32,
    influencer_ids: Vec<i64>,
    external_ids: Vec<String>,
    index: HashMap<i64, usize>,
    factors: Array2<f32>,
    yty: Array2<f32>,
}

struct ModelSlot {
    model: Option<Arc<LoadedModel>>,
    checked_at: Option<Instant>,
}

pub struct Recommender {
    pool: PgPool,
    cache: Arc<Cache>,
    slot: RwLock<ModelSlot>,
    cache_ttl: Duration,
}

/// How many items are computed and cached per user; requests take the first k.
pub const MAX_K: usize = 100;
/// How often the current model version is re-read.
const MODEL_CHECK: Duration = Duration::from_secs(5);

pub fn cache_key(user: &str) -> String {
    format!("recs:{user}")
}

impl Recommender {
    pub fn new(pool: PgPool, cache: Arc<Cache>, cache_ttl: Duration) -> Self {
        Self {
            pool,
            cache,
            slot: RwLock::new(ModelSlot {
                model: None,
                checked_at: None,
            }),
            cache_ttl,
        }
    }

    pub async fn recommend(&self, user: &UserRef, k: usize) -> Result<Recommendations, sqlx::Error> {
        let model = self.model().await?;
        let version = model.as_ref().map(|m| m.version);
        if let Some(hit) = self.cached(user, version).await {
            metrics::counter!("stylecast_recommendation_cache_total", "result" => "hit").increment(1);
            return Ok(truncate(hit, k));
        }
        metrics::counter!("stylecast_recommendation_cache_total", "result" => "miss").increment(1);
        let full = self.compute(user, model.as_deref()).await?;
        if let Ok(bytes) = serde_json::to_vec(&full) {
            self.cache
                .set(&cache_key(user.as_str()), bytes.into(), self.cache_ttl)
                .await;
        }
        Ok(truncate(full, k))
    }

    async fn cached(&self, user: &UserRef, version: Option<i64>) -> Option<Recommendations> {
        let bytes = self.cache.get(&cache_key(user.as_str())).await?;
        let recs: Recommendations = serde_json::from_slice(&bytes).ok()?;
        // Valid while the model that made it is current (engagement invalidates the key).
        (recs.model_version == version).then_some(recs)
    }

    async fn compute(&self, user: &UserRef, model: Option<&LoadedModel>) -> Result<Recommendations, sqlx::Error> {
        let user_id = vectors::user_id(&self.pool, user.as_str()).await?;
        let followed: HashSet<i64> = match user_id {
            Some(id) => vectors::followed(&self.pool, id).await?.into_iter().collect(),
            None => HashSet::new(),
        };
        if let (Some(model), Some(user_id)) = (model, user_id) {
            if let Some(mut ranked) = self.model_scores(model, user_id).await? {
                ranked.retain(|(id, _, _)| !followed.contains(id));
                ranked.truncate(MAX_K);
                return Ok(Recommendations {
                    user: user.to_string(),
                    strategy: Strategy::Als,
                    model_version: Some(model.version),
                    items: ranked
                        .into_iter()
                        .map(|(_, influencer, score)| Scored { influencer, score })
                        .collect(),
                });
            }
        }
        let popular = vectors::popular_influencers(&self.pool, (MAX_K + followed.len()) as i64).await?;
        Ok(Recommendations {
            user: user.to_string(),
            strategy: Strategy::Popularity,
            model_version: model.map(|m| m.version),
            items: popular
                .into_iter()
                .filter(|(id, _, _)| !followed.contains(id))
                .take(MAX_K)
                .map(|(_, influencer, score)| Scored { influencer, score })
                .collect(),
        })
    }

    /// Every modelled influencer scored for the user (best first), with the model version;
    /// None when there is no model or the user cannot be placed in it.
    pub async fn scores(&self, user_id: i64) -> Result<Option<(i64, Vec<(i64, String, f64)>)>, sqlx::Error> {
        let Some(model) = self.model().await? else {
            return Ok(None);
        };
        Ok(self
            .model_scores(&model, user_id)
            .await?
            .map(|scores| (model.version, scores)))
    }

    async fn model_scores(
        &self,
        model: &LoadedModel,
        user_id: i64,
    ) -> Result<Option<Vec<(i64, String, f64)>>, sqlx::Error> {
        let affinity = vectors::user_affinity(&self.pool, user_id).await?;
        let Some(vector) = fold_in(model, &affinity) else {
            return Ok(None);
        };
        let mut ranked: Vec<(i64, String, f64)> = als::scores(&model.factors.view(), &vector)
            .into_iter()
            .enumerate()
            .map(|(n, score)| (model.influencer_ids[n], model.external_ids[n].clone(), f64::from(score)))
            .collect();
        ranked.sort_by(|a, b| b.2.total_cmp(&a.2).then(a.1.cmp(&b.1)));
        Ok(Some(ranked))
    }

    /// The current model, re-read at most every few seconds and reloaded when it changed.
    async fn model(&self) -> Result<Option<Arc<LoadedModel>>, sqlx::Error> {
        {
            let slot = self.slot.read().await;
            if slot.checked_at.is_some_and(|at| at.elapsed() < MODEL_CHECK) {
                return Ok(slot.model.clone());
            }
        }
        let mut slot = self.slot.write().await;
        if slot.checked_at.is_some_and(|at| at.elapsed() < MODEL_CHECK) {
            return Ok(slot.model.clone());
        }
        let current = vectors::current_model(&self.pool).await?;
        let loaded_version = slot.model.as_ref().map(|m| m.version);
        match current {
            Some(current) if Some(current.version) != loaded_version => {
                let params: AlsParams = serde_json::from_value(current.params).unwrap_or_default();
                let rows = vectors::influencer_vectors(&self.pool, current.version).await?;
                slot.model = load(current.version, params, rows).map(Arc::new);
                tracing::info!(version = current.version, "embedding model loaded");
            }
            Some(_) => {}
            None => slot.model = None,
        }
        slot.checked_at = Some(Instant::now());
        Ok(slot.model.clone())
    }
}

fn load(version: i64, params: AlsParams, rows: Vec<(i64, String, Vec<f32>)>) -> Option<LoadedModel> {
    let factors = rows.first()?.2.len();
    let mut flat = Vec::with_capacity(rows.len() * factors);
    let mut influencer_ids = Vec::with_capacity(rows.len());
    let mut external_ids = Vec::with_capacity(rows.len());
    for (id, external, vector) in rows {
        if vector.len() != factors {
            tracing::error!(version, id, "influencer vector of the wrong length; model not loaded");
            return None;
        }
        influencer_ids.push(id);
        external_ids.push(external);
        flat.extend(vector);
    }
    let matrix = Array2::from_shape_vec((influencer_ids.len(), factors), flat).ok()?;
    let yty = als::gramian(&matrix.view(), params.regularization);
    let index = influencer_ids.iter().enumerate().map(|(n, id)| (*id, n)).collect();
    Some(LoadedModel {
        version,
        alpha: params.alpha,
        influencer_ids,
        external_ids,
        index,
        factors: matrix,
        yty,
    })
}

/// The user's vector from their current affinity; None when nothing of it is in the model.
fn fold_in(model: &LoadedModel, affinity: &[(i64, f64)]) -> Option<Vec<f32>> {
    let mut cells: Vec<(u32, f32)> = affinity
        .iter()
        .filter(|(_, a)| *a > 0.0)
        .filter_map(|(id, a)| model.index.get(id).map(|n| (*n as u32, 1.0 + model.alpha * *a as f32)))
        .collect();
    if cells.is_empty() {
        return None;
    }
    cells.sort_by_key(|c| c.0);
    let (cols, confidences): (Vec<u32>, Vec<f32>) = cells.into_iter().unzip();
    Some(als::fold_in(&model.factors.view(), &model.yty, &cols, &confidences))
}

fn truncate(mut recs: Recommendations, k: usize) -> Recommendations {
    recs.items.truncate(k);
    recs
}
