//! `stylecast demo`: the demo influencers with their reference photos (the listing
//! `onnx/styles/influencers.json`, photos made by `onnx/make_styles.py` at set-up), demo
//! users whose engagement falls into taste groups, then an embedding build, so the demo
//! page has interests, recommendations and styles after one command.
//!
//! Idempotent: profiles are upserted, a style already computed by the current encoder from
//! all its photos is kept, and events carry fixed ids (a replay is all duplicates).

use std::path::{Path, PathBuf};

use bytes::Bytes;
use chrono::{Duration, Utc};
use serde::Deserialize;
use serde_json::json;
use sqlx::PgPool;

use crate::generate::models::Models;
use crate::ingest::{BatchFormat, IngestError, IngestReport, Ingestor};
use crate::media::MediaLimits;
use crate::store::styles;
use crate::style::service;

#[derive(Debug, Deserialize)]
pub struct Listing {
    pub influencers: Vec<DemoInfluencer>,
}

#[derive(Debug, Deserialize)]
pub struct DemoInfluencer {
    pub id: String,
    pub display_name: String,
    pub look: String,
    pub files: Vec<DemoFile>,
    pub heldout: Option<DemoFile>,
}

#[derive(Debug, Deserialize)]
pub struct DemoFile {
    pub file: String,
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("reading {path}: {source} (the demo photos are made at set-up by bash onnx/check.sh in a checkout; elsewhere set STYLECAST_HOME to the folder holding onnx/, or onnx.model_dir)")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} is not a valid listing: {source}")]
    Listing { path: PathBuf, source: serde_json::Error },
    #[error(transparent)]
    Style(#[from] service::StyleError),
    #[error(transparent)]
    Ingest(#[from] IngestError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl Listing {
    pub fn load(dir: &Path) -> Result<Self, DemoError> {
        let path = dir.join("influencers.json");
        let text = std::fs::read_to_string(&path).map_err(|source| DemoError::Read {
            path: path.clone(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|source| DemoError::Listing { path, source })
    }

    pub fn photo_count(&self) -> usize {
        self.influencers.iter().map(|i| i.files.len()).sum()
    }
}

/// Named demo users and the taste group each belongs to (shown in the demo page's list).
pub const DEMO_USERS: [(&str, usize); 12] = [
    ("ana", 0),
    ("ben", 1),
    ("chloe", 2),
    ("dev", 0),
    ("emma", 1),
    ("farid", 2),
    ("gia", 0),
    ("hugo", 1),
    ("ines", 2),
    ("jon", 0),
    ("kai", 1),
    ("lena", 2),
];

/// Background fans per taste group, who give ALS the co-occurrence to learn groups from.
const FANS_PER_GROUP: usize = 12;

/// Taste groups over the demo influencers: monochrome and textured, warm film, bright colour.
const GROUPS: [&[&str]; 3] = [
    &["noir_nadia", "ink_iris", "brick_bo"],
    &["golden_gabe", "vintage_vera", "meadow_mo"],
    &["neon_nova", "pastel_pia"],
];

#[derive(Debug, Default, Clone, PartialEq)]
pub struct PhotosReport {
    pub influencers: usize,
    /// Influencers whose style was (re)computed this run.
    pub computed: usize,
    pub photos: usize,
}

/// Profiles and reference photos; `progress` gets the photos handled so far.
pub async fn load_influencers(
    pool: &PgPool,
    models: &Models,
    limits: MediaLimits,
    dir: &Path,
    listing: &Listing,
    mut progress: impl FnMut(usize),
) -> Result<PhotosReport, DemoError> {
    let mut report = PhotosReport::default();
    for influencer in &listing.influencers {
        styles::upsert_influencer(pool, &influencer.id, Some(&influencer.display_name), true).await?;
        report.influencers += 1;
        let current = styles::style(pool, &influencer.id).await?.is_some_and(|s| {
            s.model_version == models.encoder.version && s.photo_count as usize >= influencer.files.len()
        });
        if !current {
            for file in &influencer.files {
                let path = dir.join(&file.file);
                let bytes = std::fs::read(&path).map_err(|source| DemoError::Read { path, source })?;
                // Experiment generators' codes are added by the service when it starts.
                service::add_photo(pool, models, &[], limits, &influencer.id, Bytes::from(bytes)).await?;
            }
            report.computed += 1;
        }
        report.photos += influencer.files.len();
        progress(report.photos);
    }
    Ok(report)
}

/// The demo engagement as one JSON batch: each user follows one or two influencers of their
/// group, likes and views the group's posts, and glances at one influencer outside it.
pub fn engagement_batch() -> Bytes {
    let now = Utc::now();
    let mut events = Vec::new();
    let mut users: Vec<(String, usize, usize)> = DEMO_USERS
        .iter()
        .enumerate()
        .map(|(n, (name, group))| (name.to_string(), *group, n))
        .collect();
    for group in 0..GROUPS.len() {
        for fan in 0..FANS_PER_GROUP {
            users.push((format!("fan_{group}_{fan:02}"), group, fan + group));
        }
    }
    for (user, group, salt) in users {
        let members = GROUPS[group];
        let favourite = members[salt % members.len()];
        let mut push = |n: usize, influencer: &str, kind: &str, hours: i64| {
            events.push(json!({
                "event_id": format!("demo-{user}-{n}"),
                "user": user,
                "influencer": influencer,
                "kind": kind,
                "occurred_at": (now - Duration::hours(hours)).to_rfc3339(),
                "post_id": format!("{influencer}_post_{}", n % 4),
            }));
        };
        push(0, favourite, "follow", 240);
        // Named users follow only their favourite, so the rest of their group is what ALS
        // has to recommend; background fans follow a second member too.
        let mut n = 1;
        for (k, member) in members.iter().enumerate() {
            if *member != favourite && salt % 3 != k && user.starts_with("fan_") {
                push(n, member, "follow", 200);
                n += 1;
            }
            for day in 0..3 {
                push(
                    n,
                    member,
                    if *member == favourite { "like" } else { "view" },
                    24 * (day + 1),
                );
                n += 1;
            }
        }
        let elsewhere = GROUPS[(group + 1) % GROUPS.len()][salt % 2];
        push(n, elsewhere, "view", 48);
    }
    Bytes::from(serde_json::to_vec(&events).unwrap_or_default())
}

/// Ingests the demo engagement through the real ingest path.
pub async fn load_engagement(ingestor: &Ingestor) -> Result<IngestReport, DemoError> {
    Ok(ingestor.ingest(engagement_batch(), BatchFormat::JsonArray).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_group_member_is_a_listed_demo_influencer() {
        let listing = Listing::load(Path::new("onnx/styles")).expect("listing (committed)");
        let ids: Vec<&str> = listing.influencers.iter().map(|i| i.id.as_str()).collect();
        for member in GROUPS.iter().flat_map(|g| g.iter()) {
            assert!(ids.contains(member), "{member} is not in influencers.json");
        }
    }

    #[test]
    fn engagement_has_unique_event_ids() {
        let events: Vec<serde_json::Value> = serde_json::from_slice(&engagement_batch()).expect("json");
        let ids: std::collections::HashSet<&str> = events.iter().filter_map(|e| e["event_id"].as_str()).collect();
        assert_eq!(ids.len(), events.len());
        assert!(events.len() < 10_000, "one batch must stay under the ingest limit");
    }
}
