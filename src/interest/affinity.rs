//! Time-decayed affinity: score(u, i, t) = Σ w(kind)·weight·2^(−(t − t_event)/half_life).
//!
//! Scores are kept at a fixed epoch (2020-01-01): each event adds
//! `w·2^((t_event − epoch)/half_life)` to `score_ref`, and a read multiplies by
//! `2^(−(t − epoch)/half_life)`. Additions commute, so concurrent batches never need a
//! read-modify-write, and a recomputation from the log gives the same number.
//! Likes and follows contribute while active, at the time they were made; an unlike or
//! unfollow removes exactly that contribution.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::ingest::event::EventKind;

/// `[affinity]`: how engagement turns into a time-decayed score.
#[derive(Debug, Clone, Deserialize)]
pub struct AffinitySettings {
    pub half_life_days: f64,
    /// Weight per kind; unlike/unfollow carry none: they remove the like/follow they undo.
    pub weights: BTreeMap<EventKind, f64>,
}

/// Unix seconds of 2020-01-01T00:00:00Z; the SQL side (`affinity_now`) uses the same.
pub const EPOCH_UNIX_SECS: f64 = 1_577_836_800.0;

#[derive(Debug, Clone, PartialEq)]
pub struct AffinityModel {
    half_life_secs: f64,
    weights: BTreeMap<EventKind, f64>,
}

impl AffinityModel {
    pub fn new(settings: &AffinitySettings) -> Self {
        Self {
            half_life_secs: settings.half_life_days * 86_400.0,
            weights: settings.weights.clone(),
        }
    }

    pub fn half_life_days(&self) -> f64 {
        self.half_life_secs / 86_400.0
    }

    pub fn weights(&self) -> &BTreeMap<EventKind, f64> {
        &self.weights
    }

    /// Weight of a kind; unlike/unfollow and unlisted kinds weigh nothing themselves.
    pub fn kind_weight(&self, kind: EventKind) -> f64 {
        self.weights.get(&kind).copied().unwrap_or(0.0)
    }

    /// What one event (or an active like/follow made at `at`) adds to `score_ref`.
    pub fn contribution(&self, kind: EventKind, weight: f32, at: DateTime<Utc>) -> f64 {
        self.kind_weight(kind) * f64::from(weight) * self.growth(at)
    }

    /// The stored reference score decayed to `at`.
    pub fn score_at(&self, score_ref: f64, at: DateTime<Utc>) -> f64 {
        score_ref / self.growth(at)
    }

    fn growth(&self, at: DateTime<Utc>) -> f64 {
        let secs = at.timestamp() as f64 + f64::from(at.timestamp_subsec_micros()) / 1e6;
        ((secs - EPOCH_UNIX_SECS) / self.half_life_secs).exp2()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn model() -> AffinityModel {
        let weights = [(EventKind::Like, 1.0), (EventKind::Follow, 5.0), (EventKind::View, 0.1)]
            .into_iter()
            .collect();
        AffinityModel::new(&AffinitySettings {
            half_life_days: 30.0,
            weights,
        })
    }

    #[test]
    fn a_score_halves_every_half_life() {
        let model = model();
        let t0: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().expect("valid");
        let score_ref = model.contribution(EventKind::Follow, 1.0, t0);
        assert!((model.score_at(score_ref, t0) - 5.0).abs() < 1e-9);
        assert!((model.score_at(score_ref, t0 + Duration::days(30)) - 2.5).abs() < 1e-9);
        assert!((model.score_at(score_ref, t0 + Duration::days(90)) - 0.625).abs() < 1e-9);
    }

    #[test]
    fn contributions_add_regardless_of_order_and_weight_scales_them() {
        let model = model();
        let a: DateTime<Utc> = "2026-03-01T00:00:00Z".parse().expect("valid");
        let b = a + Duration::days(15);
        let total = model.contribution(EventKind::Like, 2.0, a) + model.contribution(EventKind::View, 1.0, b);
        // At b + 15 days the like is one half-life old, the view half a half-life.
        let expected = 2.0 * 0.5 + 0.1 * 0.5_f64.sqrt();
        assert!((model.score_at(total, b + Duration::days(15)) - expected).abs() < 1e-9);
    }

    #[test]
    fn kinds_without_weight_contribute_nothing() {
        let model = model();
        let at: DateTime<Utc> = "2026-03-01T00:00:00Z".parse().expect("valid");
        assert_eq!(model.contribution(EventKind::Unlike, 1.0, at), 0.0);
    }
}
