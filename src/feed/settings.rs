//! `[feed]`: feed pages, rendering, the job queue, stored images and their retention.

use serde::Deserialize;

use crate::media::OutputFormat;

#[derive(Debug, Clone, Deserialize)]
pub struct FeedSettings {
    pub default_k: usize,
    pub max_k: usize,
    /// Slots rendered ahead when a user's photo, interests or recommendations change.
    pub prefetch_k: usize,
    pub size: u32,
    pub format: OutputFormat,
    pub strength: f32,
    /// A pending slot is queued again after this long (covers jobs lost with an in-process queue).
    pub requeue_after_secs: f64,
    /// Renders tried per spec before the slot is reported `failed`.
    pub max_attempts: i32,
    /// Whether `serve` also runs a worker.
    pub serve_worker: bool,
    /// Jobs a worker process renders at once.
    pub worker_concurrency: usize,
    /// A job claimed but not acknowledged for this long is taken over by another worker.
    pub reclaim_idle_ms: u64,
    /// Redis Stream (under the Redis key prefix) and its consumer group.
    pub stream: String,
    pub group: String,
    /// `postgres` or `filesystem`.
    pub image_backend: String,
    pub image_dir: std::path::PathBuf,
    pub max_image_bytes: usize,
    /// Newest images kept per user, and the oldest age kept.
    pub retention_per_user: i64,
    pub retention_max_age_days: f64,
    pub retention_interval_secs: u64,
    /// Longest side of stored reference photos.
    pub photo_max_side: u32,
}
