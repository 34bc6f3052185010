//! Generation as the rest of the application holds it: the models (or why they are missing),
//! the stores and caches a pipeline reads, and the settings, built once at start-up and
//! shared by the HTTP handlers and the feed workers.

use std::sync::Arc;

use sqlx::PgPool;

use super::error::GenerateError;
use super::models::{ModelStatus, Models};
use super::pipeline::{GenerateSettings, Pipeline};
use crate::cache::Cache;
use crate::media::MediaLimits;
use crate::recommend::Recommender;

pub struct Generation {
    pub pool: PgPool,
    /// None when the runtime or a model file is missing (`model_status` says why).
    pub models: Option<Arc<Models>>,
    pub model_status: ModelStatus,
    pub recommender: Arc<Recommender>,
    pub cache: Arc<Cache>,
    pub settings: GenerateSettings,
    pub limits: MediaLimits,
}

impl Generation {
    /// The loaded models, or `ModelsUnavailable` with the reason.
    pub fn models(&self) -> Result<&Models, GenerateError> {
        self.models
            .as_deref()
            .ok_or_else(|| GenerateError::ModelsUnavailable(self.model_status.error.clone().unwrap_or_default()))
    }

    pub fn pipeline(&self) -> Result<Pipeline<'_>, GenerateError> {
        Ok(Pipeline {
            pool: &self.pool,
            models: self.models()?,
            recommender: &self.recommender,
            cache: &self.cache,
            settings: &self.settings,
            limits: self.limits,
        })
    }
}
