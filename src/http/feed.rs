use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use utoipa::IntoParams;

use super::auth::Principal;
use super::body::read_image_upload;
use super::influencers::PhotoUpload;
use super::state::AppState;
use crate::error::{AppError, ErrorBody};
use crate::feed::photos::{DeletedPhoto, StoredPhoto};
use crate::feed::FeedPage;
use crate::feed::{self, photos};
use crate::ingest::event::{ImageId, UserRef};
use crate::keys::Scope;

fn user_ref(path: web::Path<String>) -> Result<UserRef, AppError> {
    UserRef::parse(path.into_inner()).map_err(|e| AppError::bad_request("invalid_id", e.to_string()))
}

/// `PUT /v1/users/{user}/photo`: the user's reference photo (image body or multipart `photo`).
#[utoipa::path(put, path = "/v1/users/{user}/photo", tag = "feeds",
    security(("api_key" = [])),
    params(("user" = String, Path, description = "The platform's user id (created on first sight).", example = "ana")),
    request_body(description = "JPEG, PNG or WebP, at most 10 MB; stored normalised (orientation applied, longest side ≤ 1024, PNG).", content(
        (super::body::ImageBytes = "image/jpeg"), (super::body::ImageBytes = "image/png"), (super::body::ImageBytes = "image/webp"),
        (super::body::ImageBytes = "application/octet-stream"), (PhotoUpload = "multipart/form-data"),
    )),
    responses(
        (status = 201, description = "Stored; the user's feed is queued for rendering.", body = StoredPhoto),
        (status = 200, description = "Replaced; images made from the old photo were deleted.", body = StoredPhoto),
        (status = 400, description = "Invalid id, missing photo, or an image that cannot be decoded.", body = ErrorBody),
        (status = 401, description = "Missing or invalid API key.", body = ErrorBody),
        (status = 403, description = "The key lacks the `generate` scope.", body = ErrorBody),
        (status = 413, description = "Over the byte, side or pixel-area limit.", body = ErrorBody),
        (status = 429, description = "The key is over its rate limit.", body = ErrorBody),
        (status = 503, description = "Postgres is unavailable.", body = ErrorBody),
    ))]
pub async fn put_photo(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, AppError> {
    principal.require(Scope::Generate)?;
    let user = user_ref(path)?;
    let upload = read_image_upload(&req, payload, state.media.max_bytes, "photo").await?;
    let stored = photos::put(&state.feeds, &user, upload).await?;
    Ok(if stored.replaced {
        HttpResponse::Ok().json(stored)
    } else {
        HttpResponse::Created().json(stored)
    })
}

/// `DELETE /v1/users/{user}/photo`: the photo and every image made from it.
#[utoipa::path(delete, path = "/v1/users/{user}/photo", tag = "feeds",
    security(("api_key" = [])),
    params(("user" = String, Path, description = "The platform's user id.", example = "ana")),
    responses(
        (status = 200, description = "Deleted, with the number of images removed.", body = DeletedPhoto),
        (status = 400, description = "Invalid id.", body = ErrorBody),
        (status = 401, description = "Missing or invalid API key.", body = ErrorBody),
        (status = 403, description = "The key lacks the `generate` scope.", body = ErrorBody),
        (status = 404, description = "The user has no photo.", body = ErrorBody),
        (status = 429, description = "The key is over its rate limit.", body = ErrorBody),
        (status = 503, description = "Postgres is unavailable.", body = ErrorBody),
    ))]
pub async fn delete_photo(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    principal.require(Scope::Generate)?;
    let user = user_ref(path)?;
    Ok(HttpResponse::Ok().json(photos::delete(&state.feeds, &user).await?))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct FeedQuery {
    /// Influencer items per page (1–50, default 10); the first page adds the blend item.
    #[param(minimum = 1, maximum = 50)]
    k: Option<usize>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// `GET /v1/users/{user}/feed?k=10&cursor=…`: ready and pending personalized images.
#[utoipa::path(get, path = "/v1/users/{user}/feed", tag = "feeds",
    security(("api_key" = [])),
    params(("user" = String, Path, description = "A user with a stored photo.", example = "ana"), FeedQuery),
    responses(
        (status = 200, description = "The page: ready items carry an image URL, pending ones are queued. Never waits for rendering.", body = FeedPage),
        (status = 400, description = "Invalid id, k or cursor.", body = ErrorBody),
        (status = 401, description = "Missing or invalid API key.", body = ErrorBody),
        (status = 403, description = "The key lacks the `read` scope.", body = ErrorBody),
        (status = 404, description = "The user has no photo (PUT /v1/users/{user}/photo first).", body = ErrorBody),
        (status = 422, description = "No influencer has a usable style yet.", body = ErrorBody),
        (status = 429, description = "The key is over its rate limit.", body = ErrorBody),
        (status = 503, description = "Postgres or the models are unavailable.", body = ErrorBody),
    ))]
pub async fn get_feed(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<String>,
    query: web::Query<FeedQuery>,
) -> Result<HttpResponse, AppError> {
    principal.require(Scope::Read)?;
    let user = user_ref(path)?;
    let k = match query.k.unwrap_or(state.feeds.settings.default_k) {
        k if (1..=state.feeds.settings.max_k).contains(&k) => k,
        k => {
            return Err(AppError::bad_request(
                "invalid_query",
                format!("k must be within 1..={}, got {k}", state.feeds.settings.max_k),
            ))
        }
    };
    let page = feed::page(&state.feeds, &user, k, query.cursor.as_deref()).await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(page))
}

/// `GET /v1/images/{id}`: a stored feed image. Public by design: the id is the SHA-256 of
/// the bytes (unguessable), so feeds can put the URL in an <img> and CDNs can cache it.
#[utoipa::path(get, path = "/v1/images/{id}", tag = "feeds",
    params(("id" = String, Path, description = "SHA-256 (hex) of the image, from a feed item.",
        example = "9f2c6a1e0b7d4c3a8e5f6b1d2c3a4e5f6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e")),
    responses(
        (status = 200, description = "The image (Cache-Control: immutable; ETag is the id).", content(
            (super::body::ImageBytes = "image/jpeg"), (super::body::ImageBytes = "image/png"), (super::body::ImageBytes = "image/webp"))),
        (status = 304, description = "Not modified (If-None-Match matched)."),
        (status = 400, description = "Not an image id.", body = ErrorBody),
        (status = 404, description = "No such image (deleted with its photo, or by retention).", body = ErrorBody),
        (status = 503, description = "Postgres is unavailable.", body = ErrorBody),
    ))]
pub async fn get_image(
    state: web::Data<AppState>,
    path: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, AppError> {
    let id = ImageId::parse(path.into_inner()).map_err(|e| AppError::bad_request("invalid_image_id", e.to_string()))?;
    let etag = format!("\"{id}\"");
    let matches = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|tag| tag.trim() == etag || tag.trim() == "*"));
    if matches {
        return Ok(HttpResponse::NotModified().insert_header((header::ETAG, etag)).finish());
    }
    let image = photos::image(&state.feeds, &id).await?;
    Ok(HttpResponse::Ok()
        .content_type(image.content_type)
        .insert_header((header::ETAG, etag))
        .insert_header((header::CACHE_CONTROL, "public, max-age=31536000, immutable"))
        .body(image.bytes))
}
