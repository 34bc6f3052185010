//! `onnx/models.json`: which model files exist, their versions, inputs and outputs.
//! The service reads names and shapes from here and never hard-codes them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, Deserialize)]
pub struct Manifest {
    pub style_dim: usize,
    #[serde(default)]
    pub default_generator: Option<String>,
    pub models: BTreeMap<String, ModelEntry>,
    #[serde(skip)]
    pub dir: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ModelEntry {
    pub file: PathBuf,
    #[serde(default)]
    pub sha256: Option<String>,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub committed: bool,
    /// "NCHW RGB" (ours) or "NHWC RGB" (Magenta); absent means NCHW.
    #[serde(default)]
    pub layout: Option<String>,
    /// Models that only take one spatial size (Magenta's) give it here: [H, W].
    #[serde(default)]
    pub fixed_hw: Option<[usize; 2]>,
    pub inputs: Vec<TensorSpec>,
    pub outputs: Vec<TensorSpec>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TensorSpec {
    pub name: String,
    #[serde(default)]
    pub shape: Vec<serde_json::Value>,
    #[serde(default)]
    pub layout: Option<String>,
    #[serde(default)]
    pub range: Option<[f32; 2]>,
    /// Image inputs whose sides must be multiples of this (a network that downsamples).
    #[serde(default)]
    pub hw_multiple_of: Option<u32>,
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("reading {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("parsing {path}: {source}")]
    Parse { path: PathBuf, source: serde_json::Error },
    #[error("model {0:?} is not in the manifest")]
    Missing(String),
    #[error("{path} is missing; {fix}")]
    FileMissing { path: PathBuf, fix: String },
    #[error("{path} has sha256 {actual}, the manifest says {expected}; re-export or restore the file")]
    HashMismatch {
        path: PathBuf,
        expected: String,
        actual: String,
    },
}

impl ModelEntry {
    pub fn channels_last(&self) -> bool {
        self.layout.as_deref().is_some_and(|l| l.starts_with("NHWC"))
    }

    /// The batch size the model is fixed to (a number as the first dimension of its first
    /// input), or None when the batch axis is dynamic.
    pub fn fixed_batch(&self) -> Option<usize> {
        let first = self.inputs.first()?.shape.first()?;
        first.as_u64().map(|n| n as usize)
    }

    /// The length of the last axis of output `index` when the manifest gives it as a number.
    pub fn output_width(&self, index: usize) -> Option<usize> {
        let last = self.outputs.get(index)?.shape.last()?;
        last.as_u64().map(|n| n as usize)
    }

    /// The rank of input `index` (2 for [N, D], 4 for Magenta's [1, 1, 1, D]).
    /// What the first input's sides must be multiples of (1: any size).
    pub fn hw_multiple(&self) -> u32 {
        self.inputs.first().and_then(|i| i.hw_multiple_of).unwrap_or(1).max(1)
    }

    pub fn input_rank(&self, index: usize) -> Option<usize> {
        self.inputs.get(index).map(|i| i.shape.len())
    }
}

impl Manifest {
    pub fn load(dir: &Path) -> Result<Self, ManifestError> {
        let path = dir.join("models.json");
        let text = std::fs::read_to_string(&path).map_err(|source| ManifestError::Read {
            path: path.clone(),
            source,
        })?;
        let mut manifest: Manifest = serde_json::from_str(&text).map_err(|source| ManifestError::Parse {
            path: path.clone(),
            source,
        })?;
        manifest.dir = dir.to_path_buf();
        Ok(manifest)
    }

    /// The generator `choice` names ("stylecast", "magenta"), or the manifest's default for
    /// "default".
    pub fn generator_choice(&self, choice: &str) -> String {
        match choice {
            "" | "default" => self
                .default_generator
                .clone()
                .unwrap_or_else(|| "stylecast".to_string()),
            other => other.to_string(),
        }
    }

    pub fn entry(&self, name: &str) -> Result<&ModelEntry, ManifestError> {
        self.models
            .get(name)
            .ok_or_else(|| ManifestError::Missing(name.to_string()))
    }

    /// The model file, checked to exist and (when the manifest pins it) to match its hash.
    /// Returns the path and the version (the pinned one, else the file's own hash prefix).
    pub fn verified_file(&self, name: &str) -> Result<(PathBuf, String), ManifestError> {
        let entry = self.entry(name)?;
        let path = self.dir.join(&entry.file);
        let bytes = std::fs::read(&path).map_err(|_| ManifestError::FileMissing {
            path: path.clone(),
            fix: if entry.committed {
                "it is committed in onnx/; restore it from git".to_string()
            } else {
                "run onnx/check.sh (or python3 onnx/fetch_assets.py) to build it".to_string()
            },
        })?;
        let actual = hex::encode(Sha256::digest(&bytes));
        if let Some(expected) = &entry.sha256 {
            if !expected.eq_ignore_ascii_case(&actual) {
                return Err(ManifestError::HashMismatch {
                    path,
                    expected: expected.clone(),
                    actual,
                });
            }
        }
        let version = entry.version.clone().unwrap_or_else(|| actual[..12].to_string());
        Ok((path, version))
    }
}
