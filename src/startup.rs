//! Boot: settings → pools → engines → HTTP server; and the handle that stops it.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::{middleware, web, App, HttpServer};
use secrecy::ExposeSecret;
use sqlx::PgPool;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing_actix_web::TracingLogger;

use crate::cache::Cache;
use crate::config::Settings;
use crate::experiment::Experiments;
use crate::feed::queue::{Job, JobQueue};
use crate::feed::{FeedSettings, Feeds};
use crate::generate::engine::EngineConfig;
use crate::generate::models::{missing, ModelStatus, Models};
use crate::generate::Generation;
use crate::http::rate_limit::KeyRateLimiter;
use crate::http::state::AppState;
use crate::ingest::Ingestor;
use crate::interest::{embed, AffinityModel};
use crate::keys::BootstrapKey;
use crate::recommend::Recommender;
use crate::served::Impressions;
use crate::store::images::{FileBlobs, ImageStore, PostgresBlobs};
use crate::store::partitions::Partitions;
use crate::{http, store, telemetry};

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error(transparent)]
    Cache(#[from] crate::cache::InvalidRedisUrl),
    #[error("binding {address}")]
    Bind { address: String, source: std::io::Error },
    #[error("invalid settings: {0}")]
    Config(String),
}

pub struct Application {
    port: u16,
    server: Server,
    pool: PgPool,
    /// Partitions, rebuilds, retention; the popularity ranking.
    maintenance: Vec<JoinHandle<()>>,
    worker: Option<JoinHandle<()>>,
    stop: watch::Sender<bool>,
    served: ServedWriter,
}

/// The task that writes served lists, and the switch that makes it drain and stop.
pub struct ServedWriter {
    task: Option<JoinHandle<()>>,
    stop: watch::Sender<bool>,
}

impl ServedWriter {
    /// Writes what is queued, then returns (bounded, so shutdown cannot hang on Postgres).
    pub async fn finish(self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task {
            if tokio::time::timeout(Duration::from_secs(10), task).await.is_err() {
                tracing::warn!("served lists still queued after 10 s at shutdown were dropped");
            }
        }
    }
}

/// What a server and a worker process both run on: the migrated pool, the cache, the models
/// and the feed queue. A server builds its HTTP state from it (`app_state`); a worker takes
/// only `feeds`.
pub struct Services {
    pub pool: PgPool,
    pub partitions: Arc<Partitions>,
    pub cache: Arc<Cache>,
    pub model: AffinityModel,
    pub recommender: Arc<Recommender>,
    pub generation: Arc<Generation>,
    pub feeds: Arc<Feeds>,
    pub experiments: Arc<Experiments>,
    pub served: ServedWriter,
}

/// Settings → migrated database → models, cache, queue.
pub async fn build_services(settings: &Settings) -> Result<Services, StartupError> {
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
    let (models, model_status) = load_models(settings);
    if let Some(error) = &model_status.error {
        tracing::warn!(%error, "generation models unavailable; generation answers 503");
    }
    telemetry::prometheus();

    let deployment = store::deployment_id(&pool).await?;
    let cache = Arc::new(Cache::new(&settings.redis, deployment)?);
    let feed_queue = Arc::new(JobQueue::connect(&settings.redis, &settings.feed, deployment).await);
    if matches!(*feed_queue, JobQueue::Memory(_)) {
        requeue_pending(&pool, &feed_queue).await;
    }
    let alternates = load_alternates(settings, models.as_deref());
    for models in &alternates {
        // Reference photos stored before this generator was loaded get its codes.
        let (pool, models) = (pool.clone(), models.clone());
        tokio::spawn(async move {
            match crate::style::service::encode_missing(&pool, &models).await {
                Ok(0) => {}
                Ok(photos) => tracing::info!(photos, generator = models.backend.as_str(), "style codes added"),
                Err(err) => tracing::warn!(error = %err, "style codes for an experiment generator not added"),
            }
        });
    }
    let generators = models
        .iter()
        .chain(&alternates)
        .map(|m| m.backend.as_str().to_string())
        .collect();
    let experiments = Arc::new(Experiments::new(pool.clone()).with_generators(generators));
    let (served_stop, served_stopped) = watch::channel(false);
    let (impressions, served_task) = Impressions::start(pool.clone(), &settings.served, served_stopped);
    let recommender = Arc::new(Recommender::new(
        pool.clone(),
        cache.clone(),
        Duration::from_secs(settings.embedding.recommendation_ttl_secs),
        Duration::from_secs(settings.embedding.popularity_max_age_secs),
        experiments.clone(),
        impressions,
    ));
    let generation = Arc::new(Generation {
        pool: pool.clone(),
        models,
        model_status,
        alternates,
        recommender: recommender.clone(),
        cache: cache.clone(),
        settings: settings.generate.clone(),
        limits: settings.media,
    });
    let feeds = Arc::new(Feeds {
        pool: pool.clone(),
        settings: settings.feed.clone(),
        queue: feed_queue,
        images: ImageStore::new(
            pool.clone(),
            image_blobs(&settings.feed)?,
            settings.feed.max_image_bytes,
        ),
        limits: settings.media,
        generation: generation.clone(),
    });
    Ok(Services {
        pool,
        partitions,
        cache,
        model,
        recommender,
        generation,
        feeds,
        experiments,
        served: ServedWriter {
            task: served_task,
            stop: served_stop,
        },
    })
}

/// The HTTP state over the services: what every handler can reach.
fn app_state(settings: &Settings, services: &Services) -> web::Data<AppState> {
    let ingestor = Ingestor::new(
        services.pool.clone(),
        services.model.clone(),
        services.partitions.clone(),
        services.cache.clone(),
        settings.ingest.clone(),
    )
    .with_feed_queue(services.feeds.queue.clone());
    let erasure = crate::erasure::Erasure {
        pool: services.pool.clone(),
        cache: services.cache.clone(),
        feeds: services.feeds.clone(),
        recommender: services.recommender.clone(),
        people: ingestor.people_ids(),
        log: crate::erasure::ErasureLog::new(services.pool.clone()),
    };
    web::Data::new(AppState {
        pool: services.pool.clone(),
        ingestor,
        model: services.model.clone(),
        cache: services.cache.clone(),
        recommender: services.recommender.clone(),
        bootstrap_key: settings
            .auth
            .admin_key
            .as_ref()
            .map(|key| BootstrapKey::new(key.expose_secret())),
        rate_limiter: KeyRateLimiter::new(settings.auth.rate_limit_per_sec, settings.auth.rate_limit_burst),
        onnx: settings.onnx.clone(),
        media: settings.media,
        generation: services.generation.clone(),
        feeds: services.feeds.clone(),
        erasure,
        experiments: services.experiments.clone(),
    })
}

fn image_blobs(feed: &FeedSettings) -> Result<Box<dyn crate::store::images::BlobStore>, StartupError> {
    match feed.image_backend.as_str() {
        "postgres" => Ok(Box::new(PostgresBlobs)),
        "filesystem" => Ok(Box::new(FileBlobs::new(feed.image_dir.clone()))),
        other => Err(StartupError::Config(format!(
            "feed.image_backend must be postgres or filesystem, not {other:?}"
        ))),
    }
}

/// An in-process queue starts empty: the slots still pending in Postgres go back in.
async fn requeue_pending(pool: &PgPool, queue: &JobQueue) {
    match store::feeds::pending(pool, 100_000).await {
        Ok(rows) => {
            let jobs = rows
                .into_iter()
                .map(|(user, slot, spec, _)| Job::Render {
                    user,
                    slot,
                    spec,
                    rank: None,
                    score: None,
                    recommendation_model: None,
                })
                .collect();
            queue.push(jobs).await;
        }
        Err(err) => tracing::warn!(error = %err, "could not re-queue pending feed items"),
    }
}

/// Consumer names must differ across processes and machines.
pub fn worker_name(role: &str) -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "host".into());
    format!("{role}-{host}-{}", std::process::id())
}

impl Application {
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        let services = build_services(&settings).await?;
        let state = app_state(&settings, &services);
        let address = format!("{}:{}", settings.server.host, settings.server.port);
        let listener = TcpListener::bind(&address).map_err(|source| StartupError::Bind {
            address: address.clone(),
            source,
        })?;
        let port = listener
            .local_addr()
            .map_err(|source| StartupError::Bind { address, source })?
            .port();
        let server = serve(listener, state.clone(), &settings)?;
        let (stop, stopped) = watch::channel(false);
        let worker = settings.feed.serve_worker.then(|| {
            tokio::spawn(crate::feed::worker::run(
                services.feeds.clone(),
                worker_name("serve"),
                settings.feed.worker_concurrency,
                stopped,
            ))
        });
        let maintenance = vec![
            tokio::spawn(maintain(
                services.pool.clone(),
                services.feeds.clone(),
                services.partitions.clone(),
                settings.clone(),
            )),
            tokio::spawn(services.recommender.popularity().clone().keep_fresh()),
        ];
        tracing::info!(port, feed_queue = services.feeds.queue.kind(), "stylecast listening");
        Ok(Self {
            port,
            server,
            pool: services.pool.clone(),
            maintenance,
            worker,
            stop,
            served: services.served,
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
        // The worker finishes the job in hand (its image stored, the job acknowledged).
        let _ = self.stop.send(true);
        if let Some(worker) = self.worker {
            if tokio::time::timeout(Duration::from_secs(30), worker).await.is_err() {
                tracing::warn!("feed worker did not stop within 30 s; its job will be reclaimed");
            }
        }
        for task in &self.maintenance {
            task.abort();
        }
        self.served.finish().await;
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
/// start), scheduled embedding rebuilds (then feeds re-plan: recommendations changed) and
/// the image retention policy.
async fn maintain(pool: PgPool, feeds: Arc<Feeds>, partitions: Arc<Partitions>, settings: Settings) {
    let pool = &pool;
    let partition_every = Duration::from_secs(6 * 3600);
    let rebuild_every = Duration::from_secs(settings.embedding.rebuild_interval_secs);
    let retention_every = Duration::from_secs(settings.feed.retention_interval_secs);
    let mut last_partitions = tokio::time::Instant::now();
    let mut last_rebuild = tokio::time::Instant::now();
    let mut last_retention: Option<tokio::time::Instant> = None;
    let mut tick = tokio::time::interval(Duration::from_secs(30).min(retention_every.max(Duration::from_secs(1))));
    loop {
        tick.tick().await;
        if last_partitions.elapsed() >= partition_every {
            last_partitions = tokio::time::Instant::now();
            if let Err(err) = partitions
                .ensure_ahead(pool, settings.database.partition_months_ahead)
                .await
            {
                tracing::warn!(error = %err, "creating partitions ahead failed; will retry");
            }
        }
        if !rebuild_every.is_zero() && last_rebuild.elapsed() >= rebuild_every {
            last_rebuild = tokio::time::Instant::now();
            match embed::rebuild(pool, &settings.embedding.als, |_| {}).await {
                Ok(report) => {
                    tracing::info!(
                        version = report.version,
                        users = report.users,
                        influencers = report.influencers,
                        seconds = report.total_seconds,
                        "embedding model rebuilt"
                    );
                    crate::feed::refresh_all(&feeds).await;
                }
                Err(err) => tracing::warn!(error = %err, "scheduled embedding rebuild skipped"),
            }
        }
        if !retention_every.is_zero() && last_retention.is_none_or(|at| at.elapsed() >= retention_every) {
            last_retention = Some(tokio::time::Instant::now());
            let max_age = Duration::from_secs_f64(settings.feed.retention_max_age_days * 86_400.0);
            match feeds
                .images
                .enforce_retention(settings.feed.retention_per_user, max_age)
                .await
            {
                Ok(0) => {}
                Ok(removed) => tracing::info!(removed, "image retention removed old images"),
                Err(err) => tracing::warn!(error = %err, "image retention failed; will retry"),
            }
        }
    }
}

/// The generation models; their absence disables generation, never the service (each
/// caller says what it means: 503s for a server, an error for a CLI command).
pub fn load_models(settings: &Settings) -> (Option<Arc<Models>>, ModelStatus) {
    let config = settings.generate.engine_config();
    match shared_models(settings, &settings.onnx.generator, &config) {
        Ok(models) => {
            let status = models.status();
            (Some(models), status)
        }
        Err(error) => (None, missing(error)),
    }
}

/// The generators of `onnx.experiment_generators` other than the default one. One that
/// cannot load is left out with a warning: experiments cannot choose it
/// (`generator_not_loaded`), and everything else serves.
pub fn load_alternates(settings: &Settings, default: Option<&Models>) -> Vec<Arc<Models>> {
    let config = settings.generate.engine_config();
    let mut alternates: Vec<Arc<Models>> = Vec::new();
    for name in &settings.onnx.experiment_generators {
        let loaded_already = default
            .into_iter()
            .chain(alternates.iter().map(|m| m.as_ref()))
            .any(|m| m.backend.as_str() == name);
        if loaded_already {
            continue;
        }
        match shared_models(settings, name, &config) {
            Ok(models) => alternates.push(models),
            Err(error) => tracing::warn!(generator = %name, %error, "experiment generator not loaded"),
        }
    }
    alternates
}

/// Sessions are expensive and ort allows one environment per process: applications built in
/// the same process (tests, benchmarks) share the models loaded for the same folder and
/// generator.
fn shared_models(settings: &Settings, generator: &str, config: &EngineConfig) -> Result<Arc<Models>, String> {
    type Loaded = Vec<((std::path::PathBuf, String), Arc<Models>)>;
    static LOADED: std::sync::Mutex<Loaded> = std::sync::Mutex::new(Vec::new());
    let mut loaded = LOADED.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let key = (settings.onnx.model_dir.clone(), generator.to_string());
    if let Some((_, models)) = loaded.iter().find(|(k, _)| k == &key) {
        return Ok(models.clone());
    }
    let models = Arc::new(Models::load(
        &settings.onnx.library_path,
        &settings.onnx.model_dir,
        generator,
        config,
    )?);
    loaded.push((key, models.clone()));
    Ok(models)
}
