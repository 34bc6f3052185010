//! Generation as the rest of the application holds it: the models (or why they are missing),
//! the stores and caches a pipeline reads, and the settings, built once at start-up and
//! shared by the HTTP handlers and the feed workers.

use std::sync::Arc;

use sqlx::PgPool;

use super::error::GenerateError;
use super::models::{ModelStatus, Models};
use super::pipeline::{GenerateSettings, Pipeline};
use crate::cache::Cache;
use crate::experiment::Assignment;
use crate::media::MediaLimits;
use crate::recommend::Recommender;

pub struct Generation {
    pub pool: PgPool,
    /// None when the runtime or a model file is missing (`model_status` says why).
    pub models: Option<Arc<Models>>,
    pub model_status: ModelStatus,
    /// Other generators loaded beside the default for experiments
    /// (`onnx.experiment_generators`), each with its own style encoder.
    pub alternates: Vec<Arc<Models>>,
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

    /// The pipeline over the default models; `Pipeline::for_generator` picks a variant's.
    /// The pipeline painting with the generator of an experiment variant (the default when
    /// it names none).
    pub fn pipeline_for(&self, assignment: Option<&Assignment>) -> Result<Pipeline<'_>, GenerateError> {
        self.pipeline()?
            .for_generator(assignment.and_then(|a| a.treatment.generator.as_deref()))
    }

    pub fn pipeline(&self) -> Result<Pipeline<'_>, GenerateError> {
        Ok(Pipeline {
            pool: &self.pool,
            models: self.models()?,
            alternates: &self.alternates,
            recommender: &self.recommender,
            cache: &self.cache,
            settings: &self.settings,
            limits: self.limits,
        })
    }
}
