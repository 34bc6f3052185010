//! Provenance of generated images: every image the generator makes says it is AI-generated in
//! its metadata (XMP, IPTC digital source type `trainedAlgorithmicMedia`) and carries its
//! generation id in an invisible watermark, which survives what strips metadata (re-encoding,
//! resizing). `verify` reads the watermark back and finds the generation record.

pub mod robustness;
pub mod watermark;
pub mod xmp;

use image::RgbImage;
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::media::{self, MediaError, MediaLimits, OutputFormat};
use crate::store::styles::{self, StoredGeneration};

pub use watermark::{Detection, TooSmall, MIN_SIDE};

/// What a generated image is marked with.
#[derive(Debug, Clone)]
pub struct Mark {
    pub generation_id: Uuid,
    pub model_version: String,
}

#[derive(Debug, thiserror::Error)]
pub enum MarkError {
    #[error("encoding the image: {0}")]
    Encode(#[from] image::ImageError),
    #[error("writing the XMP packet: {0}")]
    Xmp(#[from] xmp::XmpError),
}

/// The pixels with the generation id watermarked in. Images with a side under `MIN_SIDE`
/// are too small to carry it and come back unchanged (their XMP still marks them).
pub fn stamp(image: &RgbImage, generation_id: Uuid) -> RgbImage {
    match watermark::embed(image, generation_id) {
        Ok(marked) => marked,
        Err(too_small) => {
            tracing::debug!(%too_small, "image left without a watermark");
            image.clone()
        }
    }
}

/// Watermarks, encodes and writes the XMP packet: the one call that turns a generator's
/// pixels into a marked file. CPU-bound: call it off the async workers.
pub fn encode_marked(image: &RgbImage, format: OutputFormat, mark: &Mark) -> Result<Vec<u8>, MarkError> {
    let stamped = stamp(image, mark.generation_id);
    let bytes = media::encode(&stamped, format)?;
    let packet = xmp::packet(mark.generation_id, &mark.model_version);
    Ok(xmp::insert(bytes, format, stamped.dimensions(), &packet)?)
}

/// Why an upload could not be checked. The HTTP status and code of each case are decided
/// once, in `crate::error`.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Media(#[from] MediaError),
    #[error(transparent)]
    TooSmall(#[from] TooSmall),
    #[error(transparent)]
    Task(#[from] tokio::task::JoinError),
    #[error("database error")]
    Database(#[from] sqlx::Error),
}

/// The answer of `POST /v1/provenance/verify`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Verdict {
    /// Whether the watermark names a generation on record.
    pub found: bool,
    /// Why not, when not found: `no_watermark` or `unknown_generation`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<&'static str>,
    pub generation_id: Option<Uuid>,
    /// Mean agreement of the watermark's copies of each bit (1 = untouched).
    pub confidence: Option<f32>,
    pub generation: Option<StoredGeneration>,
    /// The file's XMP provenance properties, if it has a packet (metadata is easy to strip
    /// or forge: only the watermark decides `found`).
    pub xmp: Option<xmp::XmpFields>,
}

/// Reads the watermark of an uploaded image and looks its generation up.
pub async fn verify(pool: &PgPool, limits: MediaLimits, upload: bytes::Bytes) -> Result<Verdict, VerifyError> {
    let (detection, xmp) = tokio::task::spawn_blocking(move || -> Result<_, VerifyError> {
        let image = media::decode(&upload, &limits)?;
        let detection = watermark::detect(&image)?;
        Ok((detection, xmp::read(&upload).map(|p| xmp::fields(&p))))
    })
    .await??;
    let Some(detection) = detection else {
        return Ok(Verdict {
            found: false,
            code: Some("no_watermark"),
            generation_id: None,
            confidence: None,
            generation: None,
            xmp,
        });
    };
    let generation = styles::generation(pool, detection.id).await?;
    Ok(Verdict {
        found: generation.is_some(),
        code: generation.is_none().then_some("unknown_generation"),
        generation_id: Some(detection.id),
        confidence: Some(detection.confidence),
        generation,
        xmp,
    })
}
