//! Typed settings, layered: built-in defaults → optional TOML file → environment.
//!
//! Environment variables use the `STYLECAST__SECTION__FIELD` form (for example
//! `STYLECAST__SERVER__PORT=8080`). The conventional names `DATABASE_URL`, `REDIS_URL`,
//! `STYLECAST_ADMIN_KEY` and `ORT_DYLIB_PATH` override their fields directly.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use secrecy::SecretString;
use serde::Deserialize;

use crate::ingest::EventKind;

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub redis: RedisSettings,
    pub ingest: IngestSettings,
    pub affinity: AffinitySettings,
    pub auth: AuthSettings,
    pub onnx: OnnxSettings,
    pub log: LogSettings,
    pub embedding: EmbeddingSettings,
    pub generate: crate::generate::pipeline::GenerateSettings,
    pub media: crate::media::MediaLimits,
    pub analyst: AnalystSettings,
    pub feed: crate::feed::FeedSettings,
}

/// The read-only `stylecast_analyst` role (sql/README.md).
#[derive(Debug, Clone, Deserialize)]
pub struct AnalystSettings {
    /// Login password; unset leaves it as it is (trust or another auth method).
    pub password: Option<SecretString>,
    /// Default statement timeout of the role.
    pub statement_timeout_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct EmbeddingSettings {
    /// `[embedding.als]`: factors, regularization, alpha (confidence 1 + alpha · affinity),
    /// iterations, cg_steps, seed.
    pub als: crate::interest::als::AlsParams,
    /// Seconds between scheduled rebuilds by `serve`; 0 turns them off.
    pub rebuild_interval_secs: u64,
    /// How long a user's recommendations stay cached (engagement invalidates them sooner).
    pub recommendation_ttl_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ServerSettings {
    pub host: String,
    /// 0 picks a free port (tests).
    pub port: u16,
    /// Seconds in-flight requests get to finish after SIGINT/SIGTERM.
    pub shutdown_timeout_secs: u64,
    /// Actix worker threads; 0 means one per core.
    pub workers: usize,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DatabaseSettings {
    pub url: SecretString,
    pub max_connections: u32,
    /// How long a request waits for a pooled connection before answering 503.
    pub acquire_timeout_secs: u64,
    /// Server-side statement timeout for service queries.
    pub statement_timeout_secs: u64,
    /// Monthly partitions kept ready ahead of the current month.
    pub partition_months_ahead: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RedisSettings {
    /// Absent: the in-process cache serves alone.
    pub url: Option<SecretString>,
    /// Prefix for every key this process writes (tests give each run its own).
    pub key_prefix: String,
    /// Entries kept by the in-process fallback cache.
    pub memory_capacity: u64,
    /// Milliseconds a Redis command may take before the fallback serves.
    pub timeout_ms: u64,
}

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
}

#[derive(Debug, Clone, Deserialize)]
pub struct AffinitySettings {
    pub half_life_days: f64,
    /// Weight per kind; unlike/unfollow carry none: they remove the like/follow they undo.
    pub weights: BTreeMap<EventKind, f64>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AuthSettings {
    /// Bootstrap key holding every scope (`STYLECAST_ADMIN_KEY`).
    pub admin_key: Option<SecretString>,
    /// Requests per second each API key may make (sustained); 0 turns the limit off.
    pub rate_limit_per_sec: u32,
    /// Requests a key may make at once above the sustained rate.
    pub rate_limit_burst: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct OnnxSettings {
    /// Path of libonnxruntime.so (`ORT_DYLIB_PATH`); installed by scripts/install-ort.sh.
    pub library_path: PathBuf,
    /// Folder holding models.json and the ONNX files.
    pub model_dir: PathBuf,
    /// Which generator serves: `default` (the manifest's `default_generator`, the winner of
    /// onnx/eval.py), `stylecast` or `magenta`. Styles are kept per encoder version, so after
    /// a switch run `stylecast styles rebuild`.
    pub generator: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LogSettings {
    /// `pretty` or `json`.
    pub format: String,
    /// An EnvFilter directive; `RUST_LOG` wins when set.
    pub filter: String,
}

const DEFAULTS: &str = include_str!("../config/default.toml");

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("reading settings: {0}")]
    Load(#[from] config::ConfigError),
    #[error("invalid setting {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
}

impl Settings {
    /// Defaults, then `file` when given (or `STYLECAST_CONFIG`), then the environment.
    pub fn load(file: Option<&Path>) -> Result<Self, SettingsError> {
        let env_file = std::env::var_os("STYLECAST_CONFIG").map(PathBuf::from);
        let mut builder =
            config::Config::builder().add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml));
        if let Some(path) = file.map(Path::to_path_buf).or(env_file) {
            builder = builder.add_source(config::File::from(path).required(true));
        }
        builder = builder.add_source(
            config::Environment::with_prefix("STYLECAST")
                .prefix_separator("__")
                .separator("__"),
        );
        for (var, key) in [
            ("DATABASE_URL", "database.url"),
            ("REDIS_URL", "redis.url"),
            ("STYLECAST_ADMIN_KEY", "auth.admin_key"),
            ("ORT_DYLIB_PATH", "onnx.library_path"),
        ] {
            if let Ok(value) = std::env::var(var) {
                builder = builder.set_override(key, value)?;
            }
        }
        let settings: Settings = builder.build()?.try_deserialize()?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), SettingsError> {
        if !(self.affinity.half_life_days.is_finite() && self.affinity.half_life_days > 0.0) {
            return Err(SettingsError::Invalid {
                field: "affinity.half_life_days",
                reason: "must be a positive number".into(),
            });
        }
        if let Some((kind, _)) = self.affinity.weights.iter().find(|(_, w)| !w.is_finite()) {
            return Err(SettingsError::Invalid {
                field: "affinity.weights",
                reason: format!("weight of {kind} is not finite"),
            });
        }
        if self.ingest.max_events_per_batch == 0 || self.ingest.max_body_bytes == 0 {
            return Err(SettingsError::Invalid {
                field: "ingest",
                reason: "batch limits must be positive".into(),
            });
        }
        Ok(())
    }
}
