//! Erasure: a user can be forgotten everywhere the service keeps them (GDPR Art. 17, CCPA).
//!
//! `DELETE /v1/users/{user}` removes, in one Postgres transaction, every row keyed by the
//! user (events in every partition and their idempotency keys, follows, likes, hides,
//! affinity, vectors of every model version, the stored photo, feed items, stored images),
//! anonymises their generation records (provenance stays: time, model, blend; the user and
//! the photo's hash go), and logs the erasure under a salted hash of the external id. Then it
//! drops what lives outside Postgres: image files, the generation and recommendation cache
//! entries, queued feed jobs, and this process's id cache.
//!
//! What is kept: anonymous generation records, and the user's influence on influencer factors
//! until the next model build (`embedding.rebuild_interval_secs`, hourly by default).
//!
//! `DELETE /v1/influencers/{influencer}` does the same for an influencer: reference photos,
//! style, every user's events with them and what those made, vectors, feed items and images
//! in their style; recommendations and blends drop them at once (the recommender reloads its
//! model and ranking), and generation records keep their share as `erased_influencer`.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use tokio::sync::OnceCell;

use crate::cache::Cache;
use crate::feed::Feeds;
use crate::ingest::event::{InfluencerRef, UserRef};
use crate::store::erasure as store_erasure;
use crate::store::images::ImageStoreError;
use crate::store::people_ids::{People, PeopleIds};

#[derive(Debug, thiserror::Error)]
pub enum ErasureError {
    #[error("no user {0:?} is known (never seen, or already erased)")]
    UnknownUser(String),
    #[error("no influencer {0:?} is known (never seen, or already erased)")]
    UnknownInfluencer(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error("removing stored image files")]
    Images(#[from] ImageStoreError),
}

/// What `DELETE /v1/influencers/{influencer}` answers.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct InfluencerErasure {
    pub influencer: String,
    pub erased_at: DateTime<Utc>,
    /// Rows removed per kind: event_keys, events, follows, likes, hides, affinity, photos,
    /// styles, vectors, feed_items, images, generations_anonymised; then cache_entries.
    pub removed: BTreeMap<String, u64>,
}

/// What `DELETE /v1/users/{user}` answers.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserErasure {
    pub user: String,
    pub erased_at: DateTime<Utc>,
    /// Rows removed per kind: event_keys, events, follows, likes, hides, affinity, vectors,
    /// feed_items, photos, images, generations_anonymised; then cache_entries and feed_jobs.
    pub removed: BTreeMap<String, u64>,
}

/// The salted hashes of the erasure log.
pub struct ErasureLog {
    pool: PgPool,
    salt: OnceCell<Vec<u8>>,
}

impl ErasureLog {
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            salt: OnceCell::new(),
        }
    }

    /// hex SHA-256 of the deployment's salt and the external id.
    pub async fn subject_hash(&self, external_id: &str) -> Result<String, sqlx::Error> {
        let salt = self.salt.get_or_try_init(|| store_erasure::salt(&self.pool)).await?;
        let mut hasher = Sha256::new();
        hasher.update(salt);
        hasher.update(external_id.as_bytes());
        Ok(hex::encode(hasher.finalize()))
    }

    /// Of these external user ids, those erased since `since`.
    pub async fn erased_since<'a>(
        &self,
        users: impl IntoIterator<Item = &'a str>,
        since: DateTime<Utc>,
    ) -> Result<HashSet<String>, sqlx::Error> {
        let mut by_hash = BTreeMap::new();
        for user in users {
            by_hash.insert(self.subject_hash(user).await?, user);
        }
        if by_hash.is_empty() {
            return Ok(HashSet::new());
        }
        let hashes: Vec<String> = by_hash.keys().cloned().collect();
        let erased = store_erasure::erased_since(&self.pool, &hashes, since).await?;
        Ok(by_hash
            .into_iter()
            .filter(|(hash, _)| erased.contains(hash))
            .map(|(_, user)| user.to_string())
            .collect())
    }
}

pub struct Erasure {
    pub pool: PgPool,
    pub cache: Arc<Cache>,
    pub feeds: Arc<Feeds>,
    pub recommender: Arc<crate::recommend::Recommender>,
    /// The ingest id cache of this process: an erased person's id must not be reused.
    pub people: Arc<PeopleIds>,
    pub log: ErasureLog,
}

/// The longest an erasure waits for queued served lists to be written.
const FLUSH_BEFORE_ERASURE: std::time::Duration = std::time::Duration::from_secs(5);

impl Erasure {
    /// Erases the user everywhere. A second call answers `UnknownUser`: nothing of them is
    /// left to find.
    pub async fn erase_user(&self, user: &UserRef) -> Result<UserErasure, ErasureError> {
        let subject_hash = self.log.subject_hash(user.as_str()).await?;
        // Lists served to them that are still queued land first, and so go with the rest.
        self.recommender.impressions().flush(FLUSH_BEFORE_ERASURE).await;
        let erased = store_erasure::erase_user(&self.pool, user.as_str(), &subject_hash)
            .await?
            .ok_or_else(|| ErasureError::UnknownUser(user.to_string()))?;
        self.people.forget(People::Users, user.as_str());
        self.feeds.images.remove_blobs(&erased.image_ids).await?;
        let mut cache_keys = erased.cache_keys;
        cache_keys.extend(crate::recommend::cache_keys(user.as_str()));
        let cache_entries = cache_keys.len() as u64;
        self.cache.delete_many(cache_keys).await;
        let feed_jobs = match self.feeds.queue.forget_user(user.as_str()).await {
            Ok(removed) => removed as u64,
            Err(err) => {
                // Jobs name only the user id and rows that are gone; a worker drops them.
                tracing::warn!(error = %err, "could not remove the erased user's queued feed jobs");
                0
            }
        };
        let mut removed: BTreeMap<String, u64> = erased
            .counts
            .into_iter()
            .map(|(kind, n)| (kind.to_string(), n))
            .collect();
        removed.insert("cache_entries".into(), cache_entries);
        removed.insert("feed_jobs".into(), feed_jobs);
        metrics::counter!("stylecast_erasures_total", "subject" => "user").increment(1);
        tracing::info!(subject_hash = %subject_hash, "user erased");
        Ok(UserErasure {
            user: user.to_string(),
            erased_at: Utc::now(),
            removed,
        })
    }

    /// Erases the influencer: reference photos and style, every user's events with them and
    /// the state and affinity those made, their vectors (they leave recommendations and
    /// blends now, before the next build), feed items and stored images in their style.
    /// Generation records keep their share of a blend as `erased_influencer`.
    pub async fn erase_influencer(&self, influencer: &InfluencerRef) -> Result<InfluencerErasure, ErasureError> {
        let subject_hash = self.log.subject_hash(influencer.as_str()).await?;
        self.recommender.impressions().flush(FLUSH_BEFORE_ERASURE).await;
        let erased = store_erasure::erase_influencer(&self.pool, influencer.as_str(), &subject_hash)
            .await?
            .ok_or_else(|| ErasureError::UnknownInfluencer(influencer.to_string()))?;
        self.people.forget(People::Influencers, influencer.as_str());
        self.feeds.images.remove_blobs(&erased.image_ids).await?;
        let cache_entries = erased.cache_keys.len() as u64;
        self.cache.delete_many(erased.cache_keys).await;
        self.recommender.influencer_erased().await;
        // Feeds whose items showed them re-plan without them.
        crate::feed::refresh_all(&self.feeds).await;
        let mut removed: BTreeMap<String, u64> = erased
            .counts
            .into_iter()
            .map(|(kind, n)| (kind.to_string(), n))
            .collect();
        removed.insert("cache_entries".into(), cache_entries);
        metrics::counter!("stylecast_erasures_total", "subject" => "influencer").increment(1);
        tracing::info!(subject_hash = %subject_hash, "influencer erased");
        Ok(InfluencerErasure {
            influencer: influencer.to_string(),
            erased_at: Utc::now(),
            removed,
        })
    }
}
