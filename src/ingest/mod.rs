//! Bulk engagement ingest: parse and validate a batch, then write the new events, the
//! current state they change and the affinity they add in one transaction.
//! A 2xx answer is sent only after that transaction committed.

pub mod error;
pub mod event;
pub mod parse;
pub mod state;

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use bytes::Bytes;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

pub use error::IngestError;
pub use event::{Event, EventKind, Toggle};
pub use parse::{BatchFormat, Rejection, ValidationRules};

use crate::cache::Cache;
use crate::interest::AffinityModel;
use crate::store::events as store_events;
use crate::store::partitions::{Month, Partitions};
use crate::store::people_ids::{People, PeopleIds};
use state::{BatchEffects, ResolvedEvent};

/// `[ingest]`: batch limits and validation.
#[derive(Debug, Clone, Deserialize)]
pub struct IngestSettings {
    pub max_events_per_batch: usize,
    pub max_body_bytes: usize,
    /// Events further than this in the future are rejected (clock skew allowance).
    pub max_future_skew_secs: i64,
    /// Events before this instant are rejected (RFC 3339).
    pub min_occurred_at: chrono::DateTime<chrono::Utc>,
    /// Attempts for a batch transaction that hits a deadlock or serialization failure.
    pub max_attempts: u32,
    /// External-id → internal-id entries cached per process, for users and for influencers each.
    pub people_cache_capacity: u64,
    /// Events of a user erased within this many days are refused (`erased_user`), so a
    /// platform's retry or backfill cannot bring them back; 0 lets re-sent events create a
    /// new user.
    pub refuse_erased_user_days: f64,
}

/// The answer to one batch.
#[derive(Debug, Serialize, PartialEq, utoipa::ToSchema)]
pub struct IngestReport {
    pub accepted: usize,
    pub duplicates: usize,
    pub rejected: Vec<Rejection>,
    /// Users whose engagement the batch changed (feeds re-render for them).
    #[serde(skip)]
    pub changed_users: BTreeSet<String>,
}

pub struct Ingestor {
    pool: PgPool,
    model: AffinityModel,
    partitions: Arc<Partitions>,
    people: Arc<PeopleIds>,
    erasures: crate::erasure::ErasureLog,
    cache: Arc<Cache>,
    settings: IngestSettings,
    feed_queue: Option<Arc<crate::feed::queue::JobQueue>>,
}

impl Ingestor {
    pub fn new(
        pool: PgPool,
        model: AffinityModel,
        partitions: Arc<Partitions>,
        cache: Arc<Cache>,
        settings: IngestSettings,
    ) -> Self {
        Self {
            erasures: crate::erasure::ErasureLog::new(pool.clone()),
            pool,
            model,
            partitions,
            people: Arc::new(PeopleIds::new(settings.people_cache_capacity)),

            cache,
            settings,
            feed_queue: None,
        }
    }

    /// Users with a stored photo whose engagement changed get their feed re-planned.
    pub fn with_feed_queue(mut self, queue: Arc<crate::feed::queue::JobQueue>) -> Self {
        self.feed_queue = Some(queue);
        self
    }

    /// This process's id cache (erasure drops the erased user from it).
    pub fn people_ids(&self) -> Arc<PeopleIds> {
        self.people.clone()
    }

    pub fn max_body_bytes(&self) -> usize {
        self.settings.max_body_bytes
    }

    #[tracing::instrument(name = "ingest_batch", skip_all, fields(bytes = body.len(), ?format))]
    pub async fn ingest(&self, body: Bytes, format: BatchFormat) -> Result<IngestReport, IngestError> {
        let rules = ValidationRules {
            now: Utc::now(),
            max_future_skew: chrono::Duration::seconds(self.settings.max_future_skew_secs),
            min_occurred_at: self.settings.min_occurred_at,
            max_events: self.settings.max_events_per_batch,
        };
        // Parsing 5 MB of JSON is CPU work: keep it off the async workers.
        let parsed = tokio::task::spawn_blocking(move || parse::parse_batch(&body, format, &rules))
            .await
            .map_err(IngestError::Parser)??;

        let mut rejected = parsed.rejected;
        let mut events = parsed.events;
        events.extend(self.resolve_images(parsed.image_events, &mut rejected).await?);
        let events = self.refuse_erased_users(events, &mut rejected).await?;
        let (candidates, in_batch_duplicates) = first_occurrences(events);
        let accepted = if candidates.is_empty() {
            0
        } else {
            self.write(&candidates).await?
        };
        if accepted > 0 {
            // Their recommendations were computed from the affinity this batch changed.
            let users: BTreeSet<&str> = candidates.iter().map(|e| e.user.as_str()).collect();
            crate::recommend::invalidate_users(&self.cache, users).await;
        }
        let report = IngestReport {
            accepted,
            duplicates: in_batch_duplicates + candidates.len() - accepted,
            rejected,
            changed_users: if accepted > 0 {
                candidates.iter().map(|e| e.user.as_str().to_string()).collect()
            } else {
                BTreeSet::new()
            },
        };
        self.refresh_feeds(&report.changed_users).await;
        metrics::counter!("stylecast_events_total", "outcome" => "accepted").increment(report.accepted as u64);
        metrics::counter!("stylecast_events_total", "outcome" => "duplicate").increment(report.duplicates as u64);
        metrics::counter!("stylecast_events_total", "outcome" => "rejected").increment(report.rejected.len() as u64);
        Ok(report)
    }

    /// Best effort after the commit: a feed read re-plans anyway, this only renders sooner.
    async fn refresh_feeds(&self, users: &BTreeSet<String>) {
        let Some(queue) = &self.feed_queue else { return };
        if users.is_empty() {
            return;
        }
        let users: Vec<String> = users.iter().cloned().collect();
        match crate::store::feeds::users_with_photos(&self.pool, &users).await {
            Ok(with_photos) => {
                let jobs = with_photos
                    .into_iter()
                    .map(|user| crate::feed::queue::Job::Refresh { user })
                    .collect();
                queue.push(jobs).await;
            }
            Err(err) => tracing::warn!(error = %err, "could not queue feed refreshes"),
        }
    }

    /// Events of recently erased users are rejected with `erased_user`. Only users this
    /// process has not resolved are looked up (one query per batch): a cached id is a user
    /// that exists.
    async fn refuse_erased_users(
        &self,
        events: Vec<(usize, Event)>,
        rejected: &mut Vec<Rejection>,
    ) -> Result<Vec<(usize, Event)>, IngestError> {
        if self.settings.refuse_erased_user_days <= 0.0 {
            return Ok(events);
        }
        let unresolved: BTreeSet<&str> = events
            .iter()
            .map(|(_, e)| e.user.as_str())
            .filter(|user| !self.people.is_cached(People::Users, user))
            .collect();
        if unresolved.is_empty() {
            return Ok(events);
        }
        let window = chrono::Duration::seconds((self.settings.refuse_erased_user_days * 86_400.0) as i64);
        let erased = self.erasures.erased_since(unresolved, Utc::now() - window).await?;
        if erased.is_empty() {
            return Ok(events);
        }
        let (refused, kept): (Vec<_>, Vec<_>) = events.into_iter().partition(|(_, e)| erased.contains(e.user.as_str()));
        rejected.extend(refused.into_iter().map(|(index, event)| Rejection {
            index,
            code: "erased_user",
            message: format!(
                "user {} was erased; their events are refused for {} days after an erasure",
                event.user, self.settings.refuse_erased_user_days
            ),
        }));
        rejected.sort_by_key(|r| r.index);
        Ok(kept)
    }

    /// Image events take the influencer of the image they name (the largest weight of its
    /// blend); an image no generation made is rejected with `unknown_image`.
    async fn resolve_images(
        &self,
        image_events: Vec<(usize, event::ImageEvent)>,
        rejected: &mut Vec<Rejection>,
    ) -> Result<Vec<(usize, Event)>, IngestError> {
        if image_events.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<&str> = image_events.iter().map(|(_, e)| e.image.as_str()).collect();
        let owners = crate::store::images::influencers_of(&self.pool, &ids).await?;
        let mut events = Vec::with_capacity(image_events.len());
        for (index, image_event) in image_events {
            match owners.get(image_event.image.as_str()) {
                Some(influencer) => events.push((index, image_event.resolve(influencer.clone()))),
                None => rejected.push(Rejection {
                    index,
                    code: "unknown_image",
                    message: format!("no generated image has id {}", image_event.image),
                }),
            }
        }
        rejected.sort_by_key(|r| r.index);
        Ok(events)
    }

    async fn write(&self, events: &[Event]) -> Result<usize, IngestError> {
        let months: BTreeSet<Month> = events.iter().map(|e| Month::of(e.occurred_at)).collect();
        self.partitions.ensure(&self.pool, months).await?;
        let mut attempt = 1;
        loop {
            match self.write_once(events).await {
                Ok(accepted) => return Ok(accepted),
                Err(err) if crate::store::is_retryable(&err) && attempt < self.settings.max_attempts => {
                    tracing::debug!(attempt, error = %err, "retrying batch after a transient conflict");
                    attempt += 1;
                }
                Err(err) => return Err(err.into()),
            }
        }
    }

    async fn write_once(&self, events: &[Event]) -> Result<usize, sqlx::Error> {
        let users = self
            .people
            .resolve(&self.pool, People::Users, events.iter().map(|e| e.user.as_str()))
            .await?;
        let influencers = self
            .people
            .resolve(
                &self.pool,
                People::Influencers,
                events.iter().map(|e| e.influencer.as_str()),
            )
            .await?;
        let mut tx = self.pool.begin().await?;
        let mut resolved = Vec::with_capacity(events.len());
        for event in events {
            let (Some(&user_id), Some(&influencer_id)) = (
                users.get(event.user.as_str()),
                influencers.get(event.influencer.as_str()),
            ) else {
                return Err(sqlx::Error::Protocol("an external id did not resolve".into()));
            };
            resolved.push(ResolvedEvent {
                event_id: event.event_id.as_str().to_string(),
                user_id,
                influencer_id,
                kind: event.kind,
                occurred_at: event.occurred_at,
                post_id: event.post_id.as_ref().map(|p| p.as_str().to_string()),
                weight: event.weight,
                image_id: event.image.as_ref().map(|i| i.as_str().to_string()),
                served_id: event.served_id,
            });
        }
        resolved.sort_by(|a, b| a.event_id.cmp(&b.event_id));

        let fresh_ids: HashSet<String> = store_events::insert_new_events(&mut tx, &resolved)
            .await?
            .into_iter()
            .collect();
        let fresh = resolved.iter().filter(|e| fresh_ids.contains(&e.event_id));
        let effects = BatchEffects::collect(fresh, &self.model);
        for toggle in [Toggle::Follow, Toggle::Like, Toggle::Hide] {
            store_events::upsert_toggles(&mut tx, toggle, effects.toggles(toggle)).await?;
        }
        store_events::add_activity(&mut tx, &effects.activity).await?;
        tx.commit().await?;
        Ok(fresh_ids.len())
    }
}

/// Keeps the first event per event id; counts the repeats as duplicates.
fn first_occurrences(events: Vec<(usize, Event)>) -> (Vec<Event>, usize) {
    let mut seen = HashSet::with_capacity(events.len());
    let mut unique = Vec::with_capacity(events.len());
    let mut repeats = 0;
    for (_, event) in events {
        if seen.insert(event.event_id.as_str().to_string()) {
            unique.push(event);
        } else {
            repeats += 1;
        }
    }
    (unique, repeats)
}
