//! `stylecast eval-styles`: how far generation moves a photo towards each influencer's style.
//!
//! The model card's metric (onnx/eval.py), computed by the service's own code: for a
//! held-out photo x and an influencer with target Grams G* (the mean VGG19 Gram matrices of
//! their stored reference photos), ratio = d(G(out), G*) / d(G(x), G*), with d the mean
//! squared Gram difference over relu1_1…relu4_1. Below 1 the output is closer to the style
//! than the input was; 1 means unchanged.

use std::path::{Path, PathBuf};

use image::RgbImage;
use ndarray::{ArrayD, IxDyn};
use sqlx::PgPool;

use crate::generate::models::{Models, STYLE_SIDE};
use crate::media::{self, MediaLimits};
use crate::store::styles;
use crate::style::extract::photo_style;
use crate::style::gram;
use crate::style::service::{self, StyleError};
use crate::tensor::{from_tensor, to_tensor};

#[derive(Debug, Clone, PartialEq)]
pub struct StyleScore {
    pub influencer: String,
    /// Mean Gram distance of the inputs to the style.
    pub input_distance: f64,
    /// Mean Gram distance of the outputs to the style.
    pub output_distance: f64,
    /// Per-photo ratios output / input.
    pub ratios: Vec<f64>,
}

impl StyleScore {
    pub fn mean_ratio(&self) -> f64 {
        self.ratios.iter().sum::<f64>() / self.ratios.len().max(1) as f64
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("no held-out photos (.jpg, .png, .webp) in {0}")]
    NoPhotos(PathBuf),
    #[error("reading {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("no influencer has a usable style for encoder {0}; run `stylecast demo` or upload photos")]
    NoStyles(String),
    #[error(transparent)]
    Style(#[from] StyleError),
    #[error("style code of {0} does not fit the generator")]
    Shape(String),
}

/// The held-out photos of a directory, decoded and centre-cropped to the style side.
pub async fn heldout_photos(dir: &Path, limits: MediaLimits) -> Result<Vec<(String, RgbImage)>, EvalError> {
    let read = |path: PathBuf| std::fs::read_dir(&path).map_err(|source| EvalError::Read { path, source });
    let mut paths: Vec<PathBuf> = read(dir.to_path_buf())?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "jpg" | "jpeg" | "png" | "webp"))
        })
        .collect();
    paths.sort();
    let mut photos = Vec::new();
    for path in paths {
        let bytes = std::fs::read(&path).map_err(|source| EvalError::Read {
            path: path.clone(),
            source,
        })?;
        let image = service::decode(bytes.into(), limits).await?;
        let name = path
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        photos.push((name, media::square(&image, STYLE_SIDE)));
    }
    if photos.is_empty() {
        return Err(EvalError::NoPhotos(dir.to_path_buf()));
    }
    Ok(photos)
}

/// Scores every usable style on every photo; `progress` gets (done, total) generations.
pub async fn evaluate(
    pool: &PgPool,
    models: &Models,
    photos: &[(String, RgbImage)],
    mut progress: impl FnMut(usize, usize),
) -> Result<Vec<StyleScore>, EvalError> {
    let usable = styles::usable_styles(pool, &models.encoder.version)
        .await
        .map_err(StyleError::from)?;
    if usable.is_empty() {
        return Err(EvalError::NoStyles(models.encoder.version.clone()));
    }
    // The inputs' Grams do not depend on the style: computed once.
    let mut inputs = Vec::new();
    for (_, photo) in photos {
        inputs.push(
            photo_style(models, photo.clone())
                .await
                .map_err(StyleError::from)?
                .grams,
        );
    }
    let total = usable.len() * photos.len();
    let mut scores = Vec::new();
    for style in usable {
        let target = service::influencer_grams(pool, models, &style.influencer).await?;
        let mut score = StyleScore {
            influencer: style.influencer.clone(),
            input_distance: 0.0,
            output_distance: 0.0,
            ratios: Vec::new(),
        };
        for ((_, photo), input_grams) in photos.iter().zip(&inputs) {
            let output = restyle(models, photo, &style.style_code, &style.influencer).await?;
            let output_grams = photo_style(models, output).await.map_err(StyleError::from)?.grams;
            let d_in = f64::from(gram::distance(input_grams, &target));
            let d_out = f64::from(gram::distance(&output_grams, &target));
            score.input_distance += d_in / photos.len() as f64;
            score.output_distance += d_out / photos.len() as f64;
            // A photo already at the style (d_in = 0) cannot move closer: it counts as unchanged.
            score.ratios.push(if d_in > 0.0 { d_out / d_in } else { 1.0 });
            progress(scores.len() * photos.len() + score.ratios.len(), total);
        }
        scores.push(score);
    }
    Ok(scores)
}

/// The generator at full strength with one influencer's code (what generation does with
/// `influencer=<id>`, strength 1).
async fn restyle(models: &Models, photo: &RgbImage, code: &[f32], influencer: &str) -> Result<RgbImage, EvalError> {
    let content = to_tensor(photo);
    let style = ArrayD::from_shape_vec(IxDyn(&[1, code.len()]), code.to_vec())
        .map_err(|_| EvalError::Shape(influencer.to_string()))?;
    let output = models
        .generator
        .run(vec![content, style])
        .await
        .map_err(StyleError::from)?;
    let first = output.first().ok_or_else(|| EvalError::Shape(influencer.to_string()))?;
    Ok(from_tensor(first))
}

/// The table printed by the CLI.
pub fn table(scores: &[StyleScore]) -> String {
    let mut out = format!(
        "{:<24} {:>7} {:>12} {:>12} {:>10} {:>8} {:>8}\n",
        "influencer", "photos", "d(input)", "d(output)", "ratio", "min", "max"
    );
    for s in scores {
        let min = s.ratios.iter().copied().fold(f64::INFINITY, f64::min);
        let max = s.ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        out.push_str(&format!(
            "{:<24} {:>7} {:>12.5} {:>12.5} {:>10.3} {:>8.3} {:>8.3}\n",
            s.influencer,
            s.ratios.len(),
            s.input_distance,
            s.output_distance,
            s.mean_ratio(),
            min,
            max
        ));
    }
    out
}

/// Mean and median over every (influencer, photo) ratio.
pub fn summary(scores: &[StyleScore]) -> (f64, f64) {
    let mut all: Vec<f64> = scores.iter().flat_map(|s| s.ratios.iter().copied()).collect();
    if all.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    all.sort_by(f64::total_cmp);
    let mean = all.iter().sum::<f64>() / all.len() as f64;
    let mid = all.len() / 2;
    let median = if all.len() % 2 == 0 {
        (all[mid - 1] + all[mid]) / 2.0
    } else {
        all[mid]
    };
    (mean, median)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_is_mean_and_median_of_all_ratios() {
        let score = |ratios: Vec<f64>| StyleScore {
            influencer: "x".into(),
            input_distance: 1.0,
            output_distance: 0.5,
            ratios,
        };
        let (mean, median) = summary(&[score(vec![0.2, 0.4]), score(vec![0.9])]);
        assert!((mean - 0.5).abs() < 1e-9);
        assert!((median - 0.4).abs() < 1e-9);
        assert!(table(&[score(vec![0.2])]).contains("0.200"));
    }
}
