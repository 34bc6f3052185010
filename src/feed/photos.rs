//! Users' reference photos: validated like any upload, normalised (orientation applied,
//! longest side capped, re-encoded as PNG) and stored once; replacing or deleting one
//! removes every image made from the old one.

use bytes::Bytes;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::queue::Job;
use crate::error::AppError;
use crate::ingest::event::{ImageId, UserRef};
use crate::media::{self, OutputFormat};
use crate::startup::AppState;
use crate::store::feeds;
use crate::store::images::StoredImage;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StoredPhoto {
    pub user: String,
    pub sha256: String,
    pub width: u32,
    pub height: u32,
    /// Whether an earlier photo (and the images made from it) was replaced.
    pub replaced: bool,
    /// Images made from the earlier photo that were removed.
    pub images_removed: usize,
}

pub async fn put(state: &AppState, user: &UserRef, upload: Bytes) -> Result<StoredPhoto, AppError> {
    let limits = state.media;
    let max_side = state.feed.photo_max_side;
    let (png, width, height) = tokio::task::spawn_blocking(move || -> Result<_, AppError> {
        let image = media::decode(&upload, &limits)?;
        let image = if image.width().max(image.height()) > max_side {
            media::fit(&image, max_side, 1)
        } else {
            image
        };
        let png = media::encode(&image, OutputFormat::Png)
            .map_err(|e| AppError::Internal(format!("encoding the photo: {e}")))?;
        Ok((png, image.width(), image.height()))
    })
    .await
    .map_err(|e| AppError::Internal(e.to_string()))??;
    let sha256 = hex::encode(Sha256::digest(&png));
    let (user_id, replaced) = feeds::put_photo(&state.pool, user.as_str(), &sha256, width, height, &png).await?;
    let images_removed = if replaced {
        remove_images(state, user_id).await?
    } else {
        0
    };
    state
        .feed_queue
        .push(vec![Job::Refresh { user: user.to_string() }])
        .await;
    Ok(StoredPhoto {
        user: user.to_string(),
        sha256,
        width,
        height,
        replaced,
        images_removed,
    })
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeletedPhoto {
    pub user: String,
    pub images_removed: usize,
}

/// Deletes the photo, its feed items and every stored image made from it.
pub async fn delete(state: &AppState, user: &UserRef) -> Result<DeletedPhoto, AppError> {
    let meta = feeds::photo_meta(&state.pool, user.as_str())
        .await?
        .ok_or_else(|| AppError::NotFound(format!("photo of user {user:?}")))?;
    feeds::delete_photo(&state.pool, meta.user_id).await?;
    let images_removed = remove_images(state, meta.user_id).await?;
    Ok(DeletedPhoto {
        user: user.to_string(),
        images_removed,
    })
}

async fn remove_images(state: &AppState, user_id: i64) -> Result<usize, AppError> {
    state
        .images
        .delete_for_user(user_id)
        .await
        .map_err(|e| AppError::Internal(e.to_string()))
}

/// A stored image by id.
pub async fn image(state: &AppState, id: &ImageId) -> Result<StoredImage, AppError> {
    state
        .images
        .get(id)
        .await
        .map_err(|e| AppError::Internal(e.to_string()))?
        .ok_or_else(|| AppError::NotFound(format!("image {id}")))
}
