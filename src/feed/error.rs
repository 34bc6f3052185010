//! What can go wrong reading a feed, storing a photo or rendering a slot. The HTTP status and
//! code of each case are decided once, in `crate::error`.

use crate::generate::GenerateError;
use crate::media::MediaError;
use crate::store::images::ImageStoreError;

#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    #[error("cursor {0:?} is not one this API gave")]
    InvalidCursor(String),
    /// What is missing, as the caller should read it (`photo of user "ana"`).
    #[error("{0} not found")]
    NotFound(String),
    #[error("no influencer has a usable style yet; upload reference photos first")]
    NoStyles,
    #[error(transparent)]
    Media(#[from] MediaError),
    #[error(transparent)]
    Generate(#[from] GenerateError),
    // The message carries the cause: the HTTP edge logs it as one line.
    #[error("encoding the photo: {0}")]
    EncodePhoto(image::ImageError),
    #[error(transparent)]
    Images(#[from] ImageStoreError),
    #[error(transparent)]
    Task(#[from] tokio::task::JoinError),
    #[error("database error")]
    Database(#[from] sqlx::Error),
}
