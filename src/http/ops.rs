//! Liveness, readiness and metrics.

use std::time::Duration;

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

use super::state::AppState;
use crate::cache::CacheKind;
use crate::onnx_runtime::{self, RuntimeStatus};
use crate::store;

/// The body of `/healthz`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    status: &'static str,
}

/// Liveness: the process answers HTTP.
#[utoipa::path(get, path = "/healthz", tag = "ops",
    responses((status = 200, description = "The process is alive.", body = Health)))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health { status: "ok" })
}

/// What `/readyz` found.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Readiness {
    /// Whether every capability asked about (all of them without `capability`) is up.
    ready: bool,
    capabilities: Capabilities,
    database: DatabaseStatus,
    cache: CacheKind,
    onnxruntime: RuntimeStatus,
    models: crate::generate::models::ModelStatus,
    /// Generators loaded beside the default one for experiments (`onnx.experiment_generators`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    experiment_generators: Vec<crate::generate::models::ModelStatus>,
}

/// What this process can serve now.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Capabilities {
    /// `POST /v1/events`: Postgres answers and the schema is current.
    ingest: bool,
    /// Recommendations, interests, feeds' reads: the same as ingest.
    recommend: bool,
    /// Generation, styles, feeds' renders: the database, plus ONNX Runtime and the models.
    generate: bool,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct DatabaseStatus {
    reachable: bool,
    migrations_applied: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// A capability a load balancer can ask `/readyz` about.
#[derive(Debug, Clone, Copy, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Capability {
    Ingest,
    Recommend,
    Generate,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReadinessQuery {
    /// Ask about one capability only (a pool of ingest-only nodes checks `ingest`, and
    /// keeps answering 200 while generation is down). Without it every capability counts.
    #[param(inline)]
    capability: Option<Capability>,
}

/// Readiness: 200 when what was asked about is up, else 503 with `Retry-After`. Without
/// `capability` that is everything the service serves: Postgres with the current schema for
/// ingest and recommendations, and ONNX Runtime with the models for generation. The body says
/// what is live (cache kind, ONNX Runtime with the fix when missing, models and provider).
#[utoipa::path(get, path = "/readyz", tag = "ops", params(ReadinessQuery), responses(
    (status = 200, description = "Ready.", body = Readiness),
    (status = 400, description = "Unknown capability.", body = crate::error::ErrorBody),
    (status = 503, description = "Not ready: Postgres unreachable, migrations missing, or (for generation) ONNX Runtime or the models missing.",
        body = Readiness,
        headers(("Retry-After" = u64, description = "Seconds to wait.")))))]
pub async fn readyz(state: web::Data<AppState>, query: web::Query<ReadinessQuery>) -> HttpResponse {
    let database = database_status(&state).await;
    let database_up = database.reachable && database.migrations_applied;
    let capabilities = Capabilities {
        ingest: database_up,
        recommend: database_up,
        generate: database_up && state.generation.model_status.loaded,
    };
    let ready = match query.capability {
        None => capabilities.ingest && capabilities.recommend && capabilities.generate,
        Some(Capability::Ingest) => capabilities.ingest,
        Some(Capability::Recommend) => capabilities.recommend,
        Some(Capability::Generate) => capabilities.generate,
    };
    let readiness = Readiness {
        ready,
        capabilities,
        database,
        cache: state.cache.live_kind().await,
        onnxruntime: onnx_runtime::status(&state.onnx.library_path),
        models: state.generation.model_status.clone(),
        experiment_generators: state.generation.alternates.iter().map(|m| m.status()).collect(),
    };
    if readiness.ready {
        HttpResponse::Ok().json(readiness)
    } else {
        HttpResponse::ServiceUnavailable()
            .insert_header(("Retry-After", "2"))
            .json(readiness)
    }
}

async fn database_status(state: &AppState) -> DatabaseStatus {
    let probe = tokio::time::timeout(Duration::from_secs(2), store::migrations_applied(&state.pool)).await;
    match probe {
        Ok(Ok(applied)) => DatabaseStatus {
            reachable: true,
            migrations_applied: applied,
            error: None,
        },
        Ok(Err(err)) => DatabaseStatus {
            reachable: false,
            migrations_applied: false,
            error: Some(err.to_string()),
        },
        Err(_) => DatabaseStatus {
            reachable: false,
            migrations_applied: false,
            error: Some("timed out after 2s".into()),
        },
    }
}

/// Prometheus metrics: requests by route/method/status, latency histograms, event outcomes.
#[utoipa::path(get, path = "/metrics", tag = "ops", responses(
    (status = 200, description = "Prometheus text exposition format.", body = String,
        content_type = "text/plain; version=0.0.4"),
    (status = 503, description = "The metrics recorder could not be installed.", body = crate::error::ErrorBody)))]
pub async fn metrics() -> HttpResponse {
    match crate::telemetry::prometheus() {
        Some(handle) => HttpResponse::Ok()
            .content_type("text/plain; version=0.0.4")
            .body(handle.render()),
        None => HttpResponse::ServiceUnavailable().json(serde_json::json!({
            "code": "unavailable", "message": "metrics recorder could not be installed"
        })),
    }
}
