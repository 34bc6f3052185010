use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::auth::Principal;
use super::body::read_image_upload;
use crate::error::AppError;
use crate::feed::{self, photos};
use crate::ingest::event::{ImageId, UserRef};
use crate::keys::Scope;
use crate::startup::AppState;

fn user_ref(path: web::Path<String>) -> Result<UserRef, AppError> {
    UserRef::parse(path.into_inner()).map_err(|e| AppError::bad_request("invalid_id", e.to_string()))
}

/// `PUT /v1/users/{user}/photo`: the user's reference photo (image body or multipart `photo`).
pub async fn put_photo(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, AppError> {
    principal.require(Scope::Generate)?;
    let user = user_ref(path)?;
    let upload = read_image_upload(&req, payload, state.media.max_bytes).await?;
    let stored = photos::put(&state, &user, upload).await?;
    Ok(if stored.replaced {
        HttpResponse::Ok().json(stored)
    } else {
        HttpResponse::Created().json(stored)
    })
}

/// `DELETE /v1/users/{user}/photo`: the photo and every image made from it.
pub async fn delete_photo(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    principal.require(Scope::Generate)?;
    let user = user_ref(path)?;
    Ok(HttpResponse::Ok().json(photos::delete(&state, &user).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedQuery {
    k: Option<usize>,
    cursor: Option<String>,
}

/// `GET /v1/users/{user}/feed?k=10&cursor=…`: ready and pending personalized images.
pub async fn get_feed(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<String>,
    query: web::Query<FeedQuery>,
) -> Result<HttpResponse, AppError> {
    principal.require(Scope::Read)?;
    let user = user_ref(path)?;
    let k = match query.k.unwrap_or(state.feed.default_k) {
        k if (1..=state.feed.max_k).contains(&k) => k,
        k => {
            return Err(AppError::bad_request(
                "invalid_query",
                format!("k must be within 1..={}, got {k}", state.feed.max_k),
            ))
        }
    };
    let page = feed::page(&state, &user, k, query.cursor.as_deref()).await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(page))
}

/// `GET /v1/images/{id}`: a stored feed image. Public by design: the id is the SHA-256 of
/// the bytes (unguessable), so feeds can put the URL in an <img> and CDNs can cache it.
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
    let image = photos::image(&state, &id).await?;
    Ok(HttpResponse::Ok()
        .content_type(image.content_type)
        .insert_header((header::ETAG, etag))
        .insert_header((header::CACHE_CONTROL, "public, max-age=31536000, immutable"))
        .body(image.bytes))
}
