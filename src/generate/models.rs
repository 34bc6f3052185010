//! The models generation needs, loaded once at start-up from the manifest. When the ONNX
//! Runtime library or a model file is missing the service still starts: `ModelStatus` says
//! what is missing and how to fix it, and generation answers 503 with that text.
//!
//! Two generator backends share one interface: Stylecast's own pair (style_encoder +
//! generator: NCHW, any size (or multiples of the manifest's `hw_multiple_of`), batched) and the Magenta arbitrary
//! stylization pair (magenta_predict + magenta_transform: NHWC, fixed sizes, batch 1).
//! Layouts, fixed sizes, batch limits and code widths come from the manifest.

use std::path::Path;

use image::RgbImage;
use ndarray::{ArrayD, IxDyn};
use serde::Serialize;

use super::engine::{off_worker, Engine, EngineConfig, EngineError};
use super::manifest::{Manifest, ModelEntry};
use super::timing::{Stage, StageTimes};
use crate::media::{self, FilterType};
use crate::onnx_runtime;
use crate::tensor::{from_tensor, to_tensor};

/// Which generator serves (`onnx.generator`: "default" takes the manifest's winner).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Stylecast,
    Magenta,
}

impl Backend {
    pub fn parse(name: &str) -> Result<Self, String> {
        match name {
            "stylecast" => Ok(Self::Stylecast),
            "magenta" => Ok(Self::Magenta),
            other => Err(format!(
                "onnx.generator {other:?} is not one of default, stylecast, magenta"
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stylecast => "stylecast",
            Self::Magenta => "magenta",
        }
    }

    /// Manifest names of (style encoder, generator).
    fn model_names(self) -> (&'static str, &'static str) {
        match self {
            Self::Stylecast => ("style_encoder", "generator"),
            Self::Magenta => ("magenta_predict", "magenta_transform"),
        }
    }
}

/// How one model wants its image: channel order and, for fixed-size models, the size.
#[derive(Debug, Clone, Copy)]
struct ImageInput {
    channels_last: bool,
    fixed_hw: Option<(usize, usize)>,
}

impl ImageInput {
    fn of(entry: &ModelEntry) -> Self {
        Self {
            channels_last: entry.channels_last(),
            fixed_hw: entry.fixed_hw.map(|[h, w]| (h, w)),
        }
    }

    fn tensor(self, image: &RgbImage) -> ArrayD<f32> {
        if self.channels_last {
            nhwc_tensor(image)
        } else {
            to_tensor(image)
        }
    }
}

pub struct Models {
    pub backend: Backend,
    pub encoder: Engine,
    pub generator: Engine,
    pub vgg: Engine,
    pub style_dim: usize,
    encoder_input: ImageInput,
    generator_io: GeneratorIo,
}

/// What the generator takes: its image input, and the rank of its code input (2: [1, D];
/// 4: Magenta's [1, 1, 1, D]).
#[derive(Debug, Clone, Copy)]
struct GeneratorIo {
    input: ImageInput,
    code_rank: usize,
    /// A model that takes any size runs on a square frame of the content's longer side.
    square_frames: bool,
    /// The content's sides are cropped to multiples of this (1: any size).
    hw_multiple: u32,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ModelStatus {
    pub loaded: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generator: Option<Backend>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<&'static str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub versions: Vec<(String, String)>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A generator run prepared from a content image: the model's inputs, and how to turn its
/// output back into an NCHW tensor of the content's size.
pub struct Prepared {
    pub inputs: Vec<ArrayD<f32>>,
    content_hw: (u32, u32),
    /// For framed runs (fixed-size models, square frames): the content's size inside the
    /// padded frame, top left.
    inner_hw: Option<(u32, u32)>,
}

impl Models {
    pub fn load(library: &Path, model_dir: &Path, generator: &str, config: &EngineConfig) -> Result<Self, String> {
        let runtime = onnx_runtime::runtime(library).map_err(|status| {
            format!(
                "{}; fix: {}",
                status.error.unwrap_or_default(),
                status.fix.unwrap_or_default()
            )
        })?;
        let manifest = Manifest::load(model_dir).map_err(|e| e.to_string())?;
        let backend = Backend::parse(&manifest.generator_choice(generator))?;
        let (encoder_name, generator_name) = backend.model_names();
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
        let encoder_entry = manifest.entry(encoder_name).map_err(|e| e.to_string())?;
        let generator_entry = manifest.entry(generator_name).map_err(|e| e.to_string())?;
        // A model with a fixed batch axis cannot take a dynamic batch.
        let generator_config = EngineConfig {
            max_batch: generator_entry
                .fixed_batch()
                .map_or(config.max_batch, |n| n.min(config.max_batch)),
            ..config.clone()
        };
        let generator = load(generator_name, &generator_config)?;
        let square_frames = config.square_frames.applies(generator.provider);
        Ok(Self {
            backend,
            encoder: load(encoder_name, &single)?,
            generator,
            vgg: load("vgg19_features", &single)?,
            style_dim: encoder_entry.output_width(0).unwrap_or(manifest.style_dim),
            encoder_input: ImageInput::of(encoder_entry),
            generator_io: GeneratorIo {
                input: ImageInput::of(generator_entry),
                code_rank: generator_entry.input_rank(1).unwrap_or(2),
                square_frames,
                hw_multiple: generator_entry.hw_multiple(),
            },
        })
    }

    /// What the content's sides must be multiples of before `stylize`.
    pub fn hw_multiple(&self) -> u32 {
        self.generator_io.hw_multiple
    }

    /// Whether strength below 1 moves the style code from the photo's own code (Magenta's
    /// arbitrary stylization, Ghiasi et al. 2017). Stylecast's colour mapping needs no code of
    /// the photo: blending output and input pixels by the strength is the mapping interpolated
    /// with the identity, so a request at any strength costs what one at strength 1 costs.
    pub fn strength_moves_code(&self) -> bool {
        self.backend == Backend::Magenta
    }

    /// "generator version + encoder version": what a generated image depends on.
    pub fn version(&self) -> String {
        format!("{}+{}", self.generator.version, self.encoder.version)
    }

    pub fn status(&self) -> ModelStatus {
        ModelStatus {
            loaded: true,
            generator: Some(self.backend),
            provider: Some(self.generator.provider),
            versions: [&self.generator, &self.encoder, &self.vgg]
                .iter()
                .map(|e| (e.name.clone(), e.version.clone()))
                .collect(),
            error: None,
        }
    }

    /// The style code of a square style photo (`STYLE_SIDE`), resized first when the
    /// encoder only takes another size.
    pub async fn style_code(&self, square: &RgbImage) -> Result<Vec<f32>, EngineError> {
        let input = self.encoder_input;
        let tensor = match input.fixed_hw {
            Some((h, w)) if (h as u32, w as u32) != (square.height(), square.width()) => {
                input.tensor(&media::resize(square, w as u32, h as u32, FilterType::Lanczos3))
            }
            _ => input.tensor(square),
        };
        let outputs = self.encoder.run(vec![tensor]).await?;
        Ok(outputs.first().map(|o| o.iter().copied().collect()).unwrap_or_default())
    }

    /// The generator's inputs for a content image (its sides multiples of `hw_multiple`) and a code.
    pub fn prepare(&self, content: &RgbImage, code: &[f32]) -> Result<Prepared, EngineError> {
        self.generator_io
            .prepare(content, code)
            .map_err(|message| EngineError::Run {
                model: self.generator.name.clone(),
                message,
            })
    }

    /// The generator's output as an NCHW [1, 3, H, W] tensor of the content's size.
    pub fn finish(&self, prepared: &Prepared, output: ArrayD<f32>) -> ArrayD<f32> {
        self.generator_io.finish(prepared, output)
    }

    /// Content image + style code → stylised NCHW tensor of the content's size; the image
    /// work runs on the blocking pool. The queue wait and session run go into `times`.
    pub async fn stylize(
        &self,
        content: RgbImage,
        code: Vec<f32>,
        times: &mut StageTimes,
    ) -> Result<ArrayD<f32>, EngineError> {
        let io = self.generator_io;
        let model = self.generator.name.clone();
        let mut prepared = times
            .time(Stage::Tensors, off_worker(move || io.prepare(&content, &code)))
            .await?
            .map_err(|message| EngineError::Run { model, message })?;
        let ran = self.generator.run_timed(std::mem::take(&mut prepared.inputs)).await?;
        times.add(Stage::Queue, ran.queued);
        times.add(Stage::Model, ran.run);
        let output = ran.outputs.into_iter().next().ok_or_else(|| EngineError::Run {
            model: self.generator.name.clone(),
            message: "the generator returned no output".into(),
        })?;
        times
            .time(Stage::Tensors, off_worker(move || io.finish(&prepared, output)))
            .await
    }
}

impl GeneratorIo {
    /// A fixed-size model gets the image scaled so its longer side fits, reflect-padded to
    /// the frame (as Magenta's own tooling does); the rest take it as it is.
    fn prepare(self, content: &RgbImage, code: &[f32]) -> Result<Prepared, String> {
        let (w, h) = content.dimensions();
        let (frame, inner_hw) = match self.input.fixed_hw {
            None if self.square_frames && w != h => {
                let side = w.max(h);
                (self.input.tensor(&reflect_pad(content, side, side)), Some((w, h)))
            }
            None => (self.input.tensor(content), None),
            Some((fh, fw)) => {
                let scale = (fh as f64 / f64::from(h)).min(fw as f64 / f64::from(w));
                let sw = ((f64::from(w) * scale).round() as u32).clamp(1, fw as u32);
                let sh = ((f64::from(h) * scale).round() as u32).clamp(1, fh as u32);
                let scaled = media::resize(content, sw, sh, FilterType::Lanczos3);
                (
                    self.input.tensor(&reflect_pad(&scaled, fw as u32, fh as u32)),
                    Some((sw, sh)),
                )
            }
        };
        let mut code_shape = vec![1; self.code_rank.max(2)];
        if let Some(last) = code_shape.last_mut() {
            *last = code.len();
        }
        let style =
            ArrayD::from_shape_vec(IxDyn(&code_shape), code.to_vec()).map_err(|e| format!("style code: {e}"))?;
        Ok(Prepared {
            inputs: vec![frame, style],
            content_hw: (w, h),
            inner_hw,
        })
    }

    fn finish(self, prepared: &Prepared, output: ArrayD<f32>) -> ArrayD<f32> {
        if !self.input.channels_last {
            match prepared.inner_hw {
                None => return output,
                // A square frame around unscaled content: the content's corner of the output.
                Some(inner) if inner == prepared.content_hw && output.ndim() == 4 => {
                    let (w, h) = (inner.0 as usize, inner.1 as usize);
                    return output
                        .slice_axis(ndarray::Axis(2), ndarray::Slice::from(..h))
                        .slice_axis(ndarray::Axis(3), ndarray::Slice::from(..w))
                        .to_owned();
                }
                Some(_) => {}
            }
        }
        let image = if self.input.channels_last {
            nhwc_image(&output)
        } else {
            from_tensor(&output)
        };
        let image = match prepared.inner_hw {
            Some((sw, sh)) => {
                let (w, h) = prepared.content_hw;
                let inner = image::imageops::crop_imm(&image, 0, 0, sw, sh).to_image();
                if (sw, sh) == (w, h) {
                    inner
                } else {
                    media::resize(&inner, w, h, FilterType::Lanczos3)
                }
            }
            None => image,
        };
        to_tensor(&image)
    }
}

pub fn missing(error: String) -> ModelStatus {
    ModelStatus {
        loaded: false,
        generator: None,
        provider: None,
        versions: Vec::new(),
        error: Some(error),
    }
}

/// NHWC [1, H, W, 3] float tensor in [0, 1] of one RGB image.
fn nhwc_tensor(image: &RgbImage) -> ArrayD<f32> {
    let (w, h) = image.dimensions();
    let data: Vec<f32> = image.as_raw().iter().map(|&v| f32::from(v) / 255.0).collect();
    ArrayD::from_shape_vec(IxDyn(&[1, h as usize, w as usize, 3]), data)
        .unwrap_or_else(|_| ArrayD::zeros(IxDyn(&[1, 0, 0, 3])))
}

/// RGB image of batch item 0 of an NHWC tensor in [0, 1].
fn nhwc_image(tensor: &ArrayD<f32>) -> RgbImage {
    let shape = tensor.shape();
    let (h, w) = (shape[1], shape[2]);
    RgbImage::from_fn(w as u32, h as u32, |x, y| {
        let value = |c: usize| (tensor[[0, y as usize, x as usize, c]].clamp(0.0, 1.0) * 255.0).round() as u8;
        image::Rgb([value(0), value(1), value(2)])
    })
}

/// Pads bottom and right to `width` × `height` by mirroring (numpy's "reflect": the edge
/// pixel is not repeated), folding again when the pad is wider than the image.
fn reflect_pad(image: &RgbImage, width: u32, height: u32) -> RgbImage {
    let (w, h) = image.dimensions();
    RgbImage::from_fn(width, height, |x, y| *image.get_pixel(reflect(x, w), reflect(y, h)))
}

fn reflect(i: u32, n: u32) -> u32 {
    if n <= 1 {
        return 0;
    }
    let period = 2 * (n - 1);
    let m = i % period;
    if m < n {
        m
    } else {
        period - m
    }
}

/// Style photos are centre-cropped to a square of this side (the encoder's training size).
pub const STYLE_SIDE: u32 = 256;

/// The style code of an arbitrary photo (the user's own, for strength interpolation).
pub async fn photo_code(models: &Models, image: &RgbImage) -> Result<Vec<f32>, EngineError> {
    models.style_code(&media::square(image, STYLE_SIDE)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reflect_mirrors_without_repeating_the_edge() {
        let got: Vec<u32> = (0..9).map(|i| reflect(i, 4)).collect();
        assert_eq!(got, vec![0, 1, 2, 3, 2, 1, 0, 1, 2]);
        assert_eq!(reflect(5, 1), 0);
    }

    #[test]
    fn nhwc_round_trips_pixels() {
        let image = RgbImage::from_fn(5, 3, |x, y| image::Rgb([x as u8 * 40, y as u8 * 70, 200]));
        let tensor = nhwc_tensor(&image);
        assert_eq!(tensor.shape(), &[1, 3, 5, 3]);
        assert_eq!(nhwc_image(&tensor), image);
    }

    #[test]
    fn reflect_pad_keeps_the_image_top_left() {
        let image = RgbImage::from_fn(3, 2, |x, y| image::Rgb([x as u8, y as u8, 0]));
        let padded = reflect_pad(&image, 6, 4);
        assert_eq!(padded.dimensions(), (6, 4));
        assert_eq!(padded.get_pixel(2, 1), image.get_pixel(2, 1));
        assert_eq!(padded.get_pixel(3, 0), image.get_pixel(1, 0));
        assert_eq!(padded.get_pixel(0, 2), image.get_pixel(0, 0));
    }
}
