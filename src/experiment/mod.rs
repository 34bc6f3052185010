//! Experiments: variants of what the service can vary (the ALS model version that scores
//! recommendations, blends and feeds; the softmax temperature of interest blends; the feed
//! mix; the generator that paints generations and feed images), with traffic shares. A
//! user's variant is a pure function of a hash of experiment and user, so every process
//! agrees without coordination; exposure is recorded with the served list (`served`). At most one experiment runs at a time; stopping it returns everyone to the
//! defaults.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use tokio::sync::RwLock;

use crate::store::experiments::{self as store, ExperimentRow};

/// What a variant changes; anything left out is the service's default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Treatment {
    /// The embedding (ALS) model version that scores this variant's recommendations, interest
    /// blends and feed slots: build versions with different ALS settings (`stylecast embed
    /// --factors … --alpha …`) and compare them. It must exist; a running experiment keeps
    /// it from being dropped by later builds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = 3)]
    pub model_version: Option<i64>,
    /// Softmax temperature of interest blends (generation and feed blend slots); lower is
    /// sharper. Within (0, 10].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = 0.5, exclusive_minimum = 0.0, maximum = 10.0)]
    pub blend_temperature: Option<f64>,
    /// The feed mix: whether the first feed page leads with the user's interest-blend image
    /// (the default) or shows single-influencer images only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = false)]
    pub feed_blend_slot: Option<bool>,
    /// The generator that paints this variant's generations and feed images: `stylecast` or
    /// `magenta`. It must be loaded by the service (the default one, or one listed in
    /// `onnx.experiment_generators`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "magenta")]
    pub generator: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    /// 1–64 characters of letters, digits, `_` or `-`.
    #[schema(example = "control", pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub name: String,
    /// Share of users in (0, 1]; the shares of an experiment sum to 1.
    #[schema(example = 0.5, exclusive_minimum = 0.0, maximum = 1.0)]
    pub share: f64,
    #[serde(default)]
    pub settings: Treatment,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Running,
    Stopped,
}

impl State {
    fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Stopped => "stopped",
        }
    }
}

/// The body of `PUT /v1/experiments/{name}`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Definition {
    /// Two to eight variants whose shares sum to 1; the first is the control results are
    /// compared with.
    #[schema(min_items = 2, max_items = 8)]
    pub variants: Vec<Variant>,
    /// `running` (the default) assigns users now; `stopped` returns everyone to the defaults.
    #[serde(default = "running")]
    pub state: State,
}

fn running() -> State {
    State::Running
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Experiment {
    pub name: String,
    pub state: State,
    pub variants: Vec<Variant>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub stopped_at: Option<DateTime<Utc>>,
    /// Users recorded per variant so far (first exposure).
    pub assigned_users: std::collections::BTreeMap<String, i64>,
}

/// A user's place in the running experiment.
#[derive(Debug, Clone, PartialEq)]
pub struct Assignment {
    pub experiment: String,
    pub variant: String,
    pub treatment: Treatment,
}

#[derive(Debug, thiserror::Error)]
pub enum ExperimentError {
    #[error("{0}")]
    Invalid(String),
    #[error("experiment {running:?} is running; stop it before starting {requested:?}")]
    AnotherRunning { running: String, requested: String },
    #[error("embedding model version {0} does not exist (see GET /readyz or analytics_recommendation_coverage)")]
    UnknownModelVersion(i64),
    #[error(
        "generator {requested:?} is not loaded (loaded: {loaded:?}); list it in onnx.experiment_generators and restart"
    )]
    GeneratorNotLoaded { requested: String, loaded: Vec<String> },
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// How often the running experiment is re-read, so a PUT on another process takes effect.
const REFRESH: Duration = Duration::from_secs(5);
const MAX_VARIANTS: usize = 8;

pub struct Experiments {
    pool: PgPool,
    running: RwLock<Option<(Instant, Option<Arc<Experiment>>)>>,
    /// Generators a variant may name: those this process loaded.
    generators: Vec<String>,
}

impl Experiments {
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            running: RwLock::new(None),
            generators: Vec::new(),
        }
    }

    /// The generators loaded in this process (`stylecast`, `magenta`), which variants may name.
    pub fn with_generators(mut self, generators: Vec<String>) -> Self {
        self.generators = generators;
        self
    }

    /// The user's variant of the running experiment, if one runs. Never fails a request: when
    /// Postgres cannot be read, the last experiment read stays in force (or none).
    pub async fn assign(&self, user: &str) -> Option<Assignment> {
        let experiment = self.running().await?;
        let variant = pick(&experiment.variants, bucket(&experiment.name, user))?;
        Some(Assignment {
            experiment: experiment.name.clone(),
            variant: variant.name.clone(),
            treatment: variant.settings.clone(),
        })
    }

    async fn running(&self) -> Option<Arc<Experiment>> {
        if let Some((at, experiment)) = self.running.read().await.as_ref() {
            if at.elapsed() < REFRESH {
                return experiment.clone();
            }
        }
        let mut slot = self.running.write().await;
        if let Some((at, experiment)) = slot.as_ref() {
            if at.elapsed() < REFRESH {
                return experiment.clone();
            }
        }
        match store::running(&self.pool).await {
            Ok(row) => {
                let experiment = row.and_then(|row| parse(row, Vec::new()).ok()).map(Arc::new);
                *slot = Some((Instant::now(), experiment.clone()));
                experiment
            }
            Err(err) => {
                tracing::warn!(error = %err, "reading the running experiment failed; keeping the last one");
                let last = slot.as_ref().and_then(|(_, e)| e.clone());
                *slot = Some((Instant::now(), last.clone()));
                last
            }
        }
    }

    /// Creates, replaces, starts or stops an experiment; in force in this process at once,
    /// in others within `REFRESH`.
    pub async fn define(&self, name: &str, definition: Definition) -> Result<Experiment, ExperimentError> {
        validate_name("experiment name", name)?;
        validate_variants(&definition.variants)?;
        let unloaded = definition
            .variants
            .iter()
            .filter_map(|v| v.settings.generator.as_ref())
            .find(|g| !self.generators.contains(g));
        if let Some(generator) = unloaded {
            return Err(ExperimentError::GeneratorNotLoaded {
                requested: generator.clone(),
                loaded: self.generators.clone(),
            });
        }
        let versions: Vec<i64> = definition
            .variants
            .iter()
            .filter_map(|v| v.settings.model_version)
            .collect();
        let existing = store::existing_model_versions(&self.pool, &versions).await?;
        if let Some(missing) = versions.iter().find(|v| !existing.contains(v)) {
            return Err(ExperimentError::UnknownModelVersion(*missing));
        }
        if definition.state == State::Running {
            if let Some(other) = store::running(&self.pool).await?.filter(|row| row.name != name) {
                return Err(ExperimentError::AnotherRunning {
                    running: other.name,
                    requested: name.to_string(),
                });
            }
        }
        let variants =
            serde_json::to_value(&definition.variants).map_err(|e| ExperimentError::Invalid(e.to_string()))?;
        let row = store::upsert(&self.pool, name, &variants, definition.state.as_str())
            .await
            .map_err(|err| match &err {
                // Two PUTs racing to start different experiments: the index decides.
                sqlx::Error::Database(db) if db.constraint() == Some("experiments_one_running") => {
                    ExperimentError::AnotherRunning {
                        running: "another experiment".into(),
                        requested: name.to_string(),
                    }
                }
                _ => ExperimentError::Database(err),
            })?;
        *self.running.write().await = None;
        let assigned = store::assigned_users(&self.pool, name).await?;
        parse(row, assigned)
    }

    /// Every experiment with its state and assigned users, oldest first.
    pub async fn list(&self) -> Result<Vec<Experiment>, ExperimentError> {
        let mut out = Vec::new();
        for row in store::all(&self.pool).await? {
            let assigned = store::assigned_users(&self.pool, &row.name).await?;
            out.push(parse(row, assigned)?);
        }
        Ok(out)
    }
}

fn parse(row: ExperimentRow, assigned: Vec<(String, i64)>) -> Result<Experiment, ExperimentError> {
    let variants: Vec<Variant> =
        serde_json::from_value(row.variants).map_err(|e| ExperimentError::Invalid(format!("stored variants: {e}")))?;
    let state = if row.state == "running" {
        State::Running
    } else {
        State::Stopped
    };
    Ok(Experiment {
        name: row.name,
        state,
        variants,
        created_at: row.created_at,
        updated_at: row.updated_at,
        started_at: row.started_at,
        stopped_at: row.stopped_at,
        assigned_users: assigned.into_iter().collect(),
    })
}

fn validate_name(what: &str, name: &str) -> Result<(), ExperimentError> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    if name.is_empty() || name.len() > 64 || !name.chars().all(ok_char) {
        return Err(ExperimentError::Invalid(format!(
            "{what} {name:?} must be 1-64 characters of letters, digits, _ or -"
        )));
    }
    Ok(())
}

fn validate_variants(variants: &[Variant]) -> Result<(), ExperimentError> {
    if !(2..=MAX_VARIANTS).contains(&variants.len()) {
        return Err(ExperimentError::Invalid(format!(
            "an experiment has 2 to {MAX_VARIANTS} variants, not {}",
            variants.len()
        )));
    }
    for (n, variant) in variants.iter().enumerate() {
        validate_name("variant name", &variant.name)?;
        if variants[..n].iter().any(|v| v.name == variant.name) {
            return Err(ExperimentError::Invalid(format!(
                "variant {:?} is named twice",
                variant.name
            )));
        }
        if !(variant.share.is_finite() && variant.share > 0.0 && variant.share <= 1.0) {
            return Err(ExperimentError::Invalid(format!(
                "share of {:?} must be within (0, 1], got {}",
                variant.name, variant.share
            )));
        }
        if let Some(t) = variant.settings.blend_temperature {
            if !(t.is_finite() && t > 0.0 && t <= 10.0) {
                return Err(ExperimentError::Invalid(format!(
                    "blend_temperature of {:?} must be within (0, 10], got {t}",
                    variant.name
                )));
            }
        }
    }
    let total: f64 = variants.iter().map(|v| v.share).sum();
    if (total - 1.0).abs() > 1e-6 {
        return Err(ExperimentError::Invalid(format!("shares sum to {total}, not 1")));
    }
    Ok(())
}

/// A uniform point in [0, 1) from experiment and user: independent across experiments, so
/// one experiment's split says nothing about the next one's.
fn bucket(experiment: &str, user: &str) -> f64 {
    let mut hasher = blake3::Hasher::new();
    hasher.update(experiment.as_bytes());
    hasher.update(&[0]);
    hasher.update(user.as_bytes());
    let hash = hasher.finalize();
    let mut head = [0u8; 8];
    head.copy_from_slice(&hash.as_bytes()[..8]);
    // The top 53 bits: exactly representable, so the point is uniform on a 2^-53 grid.
    (u64::from_be_bytes(head) >> 11) as f64 / (1u64 << 53) as f64
}

/// The variant whose cumulative share covers the point (the last one takes rounding).
fn pick(variants: &[Variant], point: f64) -> Option<&Variant> {
    let mut edge = 0.0;
    for variant in variants {
        edge += variant.share;
        if point < edge {
            return Some(variant);
        }
    }
    variants.last()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn variants(shares: &[f64]) -> Vec<Variant> {
        shares
            .iter()
            .enumerate()
            .map(|(n, share)| Variant {
                name: format!("v{n}"),
                share: *share,
                settings: Treatment::default(),
            })
            .collect()
    }

    #[test]
    fn assignment_is_deterministic_and_follows_the_shares() {
        let split = variants(&[0.2, 0.8]);
        let first: Vec<_> = (0..20_000)
            .map(|u| pick(&split, bucket("exp", &format!("u{u}"))).map(|v| v.name.clone()))
            .collect();
        let again: Vec<_> = (0..20_000)
            .map(|u| pick(&split, bucket("exp", &format!("u{u}"))).map(|v| v.name.clone()))
            .collect();
        assert_eq!(first, again);
        let in_first = first.iter().filter(|v| v.as_deref() == Some("v0")).count() as f64 / 20_000.0;
        // 4 standard errors of a binomial share at n = 20,000.
        assert!(
            (in_first - 0.2).abs() < 4.0 * (0.2f64 * 0.8 / 20_000.0).sqrt(),
            "{in_first}"
        );
    }

    #[test]
    fn experiments_split_users_independently() {
        let split = variants(&[0.5, 0.5]);
        let agree = (0..10_000)
            .filter(|u| {
                let user = format!("u{u}");
                pick(&split, bucket("a", &user)).map(|v| &v.name) == pick(&split, bucket("b", &user)).map(|v| &v.name)
            })
            .count() as f64
            / 10_000.0;
        assert!((agree - 0.5).abs() < 0.04, "{agree}");
    }

    #[test]
    fn definitions_are_checked() {
        assert!(validate_variants(&variants(&[0.5, 0.5])).is_ok());
        assert!(validate_variants(&variants(&[1.0])).is_err());
        assert!(validate_variants(&variants(&[0.5, 0.6])).is_err());
        assert!(validate_variants(&variants(&[0.0, 1.0])).is_err());
        let mut twice = variants(&[0.5, 0.5]);
        twice[1].name = "v0".into();
        assert!(validate_variants(&twice).is_err());
        let mut hot = variants(&[0.5, 0.5]);
        hot[0].settings.blend_temperature = Some(0.0);
        assert!(validate_variants(&hot).is_err());
        assert!(validate_name("n", "ok_name-1").is_ok());
        assert!(validate_name("n", "no spaces").is_err());
        assert!(validate_name("n", "").is_err());
    }
}
