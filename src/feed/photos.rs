//! Users' reference photos: validated like any upload, normalised (orientation applied,
//! longest side capped, re-encoded as PNG) and stored once; replacing or deleting one
//! removes every image made from the old one.

use bytes::Bytes;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::error::FeedError;
use super::queue::Job;
use super::Feeds;
use crate::ingest::event::{ImageId, UserRef};
use crate::media::{self, OutputFormat};
use crate::store::feeds as store_feeds;
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

pub async fn put(feeds: &Feeds, user: &UserRef, upload: Bytes) -> Result<StoredPhoto, FeedError> {
    let limits = feeds.limits;
    let max_side = feeds.settings.photo_max_side;
    let (png, width, height) = tokio::task::spawn_blocking(move || -> Result<_, FeedError> {
        let image = media::decode(&upload, &limits)?;
        let image = if image.width().max(image.height()) > max_side {
            media::fit(&image, max_side, 1)
        } else {
            image
        };
        let png = media::encode(&image, OutputFormat::Png).map_err(FeedError::EncodePhoto)?;
        Ok((png, image.width(), image.height()))
    })
    .await??;
    let sha256 = hex::encode(Sha256::digest(&png));
    let (user_id, replaced) = store_feeds::put_photo(&feeds.pool, user.as_str(), &sha256, width, height, &png).await?;
    let images_removed = if replaced {
        remove_images(feeds, user_id).await?
    } else {
        0
    };
    feeds.queue.push(vec![Job::Refresh { user: user.to_string() }]).await;
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
pub async fn delete(feeds: &Feeds, user: &UserRef) -> Result<DeletedPhoto, FeedError> {
    let meta = store_feeds::photo_meta(&feeds.pool, user.as_str())
        .await?
        .ok_or_else(|| FeedError::NotFound(format!("photo of user {user:?}")))?;
    store_feeds::delete_photo(&feeds.pool, meta.user_id).await?;
    let images_removed = remove_images(feeds, meta.user_id).await?;
    Ok(DeletedPhoto {
        user: user.to_string(),
        images_removed,
    })
}

async fn remove_images(feeds: &Feeds, user_id: i64) -> Result<usize, FeedError> {
    Ok(feeds.images.delete_for_user(user_id).await?)
}

/// A stored image by id.
pub async fn image(feeds: &Feeds, id: &ImageId) -> Result<StoredImage, FeedError> {
    feeds
        .images
        .get(id)
        .await?
        .ok_or_else(|| FeedError::NotFound(format!("image {id}")))
}
