use actix_web::{web, HttpRequest, HttpResponse};

use super::auth::Principal;
use super::body::read_image_upload;
use super::state::AppState;
use crate::error::{AppError, ErrorBody};
use crate::provenance::Verdict;

/// A multipart upload of one image to verify.
#[allow(dead_code)] // documents the wire format only
#[derive(utoipa::ToSchema)]
pub struct VerifyUpload {
    /// The image (JPEG, PNG or WebP).
    #[schema(value_type = String, format = Binary)]
    image: Vec<u8>,
}
use crate::keys::Scope;
use crate::provenance;

/// `POST /v1/provenance/verify`: an image (raw body or multipart `image`) → the generation its
/// watermark names. Scope `read`: it returns a stored record, as the other reads do, and
/// costs no generator capacity (reading the watermark takes milliseconds).
#[utoipa::path(post, path = "/v1/provenance/verify", tag = "provenance",
    security(("api_key" = [])),
    request_body(description = "The image to check: JPEG, PNG or WebP, at most 10 MB (raw, or multipart field `image`).", content(
        (super::body::ImageBytes = "image/jpeg"), (super::body::ImageBytes = "image/png"), (super::body::ImageBytes = "image/webp"),
        (super::body::ImageBytes = "application/octet-stream"), (VerifyUpload = "multipart/form-data"),
    )),
    responses(
        (status = 200, description = "The watermark's generation (found), or why none (code no_watermark / unknown_generation).", body = Verdict),
        (status = 400, description = "Not a decodable image, or a missing field.", body = ErrorBody),
        (status = 401, description = "Missing or invalid API key.", body = ErrorBody),
        (status = 403, description = "The key lacks the `read` scope.", body = ErrorBody),
        (status = 413, description = "Over the byte, side or pixel-area limit.", body = ErrorBody),
        (status = 422, description = "Too small to carry a watermark (a side under 64 px).", body = ErrorBody),
        (status = 429, description = "The key is over its rate limit.", body = ErrorBody),
        (status = 503, description = "Postgres is unavailable.", body = ErrorBody),
    ))]
pub async fn post_verify(
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, AppError> {
    principal.require(Scope::Read)?;
    let upload = read_image_upload(&req, payload, state.media.max_bytes, "image").await?;
    let verdict = provenance::verify(&state.pool, state.media, upload).await?;
    Ok(HttpResponse::Ok().json(verdict))
}
