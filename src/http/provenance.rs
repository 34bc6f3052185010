use actix_web::{web, HttpRequest, HttpResponse};

use super::auth::Principal;
use super::body::{is_multipart, read_limited, read_multipart};
use crate::error::AppError;
use crate::keys::Scope;
use crate::provenance;
use crate::startup::AppState;

/// `POST /v1/provenance/verify`: an image (raw body or multipart `image`) → the generation its
/// watermark names. Scope `read`: it returns a stored record, as the other reads do, and
/// costs no generator capacity (reading the watermark takes milliseconds).
pub async fn post_verify(
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, AppError> {
    principal.require(Scope::Read)?;
    let limit = state.media.max_bytes;
    let upload = if is_multipart(&req) {
        let mut parts = read_multipart(&req, payload, limit + 64 * 1024).await?;
        parts
            .remove("image")
            .ok_or_else(|| AppError::bad_request("missing_image", "multipart field `image` is required"))?
    } else {
        read_limited(&req, payload, limit).await?
    };
    let verdict = provenance::verify(&state.pool, state.media, upload).await?;
    Ok(HttpResponse::Ok().json(verdict))
}
