//! The models generation needs, loaded once at start-up from the manifest. When the ONNX
//! Runtime library or a model file is missing the service still starts: `ModelStatus` says
//! what is missing and how to fix it, and generation answers 503 with that text.

use std::path::Path;

use serde::Serialize;

use super::engine::{Engine, EngineConfig};
use super::manifest::Manifest;
use crate::onnx_runtime;

pub struct Models {
    pub encoder: Engine,
    pub generator: Engine,
    pub vgg: Engine,
    pub style_dim: usize,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ModelStatus {
    pub loaded: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<&'static str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub versions: Vec<(String, String)>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Models {
    pub fn load(library: &Path, model_dir: &Path, config: &EngineConfig) -> Result<Self, String> {
        let runtime = onnx_runtime::runtime(library).map_err(|status| {
            format!(
                "{}; fix: {}",
                status.error.unwrap_or_default(),
                status.fix.unwrap_or_default()
            )
        })?;
        let manifest = Manifest::load(model_dir).map_err(|e| e.to_string())?;
        let load = |name: &str, config: &EngineConfig| -> Result<Engine, String> {
            let (path, version) = manifest.verified_file(name).map_err(|e| e.to_string())?;
            Engine::load(runtime, name, version, &path, config).map_err(|e| e.to_string())
        };
        // Style features are computed at upload time, one photo at a time: no batching wait.
        let single = EngineConfig {
            max_batch: 1,
            max_wait_ms: 0,
            ..config.clone()
        };
        Ok(Self {
            encoder: load("style_encoder", &single)?,
            generator: load("generator", config)?,
            vgg: load("vgg19_features", &single)?,
            style_dim: manifest.style_dim,
        })
    }

    /// "generator version + encoder version": what a generated image depends on.
    pub fn version(&self) -> String {
        format!("{}+{}", self.generator.version, self.encoder.version)
    }

    pub fn status(&self) -> ModelStatus {
        ModelStatus {
            loaded: true,
            provider: Some(self.generator.provider),
            versions: [&self.generator, &self.encoder, &self.vgg]
                .iter()
                .map(|e| (e.name.clone(), e.version.clone()))
                .collect(),
            error: None,
        }
    }
}

pub fn missing(error: String) -> ModelStatus {
    ModelStatus {
        loaded: false,
        provider: None,
        versions: Vec::new(),
        error: Some(error),
    }
}
