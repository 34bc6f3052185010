//! Typed settings, layered: built-in defaults → optional TOML file → environment.
//!
//! Environment variables use the `STYLECAST__SECTION__FIELD` form (for example
//! `STYLECAST__SERVER__PORT=8080`). The conventional names `DATABASE_URL`, `REDIS_URL`,
//! `STYLECAST_ADMIN_KEY` and `ORT_DYLIB_PATH` override their fields directly. Relative model
//! paths are anchored as `home_candidates` says.

//!
//! Each module owns its settings type (`store::DatabaseSettings`, `feed::FeedSettings`, …);
//! this file only assembles them into `Settings` and loads them. Dependencies point from
//! here to the modules, never back: no module imports `config`.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::cache::RedisSettings;
use crate::feed::FeedSettings;
use crate::generate::pipeline::GenerateSettings;
use crate::generate::OnnxSettings;
use crate::http::auth::AuthSettings;
use crate::http::ServerSettings;
use crate::ingest::IngestSettings;
use crate::interest::{AffinitySettings, EmbeddingSettings};
use crate::media::MediaLimits;
use crate::served::ServedSettings;
use crate::store::{AnalystSettings, DatabaseSettings};
use crate::telemetry::LogSettings;

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
    pub generate: GenerateSettings,
    pub media: MediaLimits,
    pub analyst: AnalystSettings,
    pub feed: FeedSettings,
    pub served: ServedSettings,
}

const DEFAULTS: &str = include_str!("../config/default.toml");

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("reading settings: {0}")]
    Load(#[from] config::ConfigError),
    #[error("invalid setting {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
}

/// Where relative model paths (`onnx.model_dir`, `onnx.library_path`) are looked up, in order:
/// `STYLECAST_HOME` alone when set; otherwise the working directory, then the folder of the
/// binary and each folder above it (an installed `/app/stylecast` beside `/app/onnx`, or
/// `target/release/stylecast` inside a checkout), so the CLI works from any folder.
fn home_candidates() -> Vec<PathBuf> {
    if let Some(home) = std::env::var_os("STYLECAST_HOME") {
        return vec![PathBuf::from(home)];
    }
    let mut roots: Vec<PathBuf> = std::env::current_dir().into_iter().collect();
    if let Ok(exe) = std::env::current_exe() {
        roots.extend(exe.ancestors().skip(1).map(Path::to_path_buf));
    }
    roots
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
                .separator("__")
                // Lists from the environment are comma-separated (only keys named here).
                .list_separator(",")
                .with_list_parse_key("onnx.experiment_generators"),
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
        let mut settings: Settings = builder.build()?.try_deserialize()?;
        settings.onnx.anchor(&home_candidates());
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
