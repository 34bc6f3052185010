//! Bulk engagement ingest: parse and validate a batch, then write the new events, the
//! current state they change and the affinity they add in one transaction.
//! A 2xx answer is sent only after that transaction committed.

pub mod event;
pub mod parse;
pub mod state;

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use bytes::Bytes;
use chrono::Utc;
use serde::Serialize;
use sqlx::PgPool;

pub use event::{Event, EventKind, Toggle};
pub use parse::{BatchFormat, Rejection, ValidationRules};

use crate::cache::Cache;
use crate::config::IngestSettings;
use crate::error::AppError;
use crate::interest::AffinityModel;
use crate::store::events as store_events;
use crate::store::partitions::{Month, Partitions};
use crate::store::people_ids::{People, PeopleIds};
use state::{BatchEffects, ResolvedEvent};

/// The answer to one batch.
#[derive(Debug, Serialize, PartialEq, utoipa::ToSchema)]
pub struct IngestReport {
    pub accepted: usize,
    pub duplicates: usize,
    pub rejected: Vec<Rejection>,
}

pub struct Ingestor {
    pool: PgPool,
    model: AffinityModel,
    partitions: Arc<Partitions>,
    people: PeopleIds,
    cache: Arc<Cache>,
    settings: IngestSettings,
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
            pool,
            model,
            partitions,
            people: PeopleIds::new(settings.people_cache_capacity),
            cache,
            settings,
        }
    }

    pub fn max_body_bytes(&self) -> usize {
        self.settings.max_body_bytes
    }

    #[tracing::instrument(name = "ingest_batch", skip_all, fields(bytes = body.len(), ?format))]
    pub async fn ingest(&self, body: Bytes, format: BatchFormat) -> Result<IngestReport, AppError> {
        let rules = ValidationRules {
            now: Utc::now(),
            max_future_skew: chrono::Duration::seconds(self.settings.max_future_skew_secs),
            min_occurred_at: self.settings.min_occurred_at,
            max_events: self.settings.max_events_per_batch,
        };
        // Parsing 5 MB of JSON is CPU work: keep it off the async workers.
        let parsed = tokio::task::spawn_blocking(move || parse::parse_batch(&body, format, &rules))
            .await
            .map_err(|err| AppError::Internal(format!("parser task failed: {err}")))??;

        let (candidates, in_batch_duplicates) = first_occurrences(parsed.events);
        let accepted = if candidates.is_empty() {
            0
        } else {
            self.write(&candidates).await?
        };
        if accepted > 0 {
            // Their recommendations were computed from the affinity this batch changed.
            let users: BTreeSet<&str> = candidates.iter().map(|e| e.user.as_str()).collect();
            self.cache
                .delete_many(users.into_iter().map(crate::recommend::cache_key))
                .await;
        }
        let report = IngestReport {
            accepted,
            duplicates: in_batch_duplicates + candidates.len() - accepted,
            rejected: parsed.rejected,
        };
        metrics::counter!("stylecast_events_total", "outcome" => "accepted").increment(report.accepted as u64);
        metrics::counter!("stylecast_events_total", "outcome" => "duplicate").increment(report.duplicates as u64);
        metrics::counter!("stylecast_events_total", "outcome" => "rejected").increment(report.rejected.len() as u64);
        Ok(report)
    }

    async fn write(&self, events: &[Event]) -> Result<usize, AppError> {
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
            });
        }
        resolved.sort_by(|a, b| a.event_id.cmp(&b.event_id));

        let fresh_ids: HashSet<String> = store_events::insert_new_events(&mut tx, &resolved)
            .await?
            .into_iter()
            .collect();
        let fresh = resolved.iter().filter(|e| fresh_ids.contains(&e.event_id));
        let effects = BatchEffects::collect(fresh, &self.model);
        for toggle in [Toggle::Follow, Toggle::Like] {
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
