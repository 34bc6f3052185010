//! The HTTP skin: each handler parses its input, calls one function, maps the result.

pub mod auth;
pub mod body;
pub mod demo_page;
pub mod events;
pub mod experiments;
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
        .service(resource("/", "GET").route(web::get().to(demo_page::index)))
        .service(resource("/healthz", "GET").route(web::get().to(ops::healthz)))
        .service(resource("/readyz", "GET").route(web::get().to(ops::readyz)))
        .service(resource("/metrics", "GET").route(web::get().to(ops::metrics)))
        .service(resource("/v1/events", "POST").route(web::post().to(events::post_events)))
        .service(
            resource("/v1/users/{user}", "GET, DELETE")
                .route(web::get().to(people::get_user))
                .route(web::delete().to(people::erase_user)),
        )
        .service(resource("/v1/users/{user}/recommendations", "GET").route(web::get().to(people::get_recommendations)))
        .service(resource("/v1/users/{user}/interests", "GET").route(web::get().to(people::get_interests)))
        .service(
            resource("/v1/influencers/{influencer}", "GET, PUT, DELETE")
                .route(web::get().to(people::get_influencer))
                .route(web::put().to(influencers::put_influencer))
                .route(web::delete().to(influencers::erase_influencer)),
        )
        .service(resource("/v1/influencers/{influencer}/photos", "POST").route(web::post().to(influencers::post_photo)))
        .service(resource("/v1/influencers/{influencer}/style", "GET").route(web::get().to(influencers::get_style)))
        .service(
            resource("/v1/users/{user}/photo", "PUT, DELETE")
                .route(web::put().to(feed::put_photo))
                .route(web::delete().to(feed::delete_photo)),
        )
        .service(resource("/v1/users/{user}/feed", "GET").route(web::get().to(feed::get_feed)))
        // HEAD too: CDNs and link checkers probe public images before fetching them.
        .service(
            resource("/v1/images/{id}", "GET, HEAD")
                .route(web::get().to(feed::get_image))
                .route(web::head().to(feed::get_image)),
        )
        .service(resource("/v1/generate", "POST").route(web::post().to(generate::post_generate)))
        .service(resource("/v1/experiments", "GET").route(web::get().to(experiments::list_experiments)))
        .service(resource("/v1/experiments/{name}", "PUT").route(web::put().to(experiments::put_experiment)))
        .service(resource("/v1/provenance/verify", "POST").route(web::post().to(provenance::post_verify)))
        .route("/docs", web::get().to(docs_redirect))
        // Swagger UI at /docs (assets vendored into the binary); it also serves /openapi.json.
        .service(utoipa_swagger_ui::SwaggerUi::new("/docs/{_:.*}").url("/openapi.json", openapi::document()));
}

/// A path and the methods it serves; any other method answers 405 with `Allow` and a JSON
/// error body (a path that does not exist stays 404).
fn resource(path: &str, allow: &'static str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(move || async move {
        Err::<HttpResponse, AppError>(AppError::MethodNotAllowed { allow })
    }))
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
        JsonPayloadError::ContentType => AppError::UnsupportedMediaType {
            content_type: req
                .headers()
                .get(actix_web::http::header::CONTENT_TYPE)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .unwrap_or_default(),
            expected: "application/json",
        },
        err => AppError::bad_request("malformed_json", err.to_string()),
    }
}

pub async fn no_route() -> Result<HttpResponse, AppError> {
    Err(AppError::NoRoute)
}
