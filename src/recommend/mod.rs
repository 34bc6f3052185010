//! Influencer recommendations: top-k by u·v over the current ALS model, the user's vector
//! folded in from their affinity at request time (so it follows engagement within seconds
//! of a batch, without a rebuild). What the user already has is left out: by default every
//! influencer they follow or engaged with (`exclude=engaged`), or only follows
//! (`exclude=followed`), always those they hid, plus whatever the caller names. Users the model cannot place (no
//! model yet, no affinity with modelled influencers) get the decayed popularity ranking,
//! which is held in memory (`popularity`).

pub mod popularity;
mod ranked;

pub use ranked::Scored;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ndarray::Array2;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use tokio::sync::RwLock;

use crate::cache::Cache;
use crate::experiment::Experiments;
use crate::ingest::event::UserRef;
use crate::interest::als::{self, AlsParams};
use crate::served::{Impressions, ServedList, ServedTag, Surface};
use crate::store::vectors;
use popularity::Popularity;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Scored by the ALS model.
    Als,
    /// Cold start: ranked by total decayed affinity.
    Popularity,
}

/// Which influencers a user already has and so never gets recommended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Exclude {
    /// Every influencer the user follows or has positive affinity with (likes, views,
    /// comments, shares, image engagement), decayed to now.
    #[default]
    Engaged,
    /// Only the influencers the user follows now.
    Followed,
}

impl Exclude {
    fn as_str(self) -> &'static str {
        match self {
            Self::Engaged => "engaged",
            Self::Followed => "followed",
        }
    }
}

/// What a caller asks for.
#[derive(Debug, Clone, Default)]
pub struct RecommendationRequest {
    pub k: usize,
    pub exclude: Exclude,
    /// Influencers (external ids) left out of this answer only, on top of `exclude`.
    pub exclude_influencers: Vec<String>,
    /// Score with this embedding model version instead of the current one (an experiment's
    /// variant); the current one serves when it is gone.
    pub model_version: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Recommendations {
    pub user: String,
    pub strategy: Strategy,
    /// The embedding model that scored them (None for popularity without a model).
    pub model_version: Option<i64>,
    pub items: Vec<Scored>,
}

/// A recommendations answer as served: the list, its id and the variant that served it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ServedRecommendations {
    #[serde(flatten)]
    pub recommendations: Recommendations,
    #[serde(flatten)]
    pub served: ServedTag,
}

/// The current model's influencer side, held in memory.
struct LoadedModel {
    version: i64,
    alpha: f32,
    influencer_ids: Vec<i64>,
    external_ids: Vec<String>,
    index: HashMap<i64, usize>,
    by_external_id: HashMap<String, usize>,
    factors: Array2<f32>,
    yty: Array2<f32>,
}

impl LoadedModel {
    /// The `limit` best-scored influencers for a user vector, leaving out `excluded`: one
    /// pass over the factors, then a partial selection (no full sort, no string per
    /// influencer). Ties go to the smaller external id, so answers are stable.
    fn top(&self, vector: &[f32], limit: usize, excluded: &HashSet<i64>) -> Vec<Scored> {
        let scores = als::scores(&self.factors.view(), vector);
        let mut candidates: Vec<(f32, u32)> = scores.into_iter().zip(0u32..).collect();
        let better = |a: &(f32, u32), b: &(f32, u32)| {
            b.0.total_cmp(&a.0)
                .then_with(|| self.external_ids[a.1 as usize].cmp(&self.external_ids[b.1 as usize]))
        };
        // The excluded can only remove that many from the head of the ranking.
        let keep = (limit + excluded.len()).min(candidates.len());
        if keep == 0 {
            return Vec::new();
        }
        if keep < candidates.len() {
            candidates.select_nth_unstable_by(keep - 1, better);
            candidates.truncate(keep);
        }
        candidates.sort_unstable_by(better);
        candidates
            .into_iter()
            .filter(|(_, n)| !excluded.contains(&self.influencer_ids[*n as usize]))
            .take(limit)
            .map(|(score, n)| Scored {
                influencer: self.external_ids[n as usize].clone(),
                score: f64::from(score),
            })
            .collect()
    }

    /// Scores of the named influencers (external ids) that the model knows.
    fn scores_of(&self, vector: &[f32], influencers: &[String]) -> Vec<(String, f64)> {
        influencers
            .iter()
            .filter_map(|id| {
                let row = self.factors.row(*self.by_external_id.get(id)?);
                let score: f32 = row.dot(&ndarray::ArrayView1::from(vector));
                Some((id.clone(), f64::from(score)))
            })
            .collect()
    }
}

struct ModelSlot {
    model: Option<Arc<LoadedModel>>,
    /// Versions other than the current one that experiments serve, loaded on first use
    /// (None: the version does not exist).
    pinned: HashMap<i64, Option<Arc<LoadedModel>>>,
    checked_at: Option<Instant>,
    /// Influencer erasures when the model was loaded (`store::erasure::influencer_erasures`).
    catalogue: Option<i64>,
}

pub struct Recommender {
    pool: PgPool,
    cache: Arc<Cache>,
    slot: RwLock<ModelSlot>,
    cache_ttl: Duration,
    popularity: Arc<Popularity>,
    experiments: Arc<Experiments>,
    impressions: Impressions,
}

/// How many items are computed and cached per user; requests take the first k.
pub const MAX_K: usize = 100;
/// How many influencers one request may exclude by name.
pub const MAX_EXCLUDED_BY_NAME: usize = 100;
/// How often the current model version is re-read.
const MODEL_CHECK: Duration = Duration::from_secs(5);

/// Every cache key that names the user: their lists, one per exclusion mode, and their
/// generation counter. Erasure deletes them (an absent counter validates nothing, so a list
/// still being computed is not served either); engagement only bumps the counter
/// (`invalidate_users`).
pub fn cache_keys(user: &str) -> [String; 3] {
    [
        cache_key(user, Exclude::Engaged),
        cache_key(user, Exclude::Followed),
        user_generation(user),
    ]
}

fn cache_key(user: &str, exclude: Exclude) -> String {
    format!("recs:{}:{user}", exclude.as_str())
}

/// The counter a user's cached lists are checked against; engagement bumps it.
fn user_generation(user: &str) -> String {
    format!("recs-generation:user:{user}")
}

/// The counter every cached list is checked against; an influencer's erasure bumps it.
const CATALOGUE_GENERATION: &str = "recs-generation:catalogue";

/// The users' cached recommendations were computed from state that changed: none of them is
/// served again, including one a request still computing from the old state stores later.
pub async fn invalidate_users<'a>(cache: &Cache, users: impl IntoIterator<Item = &'a str>) {
    cache.bump_generations(users.into_iter().map(user_generation)).await;
}

/// A cached list with the generations read before it was computed.
#[derive(Serialize, Deserialize)]
struct CachedRecommendations {
    generations: Vec<u64>,
    recommendations: Recommendations,
}

impl CachedRecommendations {
    /// Valid while the model that made it is current and no engagement or erasure happened
    /// since it was computed (every counter it was stored under still reads the same).
    fn is_current(&self, model_version: Option<i64>, generations: &[Option<u64>]) -> bool {
        self.recommendations.model_version == model_version
            && generations
                .iter()
                .map(Option::as_ref)
                .eq(self.generations.iter().map(Some))
    }
}

impl Recommender {
    /// `popularity_max_age`: how old the in-memory cold-start ranking may be when served.
    pub fn new(
        pool: PgPool,
        cache: Arc<Cache>,
        cache_ttl: Duration,
        popularity_max_age: Duration,
        experiments: Arc<Experiments>,
        impressions: Impressions,
    ) -> Self {
        Self {
            popularity: Arc::new(Popularity::new(pool.clone(), popularity_max_age)),
            pool,
            cache,
            slot: RwLock::new(ModelSlot {
                model: None,
                pinned: HashMap::new(),
                checked_at: None,
                catalogue: None,
            }),
            cache_ttl,
            experiments,
            impressions,
        }
    }

    /// The experiments every surface asks for a user's variant.
    pub fn experiments(&self) -> &Arc<Experiments> {
        &self.experiments
    }

    /// Where served lists are recorded.
    pub fn impressions(&self) -> &Impressions {
        &self.impressions
    }

    /// `GET …/recommendations`: the user's variant applied, the answer recorded as served.
    pub async fn serve(
        &self,
        user: &UserRef,
        request: &RecommendationRequest,
    ) -> Result<ServedRecommendations, sqlx::Error> {
        let assignment = self.experiments.assign(user.as_str()).await;
        let mut request = request.clone();
        if let Some(version) = assignment.as_ref().and_then(|a| a.treatment.model_version) {
            request.model_version = Some(version);
        }
        let recommendations = self.recommend(user, &request).await?;
        let served = ServedTag::new(assignment.as_ref());
        self.impressions.record(ServedList {
            tag: served.clone(),
            surface: Surface::Recommendations,
            user: user.to_string(),
            influencers: recommendations
                .items
                .iter()
                .map(|i| Some(i.influencer.clone()))
                .collect(),
            image_ids: Vec::new(),
            model_version: recommendations.model_version,
            served_at: chrono::Utc::now(),
        });
        Ok(ServedRecommendations {
            recommendations,
            served,
        })
    }

    /// The cold-start ranking, for the task that keeps it fresh and for blends.
    pub fn popularity(&self) -> &Arc<Popularity> {
        &self.popularity
    }

    pub async fn recommend(
        &self,
        user: &UserRef,
        request: &RecommendationRequest,
    ) -> Result<Recommendations, sqlx::Error> {
        let model = self.model_for(request.model_version).await?;
        let version = model.as_ref().map(|m| m.version);
        let key = cache_key(user.as_str(), request.exclude);
        let counters = [user_generation(user.as_str()), CATALOGUE_GENERATION.to_string()];
        let read = self.cache.get_with_generations(&key, &counters).await;
        let hit = read
            .value
            .and_then(|bytes| serde_json::from_slice::<CachedRecommendations>(&bytes).ok())
            .filter(|cached| cached.is_current(version, &read.generations));
        let full = match hit {
            Some(hit) => {
                metrics::counter!("stylecast_recommendation_cache_total", "result" => "hit").increment(1);
                hit.recommendations
            }
            None => {
                metrics::counter!("stylecast_recommendation_cache_total", "result" => "miss").increment(1);
                let generations = self.current_generations(&counters, read.generations).await;
                let recommendations = self.compute(user, request.exclude, model.as_deref()).await?;
                let cached = CachedRecommendations {
                    generations,
                    recommendations,
                };
                if let Ok(bytes) = serde_json::to_vec(&cached) {
                    self.cache.set(&key, bytes.into(), self.cache_ttl).await;
                }
                cached.recommendations
            }
        };
        Ok(answer(full, request))
    }

    /// The generations to store a fresh list under, read before it is computed; counters
    /// that do not exist yet are started now.
    async fn current_generations(&self, counters: &[String], read: Vec<Option<u64>>) -> Vec<u64> {
        let missing: Vec<String> = counters
            .iter()
            .zip(&read)
            .filter(|(_, generation)| generation.is_none())
            .map(|(counter, _)| counter.clone())
            .collect();
        let mut started = self.cache.bump_generations(missing).await.into_iter();
        read.into_iter()
            .map(|generation| generation.or_else(|| started.next()).unwrap_or_default())
            .collect()
    }

    /// The cached form: enough items that any request's own exclusions still leave k.
    async fn compute(
        &self,
        user: &UserRef,
        exclude: Exclude,
        model: Option<&LoadedModel>,
    ) -> Result<Recommendations, sqlx::Error> {
        let limit = MAX_K + MAX_EXCLUDED_BY_NAME;
        let user_id = vectors::user_id(&self.pool, user.as_str()).await?;
        let (affinity, (followed, hidden)) = match user_id {
            Some(id) => (
                vectors::user_affinity(&self.pool, id).await?,
                vectors::followed_and_hidden(&self.pool, id).await?,
            ),
            None => (Vec::new(), (Vec::new(), Vec::new())),
        };
        // Hidden influencers are out whatever the mode: the user said "not interested".
        let mut excluded: HashSet<i64> = followed.into_iter().chain(hidden).collect();
        if exclude == Exclude::Engaged {
            excluded.extend(affinity.iter().filter(|(_, a)| *a > 0.0).map(|(id, _)| *id));
        }
        if let Some((model, vector)) = model.and_then(|m| fold_in(m, &affinity).map(|v| (m, v))) {
            return Ok(Recommendations {
                user: user.to_string(),
                strategy: Strategy::Als,
                model_version: Some(model.version),
                items: model.top(&vector, limit, &excluded),
            });
        }
        Ok(Recommendations {
            user: user.to_string(),
            strategy: Strategy::Popularity,
            model_version: model.map(|m| m.version),
            items: self.popularity.ranking().await?.top(limit, &excluded),
        })
    }

    /// The user's ALS scores for the named influencers (external ids) with the model
    /// version; None when there is no model or the user cannot be placed in it.
    pub async fn scores_of(
        &self,
        user_id: i64,
        influencers: &[String],
        model_version: Option<i64>,
    ) -> Result<Option<(i64, Vec<(String, f64)>)>, sqlx::Error> {
        let Some(model) = self.model_for(model_version).await? else {
            return Ok(None);
        };
        let affinity = vectors::user_affinity(&self.pool, user_id).await?;
        Ok(fold_in(&model, &affinity).map(|vector| (model.version, model.scores_of(&vector, influencers))))
    }

    /// The model of `version` when asked and it exists, else the current one.
    async fn model_for(&self, version: Option<i64>) -> Result<Option<Arc<LoadedModel>>, sqlx::Error> {
        let current = self.model().await?;
        let Some(version) = version.filter(|v| current.as_ref().map(|m| m.version) != Some(*v)) else {
            return Ok(current);
        };
        if let Some(pinned) = self.slot.read().await.pinned.get(&version) {
            return Ok(pinned.clone().or(current));
        }
        let loaded = match vectors::model_params(&self.pool, version).await? {
            Some(params) => {
                let params: AlsParams = serde_json::from_value(params).unwrap_or_default();
                let rows = vectors::influencer_vectors(&self.pool, version).await?;
                load(version, params, rows).map(Arc::new)
            }
            None => None,
        };
        if loaded.is_none() {
            tracing::warn!(
                version,
                "an experiment's model version is gone; serving the current model"
            );
        }
        self.slot.write().await.pinned.insert(version, loaded.clone());
        Ok(loaded.or(current))
    }

    /// The current model, re-read at most every few seconds and reloaded when it changed,
    /// or when an influencer was erased since it was loaded (its vector is gone).
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
        let catalogue = crate::store::erasure::influencer_erasures(&self.pool).await?;
        let catalogue_changed = slot.catalogue.is_some_and(|seen| seen != catalogue);
        if catalogue_changed {
            self.popularity.invalidate();
            slot.pinned.clear();
        }
        let loaded_version = slot.model.as_ref().map(|m| m.version);
        match current {
            Some(current) if Some(current.version) != loaded_version || catalogue_changed => {
                let params: AlsParams = serde_json::from_value(current.params).unwrap_or_default();
                let rows = vectors::influencer_vectors(&self.pool, current.version).await?;
                slot.model = load(current.version, params, rows).map(Arc::new);
                tracing::info!(version = current.version, "embedding model loaded");
            }
            Some(_) => {}
            None => slot.model = None,
        }
        slot.catalogue = Some(catalogue);
        slot.checked_at = Some(Instant::now());
        Ok(slot.model.clone())
    }

    /// An influencer was erased here: the model and the popularity ranking are read again
    /// now, not at the next check, and every cached list (any may name them) is dropped.
    pub async fn influencer_erased(&self) {
        {
            let mut slot = self.slot.write().await;
            slot.checked_at = None;
            slot.catalogue = None;
            slot.model = None;
            slot.pinned.clear();
        }
        self.popularity.invalidate();
        self.cache.bump_generations([CATALOGUE_GENERATION.to_string()]).await;
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
    let by_external_id = external_ids.iter().enumerate().map(|(n, id)| (id.clone(), n)).collect();
    Some(LoadedModel {
        version,
        alpha: params.alpha,
        influencer_ids,
        external_ids,
        index,
        by_external_id,
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

/// The request's view of a computed list: its own exclusions out, then the first k.
fn answer(mut recs: Recommendations, request: &RecommendationRequest) -> Recommendations {
    if !request.exclude_influencers.is_empty() {
        recs.items
            .retain(|item| !request.exclude_influencers.contains(&item.influencer));
    }
    recs.items.truncate(request.k);
    recs
}
