use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};

use super::auth::Principal;
use super::body::read_limited;
use crate::error::AppError;
use crate::ingest::BatchFormat;
use crate::keys::Scope;
use crate::startup::AppState;

/// `POST /v1/events`: a JSON array or NDJSON batch of engagement events.
pub async fn post_events(
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, AppError> {
    principal.require(Scope::Ingest)?;
    let content_type = match req.headers().get(header::CONTENT_TYPE) {
        Some(value) => Some(
            value
                .to_str()
                .map_err(|_| AppError::UnsupportedMediaType("<not ASCII>".into()))?,
        ),
        None => None,
    };
    let format = BatchFormat::from_content_type(content_type)?;
    let body = read_limited(&req, payload, state.ingestor.max_body_bytes()).await?;
    let report = state.ingestor.ingest(body, format).await?;
    Ok(HttpResponse::Ok().json(report))
}
