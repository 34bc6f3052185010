//! The HTTP skin: each handler parses its input, calls one function, maps the result.

pub mod auth;
pub mod body;
pub mod events;
pub mod generate;
pub mod influencers;
pub mod ops;
pub mod people;
pub mod telemetry;

use actix_web::{web, HttpResponse};

use crate::error::AppError;

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
        .route("/healthz", web::get().to(ops::healthz))
        .route("/readyz", web::get().to(ops::readyz))
        .route("/metrics", web::get().to(ops::metrics))
        .route("/v1/events", web::post().to(events::post_events))
        .route("/v1/users/{user}", web::get().to(people::get_user))
        .route(
            "/v1/users/{user}/recommendations",
            web::get().to(people::get_recommendations),
        )
        .route("/v1/users/{user}/interests", web::get().to(people::get_interests))
        .route("/v1/influencers/{influencer}", web::get().to(people::get_influencer))
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
        .route("/v1/generate", web::post().to(generate::post_generate));
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
