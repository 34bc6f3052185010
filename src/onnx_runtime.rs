//! The ONNX Runtime library, loaded once per process (ort allows one environment).
//!
//! A missing or wrong library is not fatal: the service starts, `/readyz` says what is
//! missing and how to install it, and everything that does not need a model keeps working.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::Serialize;

pub struct OrtRuntime {
    pub library: PathBuf,
    pub environment: ort::environment::Environment,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RuntimeStatus {
    pub loaded: bool,
    pub library: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<&'static str>,
}

const FIX: &str = "run scripts/install-ort.sh (it installs libonnxruntime from the onnxruntime wheel) \
                   and set ORT_DYLIB_PATH to the path it prints";

static RUNTIME: OnceLock<Result<OrtRuntime, (PathBuf, String)>> = OnceLock::new();

/// Loads the library on first call; later calls return the first outcome.
pub fn runtime(library: &Path) -> Result<&'static OrtRuntime, RuntimeStatus> {
    let outcome = RUNTIME.get_or_init(|| load(library));
    match outcome {
        Ok(runtime) => Ok(runtime),
        Err((path, error)) => Err(RuntimeStatus {
            loaded: false,
            library: path.display().to_string(),
            error: Some(error.clone()),
            fix: Some(FIX),
        }),
    }
}

pub fn status(library: &Path) -> RuntimeStatus {
    match runtime(library) {
        Ok(runtime) => RuntimeStatus {
            loaded: true,
            library: runtime.library.display().to_string(),
            error: None,
            fix: None,
        },
        Err(status) => status,
    }
}

fn load(library: &Path) -> Result<OrtRuntime, (PathBuf, String)> {
    let absolute = std::path::absolute(library).unwrap_or_else(|_| library.to_path_buf());
    if !absolute.exists() {
        return Err((absolute.clone(), format!("{} does not exist", absolute.display())));
    }
    let environment = ort::init_from(&absolute)
        .map_err(|err| (absolute.clone(), err.to_string()))?
        .with_name("stylecast")
        .build()
        .map_err(|err| (absolute.clone(), err.to_string()))?;
    tracing::info!(library = %absolute.display(), "ONNX Runtime loaded");
    Ok(OrtRuntime {
        library: absolute,
        environment,
    })
}
