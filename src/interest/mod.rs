//! Interests: what a user's engagement says they care about.

pub mod affinity;
pub mod als;
pub mod blend;
pub mod embed;
pub mod exchange;

pub use affinity::{AffinityModel, AffinitySettings};
pub use embed::EmbeddingSettings;
