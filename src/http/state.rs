//! What every handler can reach. Built once by `startup`, read only here in `http/`: the
//! domain modules take their own parts of it (`Feeds`, `Generation`, a pool), never this.

use std::sync::Arc;

use sqlx::PgPool;

use super::rate_limit::KeyRateLimiter;
use crate::cache::Cache;
use crate::feed::Feeds;
use crate::generate::{Generation, OnnxSettings};
use crate::ingest::Ingestor;
use crate::interest::AffinityModel;
use crate::keys::BootstrapKey;
use crate::media::MediaLimits;
use crate::recommend::Recommender;

pub struct AppState {
    pub pool: PgPool,
    pub ingestor: Ingestor,
    pub model: AffinityModel,
    pub cache: Arc<Cache>,
    pub recommender: Arc<Recommender>,
    pub bootstrap_key: Option<BootstrapKey>,
    pub rate_limiter: Option<KeyRateLimiter>,
    pub onnx: OnnxSettings,
    pub media: MediaLimits,
    /// The models, the pipeline's stores and the generation settings.
    pub generation: Arc<Generation>,
    pub feeds: Arc<Feeds>,
    pub erasure: crate::erasure::Erasure,
    pub experiments: Arc<crate::experiment::Experiments>,
}
