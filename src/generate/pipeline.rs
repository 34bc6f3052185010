//! decode → blend → style code → generator → watermark + XMP + encode → cache → record.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use image::RgbImage;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

use crate::served::{ServedList, ServedTag, Surface};

use super::error::GenerateError;
use super::models::{photo_code, Models};
use super::timing::{Stage, StageTimes};
use crate::cache::Cache;
use crate::experiment::Assignment;
use crate::interest::blend::{self, Blend, BlendSource, Weighted};
use crate::media::{self, MediaLimits, OutputFormat};
use crate::provenance::{self, Mark};
use crate::recommend::Recommender;
use crate::store::styles::{self, FeedOrigin, GenerationRecord};
use crate::tensor::{from_tensor, to_tensor};

#[derive(Debug, Clone, Deserialize)]
pub struct GenerateSettings {
    pub default_size: u32,
    pub max_size: u32,
    pub cache_ttl_secs: u64,
    /// Softmax temperature of interest blends.
    pub interests_temperature: f64,
    /// Influencers in an interest blend.
    pub interests_k: usize,
    pub sessions: usize,
    pub intra_threads: usize,
    pub max_batch: usize,
    /// `never`, `always` or `gpu`: when concurrent requests share a session run.
    pub dynamic_batching: super::engine::DevicePolicy,
    pub max_wait_ms: u64,
    pub queue_capacity: usize,
    /// ONNX Runtime memory-pattern planning (see `engine::EngineConfig`).
    pub memory_pattern: bool,
    /// `never`, `always` or `gpu`: when batches are padded to max_batch (engine::DevicePolicy).
    pub pad_batches: super::engine::DevicePolicy,
    /// `never`, `always` or `gpu`: when the generator runs on a square frame.
    pub square_frames: super::engine::DevicePolicy,
}

impl GenerateSettings {
    /// How the model engines are built and fed.
    pub fn engine_config(&self) -> super::engine::EngineConfig {
        super::engine::EngineConfig {
            sessions: self.sessions,
            intra_threads: self.intra_threads,
            max_batch: self.max_batch,
            dynamic_batching: self.dynamic_batching,
            max_wait_ms: self.max_wait_ms,
            queue_capacity: self.queue_capacity,
            memory_pattern: self.memory_pattern,
            pad_batches: self.pad_batches,
            square_frames: self.square_frames,
        }
    }
}

/// Which style to paint with.
#[derive(Debug, Clone, PartialEq)]
pub enum StyleChoice {
    /// The user's interest blend.
    Interests,
    Influencer(String),
    Mix(Vec<(String, f64)>),
}

impl StyleChoice {
    /// "a=0.7,b=0.3" → Mix.
    pub fn parse_mix(text: &str) -> Result<Self, GenerateError> {
        let invalid = GenerateError::InvalidMix;
        let mut parts = Vec::new();
        for part in text.split(',').filter(|p| !p.trim().is_empty()) {
            let (id, weight) = part
                .split_once('=')
                .ok_or_else(|| invalid(format!("{part:?} is not influencer=weight")))?;
            let weight: f64 = weight
                .trim()
                .parse()
                .map_err(|_| invalid(format!("weight {weight:?} is not a number")))?;
            if !(weight.is_finite() && weight >= 0.0) {
                return Err(invalid(format!("weight {weight} must be a non-negative number")));
            }
            parts.push((id.trim().to_string(), weight));
        }
        if parts.is_empty() || parts.iter().map(|p| p.1).sum::<f64>() <= 0.0 {
            return Err(invalid("a mix needs at least one positive weight".into()));
        }
        Ok(Self::Mix(parts))
    }
}

/// How a generation reaches a user: directly, under the user's experiment assignment, or
/// as a feed slot (served with its page).
enum Served {
    Direct(Option<Assignment>),
    Feed(FeedOrigin),
}

pub struct GenerateRequest {
    pub photo: Bytes,
    /// The photo's SHA-256 (hex) when the caller has it already: a feed's stored photo.
    pub photo_sha256: Option<String>,
    pub user: String,
    pub choice: StyleChoice,
    pub strength: f32,
    pub size: u32,
    pub format: OutputFormat,
}

pub struct Generated {
    pub id: Uuid,
    pub image: Bytes,
    pub format: OutputFormat,
    pub blend: Blend,
    pub model_version: String,
    pub provider: &'static str,
    pub cache_hit: bool,
    /// Where the request's time went (`Server-Timing`).
    pub times: StageTimes,
    /// The experiment variant a direct generation was served under (its served id is `id`).
    pub served: Option<ServedTag>,
}

#[derive(Clone, Copy)]
pub struct Pipeline<'a> {
    pub pool: &'a PgPool,
    /// The models this pipeline paints with.
    pub models: &'a Models,
    /// Generators loaded beside `models` that an experiment variant may choose.
    pub alternates: &'a [Arc<Models>],
    pub recommender: &'a Recommender,
    pub cache: &'a Arc<Cache>,
    pub settings: &'a GenerateSettings,
    pub limits: MediaLimits,
}

impl Pipeline<'_> {
    /// A direct generation, painted by the generator of the user's experiment variant.
    pub async fn generate(&self, request: GenerateRequest) -> Result<Generated, GenerateError> {
        let started = Instant::now();
        self.check(&request)?;
        let mut times = StageTimes::default();
        let assignment = self.recommender.experiments().assign(&request.user).await;
        let generator = assignment.as_ref().and_then(|a| a.treatment.generator.as_deref());
        let this = self.for_generator(generator)?;
        let codes = times.time(Stage::Styles, this.usable_codes()).await?;
        let blend = times.time(Stage::Styles, this.blend(&request, &codes)).await?;
        let served = Served::Direct(assignment);
        this.produce(request, blend, &codes, served, Timer { started, times })
            .await
    }

    /// This pipeline painting with the named generator (None: its own models). A variant's
    /// generator that this process has not loaded is refused rather than silently swapped,
    /// which would put the control's images into the variant's results.
    pub fn for_generator(&self, generator: Option<&str>) -> Result<Self, GenerateError> {
        let Some(name) = generator.filter(|name| *name != self.models.backend.as_str()) else {
            return Ok(*self);
        };
        let models = self
            .alternates
            .iter()
            .find(|m| m.backend.as_str() == name)
            .ok_or_else(|| {
                GenerateError::ModelsUnavailable(format!(
                    "generator {name:?} of the user's experiment variant is not loaded here; list it in onnx.experiment_generators"
                ))
            })?;
        Ok(Self { models, ..*self })
    }

    /// A feed image: the blend is the slot's, fixed when the feed planned it; influencers
    /// that lost their style or consent since are refused (`no_style`).
    pub async fn generate_for_feed(
        &self,
        request: GenerateRequest,
        blend: Blend,
        origin: FeedOrigin,
    ) -> Result<Generated, GenerateError> {
        let started = Instant::now();
        self.check(&request)?;
        let mut times = StageTimes::default();
        let codes = times.time(Stage::Styles, self.usable_codes()).await?;
        if let Some(missing) = blend.weights.iter().find(|w| !codes.contains_key(&w.influencer)) {
            return Err(GenerateError::StyleWithdrawn(missing.influencer.clone()));
        }
        self.produce(request, blend, &codes, Served::Feed(origin), Timer { started, times })
            .await
    }

    async fn usable_codes(&self) -> Result<BTreeMap<String, Vec<f32>>, GenerateError> {
        let styles = styles::usable_styles(self.pool, &self.models.encoder.version).await?;
        Ok(styles.into_iter().map(|s| (s.influencer, s.style_code)).collect())
    }

    async fn produce(
        &self,
        request: GenerateRequest,
        blend: Blend,
        codes: &BTreeMap<String, Vec<f32>>,
        served: Served,
        timer: Timer,
    ) -> Result<Generated, GenerateError> {
        let Timer { started, mut times } = timer;
        let model_version = self.models.version();
        // A direct generation is a served list of one image (its id the generation's); a
        // feed's images are served with their page.
        let (assignment, origin) = match served {
            Served::Direct(assignment) => (assignment, None),
            Served::Feed(origin) => (None, Some(origin)),
        };
        let looked_up = Instant::now();
        let input_sha256 = input_sha256(&request);
        let key = cache_key(&blend, &request, &model_version);
        let cached = self.cache.get(&key).await;
        times.add(Stage::Cache, looked_up.elapsed());
        // Every response is its own generation: the cache keeps the unmarked pixels, and the
        // id made here goes into this response's watermark and XMP, hit or miss.
        let id = Uuid::new_v4();
        let mark = Mark {
            generation_id: id,
            model_version: model_version.clone(),
        };
        let cached = match cached {
            Some(entry) => times.time(Stage::Cache, pixels_from_cache(entry)).await,
            None => None,
        };
        let cache_hit = cached.is_some();
        let pixels = match cached {
            Some(pixels) => pixels,
            None => Arc::new(self.render(&request, &blend, codes, &mut times).await?),
        };
        let image = times
            .time(Stage::Encode, encode(Arc::clone(&pixels), request.format, mark))
            .await?;
        metrics::counter!("stylecast_generation_cache_total", "result" => if cache_hit { "hit" } else { "miss" })
            .increment(1);
        let weights: serde_json::Value = blend
            .weights
            .iter()
            .map(|w| (w.influencer.clone(), serde_json::json!(w.weight)))
            .collect();
        let recording = Instant::now();
        let cache_write = async {
            if !cache_hit {
                if let Some(entry) = cache_entry(pixels).await {
                    let ttl = Duration::from_secs(self.settings.cache_ttl_secs);
                    self.cache.set(&key, entry, ttl).await;
                }
            }
        };
        // The cache entry goes out while the hashes the record needs are made.
        let record = async {
            let (input_sha256, output_sha256) = tokio::join!(input_sha256, sha256_off_worker(image.clone()));
            let hashed = |hash: Result<String, tokio::task::JoinError>| hash.map_err(GenerateError::Task);
            let (input_sha256, output_sha256) = (hashed(input_sha256)?, hashed(output_sha256)?);
            let generation = GenerationRecord {
                id,
                user_external_id: &request.user,
                blend: &weights,
                blend_source: blend.source.as_str(),
                strength: request.strength,
                size: request.size as i32,
                format: request.format.content_type(),
                model_version: &model_version,
                provider: self.models.generator.provider,
                input_sha256: &input_sha256,
                output_sha256: &output_sha256,
                latency_ms: started.elapsed().as_secs_f64() * 1000.0,
                cache_hit,
                cache_key: &key,
                origin: origin.as_ref(),
            };
            styles::record_generation(self.pool, &generation).await?;
            Ok::<String, GenerateError>(output_sha256)
        };
        let ((), recorded) = tokio::join!(cache_write, record);
        let output_sha256 = recorded?;
        let served = origin.is_none().then(|| {
            let tag = ServedTag::with_id(id, assignment.as_ref());
            self.recommender.impressions().record(ServedList {
                tag: tag.clone(),
                surface: Surface::Generation,
                user: request.user.clone(),
                influencers: blend.weights.iter().map(|w| Some(w.influencer.clone())).collect(),
                image_ids: vec![Some(output_sha256)],
                model_version: blend.model_version,
                served_at: chrono::Utc::now(),
            });
            tag
        });
        times.add(Stage::Record, recording.elapsed());
        times.add(Stage::Total, started.elapsed());
        times.record_metrics();
        metrics::histogram!("stylecast_generation_seconds").record(started.elapsed().as_secs_f64());
        Ok(Generated {
            id,
            image,
            format: request.format,
            blend,
            model_version,
            provider: self.models.generator.provider,
            cache_hit,
            times,
            served,
        })
    }

    fn check(&self, request: &GenerateRequest) -> Result<(), GenerateError> {
        if !(0.0..=1.0).contains(&request.strength) {
            return Err(GenerateError::InvalidStrength(request.strength));
        }
        if !(32..=self.settings.max_size).contains(&request.size) {
            return Err(GenerateError::InvalidSize {
                size: request.size,
                max: self.settings.max_size,
            });
        }
        Ok(())
    }

    async fn blend(
        &self,
        request: &GenerateRequest,
        codes: &BTreeMap<String, Vec<f32>>,
    ) -> Result<Blend, GenerateError> {
        let no_style = |id: &str| GenerateError::NoStyle(id.to_string());
        match &request.choice {
            StyleChoice::Influencer(id) => {
                codes.get(id).ok_or_else(|| no_style(id))?;
                Ok(Blend {
                    source: BlendSource::Influencer,
                    model_version: None,
                    weights: vec![Weighted {
                        influencer: id.clone(),
                        weight: 1.0,
                        score: 1.0,
                    }],
                })
            }
            StyleChoice::Mix(parts) => {
                let total: f64 = parts.iter().map(|p| p.1).sum();
                let mut weights = Vec::new();
                for (id, weight) in parts {
                    codes.get(id).ok_or_else(|| no_style(id))?;
                    weights.push(Weighted {
                        influencer: id.clone(),
                        weight: weight / total,
                        score: *weight,
                    });
                }
                Ok(Blend {
                    source: BlendSource::Mix,
                    model_version: None,
                    weights,
                })
            }
            StyleChoice::Interests => {
                if codes.is_empty() {
                    return Err(GenerateError::NoStyles);
                }
                let styled: Vec<String> = codes.keys().cloned().collect();
                Ok(blend::interests(
                    self.pool,
                    self.recommender,
                    &styled,
                    &request.user,
                    self.settings.interests_k,
                    self.settings.interests_temperature,
                )
                .await?)
            }
        }
    }

    /// The blend of influencer codes, rendered by `render_pixels`.
    async fn render(
        &self,
        request: &GenerateRequest,
        blend: &Blend,
        codes: &BTreeMap<String, Vec<f32>>,
        times: &mut StageTimes,
    ) -> Result<RgbImage, GenerateError> {
        let mut target = vec![0.0f32; self.models.style_dim];
        for w in &blend.weights {
            if let Some(code) = codes.get(&w.influencer) {
                for (t, c) in target.iter_mut().zip(code) {
                    *t += w.weight as f32 * c;
                }
            }
        }
        let photo = Photo {
            bytes: request.photo.clone(),
            limits: self.limits,
            size: request.size,
        };
        let style = Styling {
            target,
            strength: request.strength,
        };
        render_pixels(self.models, photo, style, times).await
    }
}

/// When a request started, and its stage times so far.
struct Timer {
    started: Instant,
    times: StageTimes,
}

/// What to paint with: the target style code, and how far to go from the photo's own.
pub struct Styling {
    pub target: Vec<f32>,
    pub strength: f32,
}

/// An upload and what to make of it: its limits and the output's longest side.
pub struct Photo {
    pub bytes: Bytes,
    pub limits: MediaLimits,
    pub size: u32,
}

/// The photo restyled toward `target` (a style code) and made into a marked file: decode,
/// fit, generator, watermark, encode. No database: the benchmarks time it alone.
pub async fn render(
    models: &Models,
    photo: Photo,
    style: Styling,
    format: OutputFormat,
    mark: Mark,
    times: &mut StageTimes,
) -> Result<Bytes, GenerateError> {
    let pixels = render_pixels(models, photo, style, times).await?;
    times.time(Stage::Encode, encode(Arc::new(pixels), format, mark)).await
}

/// The photo restyled toward `target`, unmarked: decode, fit, generator. Strength blends
/// output with input pixels, so strength 0 returns the photo itself; for Magenta the style
/// code is also interpolated from the photo's own code (Ghiasi et al. 2017).
pub async fn render_pixels(
    models: &Models,
    photo: Photo,
    style: Styling,
    times: &mut StageTimes,
) -> Result<RgbImage, GenerateError> {
    let Photo { bytes, limits, size } = photo;
    let multiple = models.hw_multiple();
    let decoding = tokio::task::spawn_blocking(move || {
        media::decode_for_size(&bytes, &limits, size).map(|i| media::fit(&i, size, multiple))
    });
    let content: RgbImage = times.time(Stage::Decode, decoding).await??;
    let Styling { target, strength: s } = style;
    if s == 0.0 {
        return Ok(content);
    }
    // The photo's own pixels only matter below full strength, and its own code only for a
    // model whose strength moves the code (Magenta).
    let (code, content_tensor) = if s < 1.0 {
        let code = if models.strength_moves_code() {
            let own = times.time(Stage::Encoder, photo_code(models, &content)).await?;
            own.iter().zip(&target).map(|(o, t)| (1.0 - s) * o + s * t).collect()
        } else {
            target
        };
        (code, Some(to_tensor(&content)))
    } else {
        (target, None)
    };
    let output = models.stylize(content, code, times).await?;
    let mixing = tokio::task::spawn_blocking(move || {
        let mixed = match content_tensor {
            Some(content) => &output * s + &content * (1.0 - s),
            None => output,
        };
        from_tensor(&mixed)
    });
    Ok(times.time(Stage::Encode, mixing).await?)
}

/// Watermarks and encodes the pixels on the blocking pool.
async fn encode(pixels: Arc<RgbImage>, format: OutputFormat, mark: Mark) -> Result<Bytes, GenerateError> {
    let bytes = tokio::task::spawn_blocking(move || provenance::encode_marked(&pixels, format, &mark))
        .await?
        .map_err(GenerateError::Mark)?;
    Ok(Bytes::from(bytes))
}

/// A cache entry: the unmarked pixels, losslessly (QOI: a 256² image in well under a
/// millisecond each way, about half the raw size on photos). None if encoding fails: the
/// response goes out uncached.
async fn cache_entry(pixels: Arc<RgbImage>) -> Option<Bytes> {
    let encoding = tokio::task::spawn_blocking(move || {
        let mut out = std::io::Cursor::new(Vec::new());
        pixels
            .write_to(&mut out, image::ImageFormat::Qoi)
            .map(|()| out.into_inner())
    });
    match encoding.await {
        Ok(Ok(bytes)) => Some(Bytes::from(bytes)),
        Ok(Err(error)) => {
            tracing::warn!(%error, "encoding a cache entry failed; served uncached");
            None
        }
        Err(_) => None,
    }
}

/// The pixels of a cache entry; None (a miss) for an entry that does not decode.
async fn pixels_from_cache(entry: Bytes) -> Option<Arc<RgbImage>> {
    let decoding = tokio::task::spawn_blocking(move || {
        image::load_from_memory_with_format(&entry, image::ImageFormat::Qoi).map(|i| i.to_rgb8())
    });
    match decoding.await {
        Ok(Ok(pixels)) => Some(Arc::new(pixels)),
        Ok(Err(error)) => {
            tracing::warn!(%error, "a cache entry did not decode; rendering again");
            None
        }
        Err(_) => None,
    }
}

/// The photo's SHA-256 for the generation record, hashed on the blocking pool while the
/// request goes on: on a CPU without SHA extensions it takes 2–3 ms for a 440 kB upload, as
/// long as decoding it (BENCHMARKS.md). A feed's stored photo comes with its hash.
fn input_sha256(request: &GenerateRequest) -> tokio::task::JoinHandle<String> {
    match &request.photo_sha256 {
        Some(known) => {
            let known = known.clone();
            tokio::spawn(async move { known })
        }
        None => sha256_off_worker(request.photo.clone()),
    }
}

fn sha256_off_worker(bytes: Bytes) -> tokio::task::JoinHandle<String> {
    tokio::task::spawn_blocking(move || hex::encode(Sha256::digest(&bytes)))
}

/// Identical requests (photo, blend, strength, size, models) share one key, whatever their
/// output format: the entry holds pixels, and each response encodes and marks its own. BLAKE3,
/// a cryptographic hash (a forged collision would hand one user's image to another), 25×
/// faster than SHA-256 here: the key is on every request's path, the SHA-256 is not.
fn cache_key(blend: &Blend, request: &GenerateRequest, model_version: &str) -> String {
    let weights: Vec<String> = blend
        .weights
        .iter()
        .map(|w| format!("{}={:.6}", w.influencer, w.weight))
        .collect();
    let photo = blake3::hash(&request.photo);
    let material = format!(
        "{photo}|{}|{}|{}|{model_version}",
        weights.join(","),
        request.strength,
        request.size,
    );
    format!("pixels:{}", blake3::hash(material.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixes_parse_and_reject_nonsense() {
        assert_eq!(
            StyleChoice::parse_mix("a=0.7, b=0.3").ok(),
            Some(StyleChoice::Mix(vec![("a".into(), 0.7), ("b".into(), 0.3)]))
        );
        for bad in ["", "a", "a=x", "a=-1", "a=0"] {
            assert!(StyleChoice::parse_mix(bad).is_err(), "{bad}");
        }
    }
}
