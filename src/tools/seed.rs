//! `stylecast seed`: synthetic users, influencers and events at a chosen scale, ingested in
//! batches through the real ingest path (validation, idempotency, affinity, partitions).
//!
//! Event ids are derived from the seed and the event's index, so running the same plan
//! again changes nothing (every event is a duplicate).

use bytes::Bytes;
use chrono::{DateTime, Duration, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

use crate::ingest::{BatchFormat, IngestError, Ingestor};

/// What to generate.
#[derive(Debug, Clone)]
pub struct SeedPlan {
    pub users: usize,
    pub influencers: usize,
    pub events: usize,
    pub batch: usize,
    pub seed: u64,
    /// Prefix of every generated id, so seeded data is easy to tell apart.
    pub prefix: String,
    /// Events are spread over this many days before now.
    pub days: i64,
    /// Batches in flight at once, as a platform's parallel sync would send them.
    pub concurrency: usize,
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct SeedReport {
    pub accepted: usize,
    pub duplicates: usize,
    pub rejected: usize,
    pub batches: usize,
}

/// Kinds with their share of traffic (views dominate, undos are rare).
const KINDS: [(&str, u32); 7] = [
    ("view", 50),
    ("like", 25),
    ("comment", 8),
    ("share", 5),
    ("follow", 7),
    ("unlike", 3),
    ("unfollow", 2),
];

impl SeedPlan {
    pub fn validate(&self) -> Result<(), String> {
        if self.users == 0 || self.influencers == 0 {
            return Err("give at least one user and one influencer".into());
        }
        if self.batch == 0 {
            return Err("the batch size must be positive".into());
        }
        if self.concurrency == 0 {
            return Err("the concurrency must be positive".into());
        }
        if self.days < 1 {
            return Err("days must be at least 1".into());
        }
        Ok(())
    }

    /// The JSON array of events `start..start + len`; deterministic for a plan and `now`
    /// except for timestamps, which do not take part in idempotency.
    pub fn batch_body(&self, start: usize, len: usize, now: DateTime<Utc>) -> Bytes {
        // One generator per batch, seeded by the batch's start: any batch can be rebuilt alone.
        let mut rng = StdRng::seed_from_u64(self.seed ^ (start as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let total: u32 = KINDS.iter().map(|k| k.1).sum();
        let span_secs = self.days * 86_400;
        let events: Vec<serde_json::Value> = (start..start + len)
            .map(|n| {
                let mut pick = rng.random_range(0..total);
                let kind = KINDS
                    .iter()
                    .find(|k| {
                        if pick < k.1 {
                            true
                        } else {
                            pick -= k.1;
                            false
                        }
                    })
                    .map_or("view", |k| k.0);
                let user = rng.random_range(0..self.users);
                let influencer = skewed_influencer(&mut rng, self.influencers);
                let occurred_at = now - Duration::seconds(rng.random_range(60..span_secs.max(61)));
                let post = rng.random_range(0..20);
                json!({
                    // The plan's shape is part of the id: a run with other sizes draws other
                    // events, which must not be taken for duplicates of this one's.
                    "event_id": format!(
                        "{}-{}-u{}-i{}-d{}-{n}",
                        self.prefix, self.seed, self.users, self.influencers, self.days
                    ),
                    "user": format!("{}_u{user:07}", self.prefix),
                    "influencer": format!("{}_i{influencer:05}", self.prefix),
                    "kind": kind,
                    "occurred_at": occurred_at.to_rfc3339(),
                    "post_id": format!("{}_i{influencer:05}_p{post}", self.prefix),
                })
            })
            .collect();
        Bytes::from(serde_json::to_vec(&events).unwrap_or_default())
    }
}

/// An influencer index in `0..influencers`, skewed as popularity is on real platforms: a cube
/// pulls most traffic towards the first influencers.
pub fn skewed_influencer(rng: &mut impl Rng, influencers: usize) -> usize {
    let skew: f64 = rng.random::<f64>().powi(3);
    ((skew * influencers as f64) as usize).min(influencers - 1)
}

/// Ingests the plan's events batch by batch; `progress` gets the events done so far.
pub async fn run(
    ingestor: &Ingestor,
    plan: &SeedPlan,
    mut progress: impl FnMut(usize),
) -> Result<SeedReport, IngestError> {
    use futures_util::{StreamExt, TryStreamExt};

    let now = Utc::now();
    // Each batch's events depend only on its start, so the data set is the same at any
    // concurrency and a rerun is all duplicates.
    let starts = (0..plan.events).step_by(plan.batch);
    let mut outcomes = futures_util::stream::iter(starts)
        .map(|start| async move {
            let len = plan.batch.min(plan.events - start);
            ingestor
                .ingest(plan.batch_body(start, len, now), BatchFormat::JsonArray)
                .await
                .map(|outcome| (len, outcome))
        })
        .buffer_unordered(plan.concurrency);
    let mut report = SeedReport::default();
    let mut done = 0;
    while let Some((len, outcome)) = outcomes.try_next().await? {
        report.accepted += outcome.accepted;
        report.duplicates += outcome.duplicates;
        report.rejected += outcome.rejected.len();
        report.batches += 1;
        done += len;
        progress(done);
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> SeedPlan {
        SeedPlan {
            users: 10,
            influencers: 3,
            events: 100,
            batch: 40,
            seed: 7,
            prefix: "t".into(),
            days: 30,
            concurrency: 2,
        }
    }

    #[test]
    fn batches_are_reproducible_and_ids_are_unique() {
        let now = Utc::now();
        let a: Vec<serde_json::Value> = serde_json::from_slice(&plan().batch_body(0, 40, now)).expect("json");
        let b: Vec<serde_json::Value> = serde_json::from_slice(&plan().batch_body(0, 40, now)).expect("json");
        assert_eq!(a, b);
        let ids: std::collections::HashSet<&str> = a.iter().filter_map(|e| e["event_id"].as_str()).collect();
        assert_eq!(ids.len(), 40);
        assert!(a
            .iter()
            .all(|e| e["influencer"].as_str().is_some_and(|i| i < "t_i00003")));
    }

    #[test]
    fn empty_populations_are_refused() {
        let mut bad = plan();
        bad.users = 0;
        assert!(bad.validate().is_err());
        assert!(plan().validate().is_ok());
    }
}
