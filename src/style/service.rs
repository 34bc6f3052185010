//! Influencer styles: reference photos in, mean style code and Gram summary out.

use std::sync::Arc;

use image::RgbImage;
use sha2::{Digest, Sha256};
use sqlx::PgPool;

use super::extract::photo_style;
use super::gram;
use crate::generate::engine::{off_worker, EngineError};
use crate::generate::models::{Models, STYLE_SIDE};
use crate::media::{self, MediaError, MediaLimits};
use crate::store::styles::{self, NewPhoto, StoredStyle};

#[derive(Debug, thiserror::Error)]
pub enum StyleError {
    #[error(transparent)]
    Media(#[from] MediaError),
    #[error("influencer {0:?} not found; create it with PUT /v1/influencers/{{id}} first")]
    UnknownInfluencer(String),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error("image task failed: {0}")]
    Task(String),
}

/// Decodes an upload off the async workers.
pub async fn decode(bytes: bytes::Bytes, limits: MediaLimits) -> Result<RgbImage, StyleError> {
    tokio::task::spawn_blocking(move || media::decode(&bytes, &limits))
        .await
        .map_err(|e| StyleError::Task(e.to_string()))?
        .map_err(StyleError::from)
}

/// Adds one reference photo (its features computed once) and updates the influencer's style,
/// by the default encoder and by those of the experiment generators (`alternates`).
pub async fn add_photo(
    pool: &PgPool,
    models: &Models,
    alternates: &[Arc<Models>],
    limits: MediaLimits,
    influencer: &str,
    upload: bytes::Bytes,
) -> Result<StoredStyle, StyleError> {
    let (influencer_id, _) = styles::influencer_id(pool, influencer)
        .await?
        .ok_or_else(|| StyleError::UnknownInfluencer(influencer.to_string()))?;
    let image = decode(upload.clone(), limits).await?;
    let (width, height) = image.dimensions();
    let for_alternates = (!alternates.is_empty()).then(|| image.clone());
    let style = photo_style(models, image).await?;
    let sha256 = hex::encode(Sha256::digest(&upload));
    styles::insert_photo(
        pool,
        &NewPhoto {
            influencer_id,
            sha256: &sha256,
            width: width as i32,
            height: height as i32,
            image: &upload,
            style_code: &style.code,
            gram_summary: &summary_json(&style.grams),
            model_version: &models.encoder.version,
        },
    )
    .await
    .map_err(|e| erased_meanwhile(e.into(), influencer))?;
    aggregate(pool, influencer_id, &models.encoder.version)
        .await
        .map_err(|e| erased_meanwhile(e, influencer))?;
    if let Some(image) = for_alternates {
        let photo_id = styles::photo_id(pool, influencer_id, &sha256)
            .await?
            .ok_or_else(|| StyleError::UnknownInfluencer(influencer.to_string()))?;
        for alternate in alternates {
            code_photo(pool, alternate, influencer_id, photo_id, &image)
                .await
                .map_err(|e| erased_meanwhile(e, influencer))?;
        }
    }
    styles::style(pool, influencer)
        .await?
        .ok_or_else(|| StyleError::UnknownInfluencer(influencer.to_string()))
}

/// The influencer may be erased (DELETE /v1/influencers/{id}) while their photo is being
/// encoded: the insert then breaks the foreign key, and the caller gets the same 404 as if
/// they had come a moment later.
fn erased_meanwhile(error: StyleError, influencer: &str) -> StyleError {
    match error {
        StyleError::Database(sqlx::Error::Database(db)) if db.is_foreign_key_violation() => {
            StyleError::UnknownInfluencer(influencer.to_string())
        }
        other => other,
    }
}

fn summary_json(grams: &[ndarray::Array2<f32>]) -> serde_json::Value {
    serde_json::to_value(gram::summarize(grams)).unwrap_or_default()
}

/// The influencer's style from their photos' stored codes and summaries: mean code, and
/// the per-layer mean of each summary figure.
async fn aggregate(pool: &PgPool, influencer_id: i64, model_version: &str) -> Result<usize, StyleError> {
    let photos = styles::photo_styles(pool, influencer_id, model_version).await?;
    if photos.is_empty() {
        return Ok(0);
    }
    let n = photos.len() as f32;
    let mean_code = mean_code(photos.iter().map(|(code, _)| code.as_slice()));
    let summaries: Vec<Vec<gram::GramSummary>> = photos
        .iter()
        .map(|(_, summary)| serde_json::from_value(summary.clone()).unwrap_or_default())
        .collect();
    let layers = summaries[0].len();
    let mean_summary: Vec<gram::GramSummary> = (0..layers)
        .map(|layer| {
            let of = |f: fn(&gram::GramSummary) -> f32| {
                summaries.iter().filter_map(|s| s.get(layer)).map(f).sum::<f32>() / n
            };
            gram::GramSummary {
                channels: summaries[0][layer].channels,
                mean_energy: of(|s| s.mean_energy),
                norm: of(|s| s.norm),
                off_diagonal_share: of(|s| s.off_diagonal_share),
            }
        })
        .collect();
    let summary = serde_json::to_value(mean_summary).unwrap_or_default();
    styles::save_style(
        pool,
        influencer_id,
        &mean_code,
        photos.len() as i32,
        &summary,
        model_version,
    )
    .await?;
    Ok(photos.len())
}

/// The element-wise mean of equally long codes (empty for none).
fn mean_code<'a>(codes: impl ExactSizeIterator<Item = &'a [f32]>) -> Vec<f32> {
    let n = codes.len() as f32;
    let mut mean: Vec<f32> = Vec::new();
    for code in codes {
        mean.resize(code.len(), 0.0);
        for (m, c) in mean.iter_mut().zip(code) {
            *m += c / n;
        }
    }
    mean
}

/// One photo's code by an experiment generator's encoder, then that influencer's mean code
/// by it. (Its Gram summary is the default encoder's: VGG19 serves every generator.)
async fn code_photo(
    pool: &PgPool,
    models: &Models,
    influencer_id: i64,
    photo_id: i64,
    image: &RgbImage,
) -> Result<(), StyleError> {
    let image = image.clone();
    let square = off_worker(move || media::square(&image, STYLE_SIDE)).await?;
    let code = models.style_code(&square).await?;
    let version = &models.encoder.version;
    styles::save_photo_code(pool, photo_id, version, &code).await?;
    let codes = styles::photo_codes(pool, influencer_id, version).await?;
    let mean = mean_code(codes.iter().map(Vec::as_slice));
    styles::save_style_code(pool, influencer_id, version, &mean, codes.len() as i32).await?;
    Ok(())
}

/// Codes by an experiment generator's encoder for every stored photo that has none: photos
/// added before the generator was loaded. A code depends only on the photo and the encoder
/// version, so this is also that encoder's rebuild. Returns the photos coded.
pub async fn encode_missing(pool: &PgPool, models: &Models) -> Result<usize, StyleError> {
    let missing = styles::photos_without_code(pool, &models.encoder.version).await?;
    let mut coded = 0;
    for (photo_id, influencer_id) in missing {
        // Erased since the listing: nothing to code.
        let Some(bytes) = styles::photo_image(pool, photo_id).await? else {
            continue;
        };
        let image = stored_photo(bytes).await?;
        match code_photo(pool, models, influencer_id, photo_id, &image).await {
            Ok(()) => coded += 1,
            Err(StyleError::Database(sqlx::Error::Database(db))) if db.is_foreign_key_violation() => {}
            Err(other) => return Err(other),
        }
    }
    Ok(coded)
}

/// Features of a photo already accepted (and so within the limits at upload time).
async fn stored_photo_style(models: &Models, bytes: Vec<u8>) -> Result<super::extract::PhotoStyle, StyleError> {
    Ok(photo_style(models, stored_photo(bytes).await?).await?)
}

/// A photo already accepted (and so within the limits at upload time), decoded.
async fn stored_photo(bytes: Vec<u8>) -> Result<RgbImage, StyleError> {
    let limits = MediaLimits {
        max_bytes: usize::MAX,
        ..MediaLimits::default()
    };
    decode(bytes.into(), limits).await
}

/// Recomputes every photo's features with the current models, then the influencer's style.
pub async fn rebuild_influencer(pool: &PgPool, models: &Models, influencer_id: i64) -> Result<usize, StyleError> {
    for (photo_id, _, bytes) in styles::photos(pool, Some(influencer_id)).await? {
        let style = stored_photo_style(models, bytes).await?;
        styles::update_photo_style(
            pool,
            photo_id,
            &style.code,
            &summary_json(&style.grams),
            &models.encoder.version,
        )
        .await?;
    }
    aggregate(pool, influencer_id, &models.encoder.version).await
}

/// `stylecast styles rebuild`: every influencer's style with the current models.
pub async fn rebuild_all(
    pool: &PgPool,
    models: &Models,
    mut progress: impl FnMut(usize, usize),
) -> Result<usize, StyleError> {
    let mut influencers: Vec<i64> = styles::photos(pool, None)
        .await?
        .into_iter()
        .map(|(_, i, _)| i)
        .collect();
    influencers.dedup();
    let total = influencers.len();
    for (n, influencer_id) in influencers.into_iter().enumerate() {
        rebuild_influencer(pool, models, influencer_id).await?;
        progress(n + 1, total);
    }
    Ok(total)
}

/// Mean Grams of an influencer's stored photos (the style target for Gram distances).
pub async fn influencer_grams(
    pool: &PgPool,
    models: &Models,
    influencer: &str,
) -> Result<Vec<ndarray::Array2<f32>>, StyleError> {
    let (influencer_id, _) = styles::influencer_id(pool, influencer)
        .await?
        .ok_or_else(|| StyleError::UnknownInfluencer(influencer.to_string()))?;
    let mut sets = Vec::new();
    for (_, _, bytes) in styles::photos(pool, Some(influencer_id)).await? {
        sets.push(stored_photo_style(models, bytes).await?.grams);
    }
    Ok(gram::mean(&sets))
}
