//! Boot: settings → pools → engines → HTTP server; and the handle that stops it.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::{middleware, web, App, HttpServer};
use secrecy::ExposeSecret;
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tracing_actix_web::TracingLogger;

use crate::cache::Cache;
use crate::config::{OnnxSettings, Settings};
use crate::generate::engine::EngineConfig;
use crate::generate::models::{missing, ModelStatus, Models};
use crate::generate::pipeline::{GenerateSettings, Pipeline};
use crate::ingest::Ingestor;
use crate::interest::{embed, AffinityModel};
use crate::keys::BootstrapKey;
use crate::media::MediaLimits;
use crate::recommend::Recommender;
use crate::store::partitions::Partitions;
use crate::{http, store, telemetry};

/// What every handler can reach.
pub struct AppState {
    pub pool: PgPool,
    pub ingestor: Ingestor,
    pub model: AffinityModel,
    pub cache: Arc<Cache>,
    pub recommender: Recommender,
    pub bootstrap_key: Option<BootstrapKey>,
    pub rate_limiter: Option<crate::http::auth::KeyRateLimiter>,
    pub onnx: OnnxSettings,
    /// None when the runtime or a model file is missing (`model_status` says why).
    pub models: Option<Arc<Models>>,
    pub model_status: ModelStatus,
    pub generate: GenerateSettings,
    pub media: MediaLimits,
}

impl AppState {
    pub fn models(&self) -> Result<&Models, crate::error::AppError> {
        self.models.as_deref().ok_or_else(|| {
            crate::error::AppError::ModelsUnavailable(self.model_status.error.clone().unwrap_or_default())
        })
    }

    pub fn pipeline(&self) -> Result<Pipeline<'_>, crate::error::AppError> {
        Ok(Pipeline {
            pool: &self.pool,
            models: self.models()?,
            recommender: &self.recommender,
            cache: &self.cache,
            settings: &self.generate,
            limits: self.media,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error(transparent)]
    Cache(#[from] crate::cache::InvalidRedisUrl),
    #[error("binding {address}")]
    Bind { address: String, source: std::io::Error },
}

pub struct Application {
    port: u16,
    server: Server,
    pool: PgPool,
    maintenance: JoinHandle<()>,
}

impl Application {
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        store::create_database_if_missing(&settings.database).await?;
        let pool = store::pool(&settings.database)?;
        store::migrate(&pool).await?;
        let model = AffinityModel::new(&settings.affinity);
        store::affinity::sync_params(&pool, &model)
            .await
            .map_err(store::StoreError::from)?;
        store::configure_analyst_role(&pool, &settings.analyst).await?;
        let partitions = Arc::new(Partitions::default());
        partitions
            .ensure_ahead(&pool, settings.database.partition_months_ahead)
            .await
            .map_err(store::StoreError::from)?;
        let (models, model_status) = load_models(&settings);
        telemetry::prometheus();

        let cache = Arc::new(Cache::new(&settings.redis)?);
        let state = web::Data::new(AppState {
            pool: pool.clone(),
            ingestor: Ingestor::new(
                pool.clone(),
                model.clone(),
                partitions.clone(),
                cache.clone(),
                settings.ingest.clone(),
            ),
            model,
            recommender: Recommender::new(
                pool.clone(),
                cache.clone(),
                Duration::from_secs(settings.embedding.recommendation_ttl_secs),
            ),
            cache,
            bootstrap_key: settings
                .auth
                .admin_key
                .as_ref()
                .map(|key| BootstrapKey::new(key.expose_secret())),
            rate_limiter: crate::http::auth::KeyRateLimiter::new(
                settings.auth.rate_limit_per_sec,
                settings.auth.rate_limit_burst,
            ),
            onnx: settings.onnx.clone(),
            models,
            model_status,
            generate: settings.generate.clone(),
            media: settings.media,
        });

        let address = format!("{}:{}", settings.server.host, settings.server.port);
        let listener = TcpListener::bind(&address).map_err(|source| StartupError::Bind {
            address: address.clone(),
            source,
        })?;
        let port = listener
            .local_addr()
            .map_err(|source| StartupError::Bind { address, source })?
            .port();
        let server = serve(listener, state, &settings)?;
        let maintenance = tokio::spawn(maintain(pool.clone(), partitions, settings.clone()));
        tracing::info!(port, "stylecast listening");
        Ok(Self {
            port,
            server,
            pool,
            maintenance,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Runs until the server is stopped through its handle, then stops background work.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        self.maintenance.abort();
        self.pool.close().await;
        result
    }
}

fn serve(listener: TcpListener, state: web::Data<AppState>, settings: &Settings) -> Result<Server, StartupError> {
    let mut server = HttpServer::new(move || {
        App::new()
            .wrap(middleware::from_fn(http::telemetry::record_metrics))
            .wrap(TracingLogger::default())
            .app_data(state.clone())
            .configure(http::routes)
            .default_service(web::to(http::no_route))
    })
    .disable_signals()
    .shutdown_timeout(settings.server.shutdown_timeout_secs);
    if settings.server.workers > 0 {
        server = server.workers(settings.server.workers);
    }
    let address = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
    Ok(server
        .listen(listener)
        .map_err(|source| StartupError::Bind { address, source })?
        .run())
}

/// Background upkeep: next months' partitions (so inserts never wait on DDL at month
/// start) and scheduled embedding rebuilds.
async fn maintain(pool: PgPool, partitions: Arc<Partitions>, settings: Settings) {
    let partition_every = Duration::from_secs(6 * 3600);
    let rebuild_every = Duration::from_secs(settings.embedding.rebuild_interval_secs);
    let mut last_partitions = tokio::time::Instant::now();
    let mut last_rebuild = tokio::time::Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(30));
    loop {
        tick.tick().await;
        if last_partitions.elapsed() >= partition_every {
            last_partitions = tokio::time::Instant::now();
            if let Err(err) = partitions
                .ensure_ahead(&pool, settings.database.partition_months_ahead)
                .await
            {
                tracing::warn!(error = %err, "creating partitions ahead failed; will retry");
            }
        }
        if !rebuild_every.is_zero() && last_rebuild.elapsed() >= rebuild_every {
            last_rebuild = tokio::time::Instant::now();
            match embed::rebuild(&pool, &settings.embedding.als, |_| {}).await {
                Ok(report) => tracing::info!(
                    version = report.version,
                    users = report.users,
                    influencers = report.influencers,
                    seconds = report.total_seconds,
                    "embedding model rebuilt"
                ),
                Err(err) => tracing::warn!(error = %err, "scheduled embedding rebuild skipped"),
            }
        }
    }
}

/// The generation models; their absence disables generation, never the service.
pub fn load_models(settings: &Settings) -> (Option<Arc<Models>>, ModelStatus) {
    let generate = &settings.generate;
    let config = EngineConfig {
        sessions: generate.sessions,
        intra_threads: generate.intra_threads,
        max_batch: generate.max_batch,
        max_wait_ms: generate.max_wait_ms,
        queue_capacity: generate.queue_capacity,
    };
    match shared_models(settings, &config) {
        Ok(models) => {
            let status = models.status();
            (Some(models), status)
        }
        Err(error) => {
            tracing::warn!(%error, "generation models unavailable; generation answers 503");
            (None, missing(error))
        }
    }
}

/// Sessions are expensive and ort allows one environment per process: applications built in
/// the same process (tests, benchmarks) share the models loaded for the same folder.
fn shared_models(settings: &Settings, config: &EngineConfig) -> Result<Arc<Models>, String> {
    static LOADED: std::sync::Mutex<Vec<(std::path::PathBuf, Arc<Models>)>> = std::sync::Mutex::new(Vec::new());
    let mut loaded = LOADED.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((_, models)) = loaded.iter().find(|(dir, _)| dir == &settings.onnx.model_dir) {
        return Ok(models.clone());
    }
    let models = Arc::new(Models::load(
        &settings.onnx.library_path,
        &settings.onnx.model_dir,
        config,
    )?);
    loaded.push((settings.onnx.model_dir.clone(), models.clone()));
    Ok(models)
}
