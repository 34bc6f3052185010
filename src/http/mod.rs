//! The HTTP skin: each handler parses its input, calls one function, maps the result.

pub mod auth;
pub mod body;
pub mod demo_page;
pub mod events;
pub mod feed;
pub mod generate;
pub mod influencers;
pub mod openapi;
pub mod ops;
pub mod people;
pub mod provenance;
pub mod rate_limit;
pub mod state;
pub mod telemetry;

use actix_web::{web, HttpResponse};
use serde::Deserialize;

use crate::error::AppError;

/// `[server]`: where and how the HTTP server listens.
#[derive(Debug, Clone, Deserialize)]
pub struct ServerSettings {
    pub host: String,
    /// 0 picks a free port (tests).
    pub port: u16,
    /// Seconds in-flight requests get to finish after SIGINT/SIGTERM.
    pub shutdown_timeout_secs: u64,
    /// Actix worker threads; 0 means one per core.
    pub workers: usize,
}

/// Mounts every route; also used by the tests through `startup`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::JsonConfig::default().error_handler(|err, req| json_error(err, req).into()))
        .app_data(
            web::QueryConfig::default()
                .error_handler(|err, _| AppError::bad_request("invalid_query", err.to_string()).into()),
        )
        .app_data(
            web::PathConfig::default()
                .error_handler(|err, _| AppError::bad_request("invalid_path", err.to_string()).into()),
        )
        .route("/", web::get().to(demo_page::index))
        .route("/healthz", web::get().to(ops::healthz))
        .route("/readyz", web::get().to(ops::readyz))
        .route("/metrics", web::get().to(ops::metrics))
        .route("/v1/events", web::post().to(events::post_events))
        .route("/v1/users/{user}", web::get().to(people::get_user))
        .route("/v1/users/{user}", web::delete().to(people::erase_user))
        .route(
            "/v1/users/{user}/recommendations",
            web::get().to(people::get_recommendations),
        )
        .route("/v1/users/{user}/interests", web::get().to(people::get_interests))
        .route("/v1/influencers/{influencer}", web::get().to(people::get_influencer))
        .route(
            "/v1/influencers/{influencer}",
            web::delete().to(influencers::erase_influencer),
        )
        .route(
            "/v1/influencers/{influencer}",
            web::put().to(influencers::put_influencer),
        )
        .route(
            "/v1/influencers/{influencer}/photos",
            web::post().to(influencers::post_photo),
        )
        .route(
            "/v1/influencers/{influencer}/style",
            web::get().to(influencers::get_style),
        )
        .route("/v1/users/{user}/photo", web::put().to(feed::put_photo))
        .route("/v1/users/{user}/photo", web::delete().to(feed::delete_photo))
        .route("/v1/users/{user}/feed", web::get().to(feed::get_feed))
        .route("/v1/images/{id}", web::get().to(feed::get_image))
        .route("/v1/generate", web::post().to(generate::post_generate))
        .route("/v1/provenance/verify", web::post().to(provenance::post_verify))
        .route("/docs", web::get().to(docs_redirect))
        // Swagger UI at /docs (assets vendored into the binary); it also serves /openapi.json.
        .service(utoipa_swagger_ui::SwaggerUi::new("/docs/{_:.*}").url("/openapi.json", openapi::document()));
}

/// `/docs` → `/docs/` (Swagger UI resolves its assets relative to the trailing slash).
async fn docs_redirect() -> HttpResponse {
    HttpResponse::PermanentRedirect()
        .insert_header((actix_web::http::header::LOCATION, "/docs/"))
        .finish()
}

/// JSON bodies of the extractor: too large is 413 and the wrong content type 415, as for
/// event batches; anything else is malformed.
fn json_error(err: actix_web::error::JsonPayloadError, req: &actix_web::HttpRequest) -> AppError {
    use actix_web::error::JsonPayloadError;
    match err {
        JsonPayloadError::OverflowKnownLength { length, limit } => AppError::PayloadTooLarge { actual: length, limit },
        JsonPayloadError::Overflow { limit } => AppError::PayloadTooLarge {
            actual: limit + 1,
            limit,
        },
        JsonPayloadError::ContentType => AppError::UnsupportedMediaType(
            req.headers()
                .get(actix_web::http::header::CONTENT_TYPE)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .unwrap_or_default(),
        ),
        err => AppError::bad_request("malformed_json", err.to_string()),
    }
}

pub async fn no_route() -> Result<HttpResponse, AppError> {
    Err(AppError::NoRoute)
}
