//! Feeds: personalized images a feed reads instead of waiting for.
//!
//! A user's feed is their interest blend plus their recommended influencers (those with a
//! usable style), each shown as the user's stored photo restyled. Every slot has a *spec*,
//! a hash of everything its image depends on; reading the feed records the specs, answers
//! at once with `ready` items (image stored for the current spec) and `pending` ones, and
//! queues a render job for each new or changed spec. Workers (`queue`, `worker`) render,
//! store the image by content hash and point the slot at it. Postgres is the truth; the
//! queue only says what to look at, so a lost job costs a delay, never a wrong image.

pub mod error;
pub mod photos;
pub mod queue;
pub mod settings;
pub mod worker;

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::PgPool;

use crate::generate::Generation;
use crate::ingest::event::UserRef;
use crate::interest::blend::{self, Blend, BlendSource, Weighted};
use crate::media::MediaLimits;
use crate::recommend::{Exclude, RecommendationRequest, MAX_K};
use crate::served::{ServedList, ServedTag, Surface};
use crate::store::feeds::{self as store_feeds, DesiredItem, FeedItemRow};
use crate::store::images::ImageStore;
use crate::store::styles;
use queue::{Job, JobQueue};

pub use error::FeedError;
pub use settings::FeedSettings;

/// What feeds run on, in a server (beside the HTTP state) and in a worker process alike.
pub struct Feeds {
    pub pool: PgPool,
    pub settings: FeedSettings,
    pub queue: Arc<JobQueue>,
    pub images: ImageStore,
    /// Limits on uploaded reference photos.
    pub limits: MediaLimits,
    /// Renders the slots, and says which influencers have a usable style.
    pub generation: Arc<Generation>,
}

pub const BLEND_SLOT: &str = "blend";

pub fn influencer_slot(influencer: &str) -> String {
    format!("influencer:{influencer}")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ItemStatus {
    Ready,
    Pending,
    /// Rendering failed `max_attempts` times for the current spec.
    Failed,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FeedItem {
    pub slot: String,
    /// `blend` (the user's interest blend) or `influencer`.
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub influencer: Option<String>,
    /// Rank among the user's recommendations (1-based); absent for the blend.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rank: Option<usize>,
    /// Recommendation score (influencer items) or the top blend score.
    pub score: f64,
    /// Style weights the image is painted with.
    pub weights: Vec<Weighted>,
    pub status: ItemStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FeedPage {
    pub user: String,
    pub items: Vec<FeedItem>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
    /// `als` or `popularity`: how the influencers were ranked.
    pub strategy: crate::recommend::Strategy,
    /// Render jobs this call queued.
    pub queued: usize,
    /// Echo `served_id` on events about this page's images (`image_like`, `image_view`).
    #[serde(flatten)]
    pub served: ServedTag,
}

/// Offsets into the ranked influencers, kept opaque to callers.
fn parse_cursor(cursor: Option<&str>) -> Result<usize, FeedError> {
    let Some(cursor) = cursor else { return Ok(0) };
    cursor
        .strip_prefix("o")
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|n| *n < MAX_K)
        .ok_or_else(|| FeedError::InvalidCursor(cursor.to_string()))
}

/// One page of the feed; never waits for a render.
pub async fn page(feeds: &Feeds, user: &UserRef, k: usize, cursor: Option<&str>) -> Result<FeedPage, FeedError> {
    let offset = parse_cursor(cursor)?;
    plan(feeds, user, offset, k, Serving::Served).await
}

/// Re-plans the first page after something the feed depends on changed.
pub async fn refresh(feeds: &Feeds, user: &UserRef) -> Result<usize, FeedError> {
    match plan(feeds, user, 0, feeds.settings.prefetch_k, Serving::Planned).await {
        Ok(page) => Ok(page.queued),
        // A user without a photo (deleted since) has nothing to render.
        Err(FeedError::NotFound(_)) => Ok(0),
        Err(err) => Err(err),
    }
}

/// Queues a re-plan for every user with a photo (after a new embedding model).
pub async fn refresh_all(feeds: &Feeds) {
    match store_feeds::all_users_with_photos(&feeds.pool).await {
        Ok(users) => {
            let jobs = users.into_iter().map(|user| Job::Refresh { user }).collect();
            feeds.queue.push(jobs).await;
        }
        Err(err) => tracing::warn!(error = %err, "could not queue feed refreshes"),
    }
}

/// Whether a plan is shown to the user (and so recorded as served) or only prepares renders.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Serving {
    Served,
    Planned,
}

async fn plan(feeds: &Feeds, user: &UserRef, offset: usize, k: usize, serving: Serving) -> Result<FeedPage, FeedError> {
    let generation = &feeds.generation;
    let assignment = generation.recommender.experiments().assign(user.as_str()).await;
    // The variant's generator: its encoder's styles, and its version in every slot's spec.
    let models = generation.pipeline_for(assignment.as_ref())?.models;
    let photo = store_feeds::photo_meta(&feeds.pool, user.as_str())
        .await?
        .ok_or_else(|| FeedError::NotFound(format!("photo of user {user:?} (PUT /v1/users/{{user}}/photo first)")))?;
    let styled = styles::styled_influencers(&feeds.pool, &models.encoder.version).await?;
    if styled.is_empty() {
        return Err(FeedError::NoStyles);
    }
    // Feeds keep their own semantics: looks of influencers the user already engages with
    // are what a feed should show, so only follows are left out.
    let request = RecommendationRequest {
        k: MAX_K,
        exclude: Exclude::Followed,
        exclude_influencers: Vec::new(),
        model_version: assignment.as_ref().and_then(|a| a.treatment.model_version),
    };
    let recs = generation.recommender.recommend(user, &request).await?;
    let ranked: Vec<(usize, String, f64)> = recs
        .items
        .into_iter()
        .filter(|item| styled.contains(&item.influencer))
        .enumerate()
        .map(|(rank, item)| (rank + 1, item.influencer, item.score))
        .collect();
    let spec_base = SpecBase {
        photo_sha256: &photo.sha256,
        settings: &feeds.settings,
        model_version: models.version(),
    };
    let mut slots: Vec<PlannedSlot> = Vec::new();
    // The feed mix of the user's experiment variant: with or without the blend image.
    let blend_slot = assignment
        .as_ref()
        .and_then(|a| a.treatment.feed_blend_slot)
        .unwrap_or(true);
    if offset == 0 && blend_slot {
        let blend = blend::interests(
            &feeds.pool,
            &generation.recommender,
            &styled,
            user.as_str(),
            generation.settings.interests_k,
            generation.settings.interests_temperature,
        )
        .await?;
        slots.push(PlannedSlot::blend(quantize(blend)));
    }
    let end = (offset + k).min(ranked.len());
    for (rank, influencer, score) in ranked.get(offset..end).unwrap_or_default() {
        slots.push(PlannedSlot::influencer(*rank, influencer, *score, recs.model_version));
    }
    let desired: Vec<DesiredItem> = slots.iter().map(|s| s.desired(&spec_base)).collect();
    let (rows, to_queue) = store_feeds::plan_items(
        &feeds.pool,
        photo.user_id,
        &desired,
        feeds.settings.requeue_after_secs,
        feeds.settings.max_attempts,
    )
    .await?;
    let jobs: Vec<Job> = slots
        .iter()
        .zip(&desired)
        .filter(|(_, d)| to_queue.contains(&d.slot))
        .map(|(slot, d)| slot.job(user.as_str(), &d.spec))
        .collect();
    let queued = jobs.len();
    feeds.queue.push(jobs).await;
    let items: Vec<FeedItem> = slots
        .into_iter()
        .zip(desired)
        .map(|(slot, d)| {
            slot.item(
                rows.iter().find(|r| r.slot == d.slot),
                &d.spec,
                feeds.settings.max_attempts,
            )
        })
        .collect();
    let served = ServedTag::new(assignment.as_ref());
    if serving == Serving::Served {
        generation.recommender.impressions().record(ServedList {
            tag: served.clone(),
            surface: Surface::Feed,
            user: user.to_string(),
            influencers: items.iter().map(|i| i.influencer.clone()).collect(),
            image_ids: items.iter().map(|i| i.image_id.clone()).collect(),
            model_version: recs.model_version,
            served_at: chrono::Utc::now(),
        });
    }
    Ok(FeedPage {
        user: user.to_string(),
        items,
        next_cursor: (end < ranked.len()).then(|| format!("o{end}")),
        strategy: recs.strategy,
        queued,
        served,
    })
}

/// Blend weights rounded to 0.01 (and renormalised), so small drifts in interest scores
/// do not re-render the blend image; a shift of a weight by 0.005 or more does.
fn quantize(mut blend: Blend) -> Blend {
    for w in &mut blend.weights {
        w.weight = (w.weight * 100.0).round() / 100.0;
    }
    blend.weights.retain(|w| w.weight > 0.0);
    let total: f64 = blend.weights.iter().map(|w| w.weight).sum();
    for w in &mut blend.weights {
        w.weight /= total;
    }
    blend
}

struct SpecBase<'a> {
    photo_sha256: &'a str,
    settings: &'a FeedSettings,
    model_version: String,
}

struct PlannedSlot {
    slot: String,
    influencer: Option<String>,
    rank: Option<usize>,
    score: f64,
    blend: Blend,
    recommendation_model: Option<i64>,
}

impl PlannedSlot {
    fn blend(blend: Blend) -> Self {
        Self {
            slot: BLEND_SLOT.to_string(),
            influencer: None,
            rank: None,
            score: blend.weights.first().map(|w| w.score).unwrap_or(0.0),
            recommendation_model: blend.model_version,
            blend,
        }
    }

    fn influencer(rank: usize, influencer: &str, score: f64, model: Option<i64>) -> Self {
        Self {
            slot: influencer_slot(influencer),
            influencer: Some(influencer.to_string()),
            rank: Some(rank),
            score,
            blend: Blend {
                source: BlendSource::Influencer,
                model_version: None,
                weights: vec![Weighted {
                    influencer: influencer.to_string(),
                    weight: 1.0,
                    score,
                }],
            },
            recommendation_model: model,
        }
    }

    fn weights_json(&self) -> serde_json::Value {
        serde_json::json!({
            "source": self.blend.source,
            "weights": self.blend.weights.iter().map(|w| (w.influencer.clone(), w.weight)).collect::<Vec<_>>(),
        })
    }

    fn desired(&self, base: &SpecBase<'_>) -> DesiredItem {
        let weights: Vec<String> = self
            .blend
            .weights
            .iter()
            .map(|w| format!("{}={:.4}", w.influencer, w.weight))
            .collect();
        let material = format!(
            "{}|{}|{}|{}|{}|{:?}|{}",
            base.photo_sha256,
            self.slot,
            weights.join(","),
            base.settings.strength,
            base.settings.size,
            base.settings.format,
            base.model_version
        );
        DesiredItem {
            slot: self.slot.clone(),
            influencer: self.influencer.clone(),
            blend: self.weights_json(),
            spec: hex::encode(&Sha256::digest(material.as_bytes())[..16]),
        }
    }

    fn job(&self, user: &str, spec: &str) -> Job {
        Job::Render {
            user: user.to_string(),
            slot: self.slot.clone(),
            spec: spec.to_string(),
            rank: self.rank.map(|r| r as i32).or(Some(0)),
            score: Some(self.score),
            recommendation_model: self.recommendation_model,
        }
    }

    fn item(self, row: Option<&FeedItemRow>, spec: &str, max_attempts: i32) -> FeedItem {
        let ready = row.filter(|r| r.spec == spec).and_then(|r| r.image_id.clone());
        let failed =
            row.filter(|r| r.spec == spec && ready.is_none() && r.attempts >= max_attempts && r.last_error.is_some());
        let status = match (&ready, failed) {
            (Some(_), _) => ItemStatus::Ready,
            (None, Some(_)) => ItemStatus::Failed,
            (None, None) => ItemStatus::Pending,
        };
        FeedItem {
            kind: if self.influencer.is_some() {
                "influencer"
            } else {
                "blend"
            },
            slot: self.slot,
            influencer: self.influencer,
            rank: self.rank,
            score: self.score,
            weights: self.blend.weights,
            status,
            url: ready.as_ref().map(|id| format!("/v1/images/{id}")),
            image_id: ready,
            error: failed.and_then(|r| r.last_error.clone()),
        }
    }
}

/// The blend a slot was planned with, as stored in `feed_items.blend`.
pub fn stored_blend(value: &serde_json::Value) -> Option<Blend> {
    #[derive(Deserialize)]
    struct Stored {
        source: String,
        weights: Vec<(String, f64)>,
    }
    let stored: Stored = serde_json::from_value(value.clone()).ok()?;
    let source = match stored.source.as_str() {
        "influencer" => BlendSource::Influencer,
        "interests" => BlendSource::Interests,
        "popularity" => BlendSource::Popularity,
        _ => BlendSource::Mix,
    };
    Some(Blend {
        source,
        model_version: None,
        weights: stored
            .weights
            .into_iter()
            .map(|(influencer, weight)| Weighted {
                influencer,
                weight,
                score: weight,
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blend(weights: &[(&str, f64)]) -> Blend {
        Blend {
            source: BlendSource::Interests,
            model_version: None,
            weights: weights
                .iter()
                .map(|(i, w)| Weighted {
                    influencer: i.to_string(),
                    weight: *w,
                    score: *w,
                })
                .collect(),
        }
    }

    #[test]
    fn quantized_blends_ignore_tiny_drifts_and_still_sum_to_one() {
        let a = quantize(blend(&[("a", 0.7012), ("b", 0.2988)]));
        let b = quantize(blend(&[("a", 0.7031), ("b", 0.2969)]));
        assert_eq!(
            a.weights.iter().map(|w| w.weight).collect::<Vec<_>>(),
            b.weights.iter().map(|w| w.weight).collect::<Vec<_>>()
        );
        let c = quantize(blend(&[("a", 0.72), ("b", 0.28)]));
        assert_ne!(a.weights[0].weight, c.weights[0].weight);
        assert!((c.weights.iter().map(|w| w.weight).sum::<f64>() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn cursors_round_trip_and_reject_strangers() {
        assert_eq!(parse_cursor(None).ok(), Some(0));
        assert_eq!(parse_cursor(Some("o10")).ok(), Some(10));
        for bad in ["10", "o-1", "ox", "o100000"] {
            assert!(parse_cursor(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn stored_blends_read_back() {
        let slot = PlannedSlot::blend(blend(&[("a", 0.6), ("b", 0.4)]));
        let back = stored_blend(&slot.weights_json()).expect("parses");
        assert_eq!(back.source, BlendSource::Interests);
        assert_eq!(back.weights.len(), 2);
        assert_eq!(back.weights[1].influencer, "b");
    }
}
