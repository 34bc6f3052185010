//! Which models generation loads, and from where.

use std::path::PathBuf;

use serde::Deserialize;

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
