//! Operator tools behind the CLI: synthetic load (`seed`), the demo data set (`demo`) and
//! the style evaluation (`eval-styles`). Each goes through the same service functions as
//! the HTTP API (the ingest path, the style service, the embedding build), so what they
//! produce is what the service would have produced.

pub mod demo;
pub mod eval_styles;
pub mod seed;

use std::sync::Arc;

use crate::cache::Cache;
use crate::config::Settings;
use crate::ingest::Ingestor;
use crate::interest::AffinityModel;
use crate::store::{self, partitions::Partitions};

/// A migrated pool and the same `Ingestor` the HTTP service builds.
pub async fn open_ingest(settings: &Settings) -> anyhow::Result<(sqlx::PgPool, Ingestor)> {
    store::create_database_if_missing(&settings.database).await?;
    let pool = store::pool(&settings.database)?;
    store::migrate(&pool).await?;
    let model = AffinityModel::new(&settings.affinity);
    // Same as start-up: changed weights or half-life rebuild affinity before new events land.
    store::affinity::sync_params(&pool, &model).await?;
    let partitions = Arc::new(Partitions::default());
    partitions
        .ensure_ahead(&pool, settings.database.partition_months_ahead)
        .await?;
    let cache = Arc::new(Cache::new(&settings.redis, store::deployment_id(&pool).await?)?);
    let ingestor = Ingestor::new(pool.clone(), model, partitions, cache, settings.ingest.clone());
    Ok((pool, ingestor))
}
