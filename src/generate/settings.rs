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
    /// Generators loaded beside `generator` so that experiment variants can choose them
    /// (`["magenta"]`); each adds its models' memory and start-up time. Their style codes are
    /// computed when reference photos are added, and for photos already stored at start-up.
    #[serde(default)]
    pub experiment_generators: Vec<String>,
}

impl OnnxSettings {
    /// Anchors a relative `model_dir` and `library_path` at the first of `roots` that holds
    /// `model_dir/models.json` (the first root when none does, so errors name a real path).
    /// Absolute paths stay as they are.
    pub fn anchor(&mut self, roots: &[PathBuf]) {
        let Some(home) = roots
            .iter()
            .find(|root| root.join(&self.model_dir).join("models.json").is_file())
            .or(roots.first())
        else {
            return;
        };
        for path in [&mut self.model_dir, &mut self.library_path] {
            if path.is_relative() {
                *path = home.join(&*path);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> OnnxSettings {
        OnnxSettings {
            library_path: ".ort/libonnxruntime.so".into(),
            model_dir: "onnx".into(),
            generator: "default".into(),
            experiment_generators: Vec::new(),
        }
    }

    #[test]
    fn relative_paths_anchor_at_the_first_root_holding_the_manifest() {
        let empty = tempfile::tempdir().expect("tempdir");
        let home = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(home.path().join("onnx")).expect("mkdir");
        std::fs::write(home.path().join("onnx/models.json"), "{}").expect("write");
        let mut onnx = settings();
        onnx.anchor(&[empty.path().to_path_buf(), home.path().to_path_buf()]);
        assert_eq!(onnx.model_dir, home.path().join("onnx"));
        assert_eq!(onnx.library_path, home.path().join(".ort/libonnxruntime.so"));
    }

    #[test]
    fn without_a_manifest_anywhere_the_first_root_is_named_and_absolute_paths_stay() {
        let empty = tempfile::tempdir().expect("tempdir");
        let mut onnx = settings();
        onnx.library_path = "/opt/ort/libonnxruntime.so".into();
        onnx.anchor(&[empty.path().to_path_buf()]);
        assert_eq!(onnx.model_dir, empty.path().join("onnx"));
        assert_eq!(onnx.library_path, PathBuf::from("/opt/ort/libonnxruntime.so"));
    }
}
