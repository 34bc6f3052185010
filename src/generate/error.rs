//! What can go wrong making an image. The HTTP status and code of each case are decided once,
//! in `crate::error`; the feed worker asks `is_permanent` whether a retry could help.

use crate::generate::engine::EngineError;
use crate::media::MediaError;
use crate::provenance::MarkError;

#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    /// An explicit mix that does not parse (the message says why).
    #[error("{0}")]
    InvalidMix(String),
    #[error("strength {0} is outside [0, 1]")]
    InvalidStrength(f32),
    #[error("size {size} is outside [32, {max}]")]
    InvalidSize { size: u32, max: u32 },
    /// A requested influencer without a usable style.
    #[error("influencer {0:?} has no usable style (no photos, no consent, or made by another encoder)")]
    NoStyle(String),
    /// An influencer of a planned feed slot whose style or consent went away since.
    #[error("influencer {0:?} has no usable style any more")]
    StyleWithdrawn(String),
    #[error("no influencer has a usable style yet; upload reference photos first")]
    NoStyles,
    /// The runtime or a model file is missing; the text says what and how to fix it.
    #[error("generation is unavailable: {0}")]
    ModelsUnavailable(String),
    #[error(transparent)]
    Media(#[from] MediaError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    // The message carries the cause: the HTTP edge logs it as one line.
    #[error("making the output file: {0}")]
    Mark(MarkError),
    #[error("{0}")]
    Task(#[from] tokio::task::JoinError),
    #[error("database error")]
    Database(#[from] sqlx::Error),
}

impl GenerateError {
    /// Whether the same request can never succeed (bad input, a style gone, an unreadable
    /// photo), unlike an outage or overload that a retry may get past.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            Self::InvalidMix(_)
                | Self::InvalidStrength(_)
                | Self::InvalidSize { .. }
                | Self::NoStyle(_)
                | Self::StyleWithdrawn(_)
                | Self::NoStyles
                | Self::Media(_)
        )
    }
}
