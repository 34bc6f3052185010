use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::Principal;
use super::body::read_image_upload;
use super::state::AppState;
use crate::error::{AppError, ErrorBody};
use crate::ingest::event::InfluencerRef;
use crate::keys::Scope;
use crate::store::styles::{self, StoredStyle};
use crate::style::service;

fn influencer_ref(path: web::Path<String>) -> Result<InfluencerRef, AppError> {
    InfluencerRef::parse(path.into_inner()).map_err(|e| AppError::bad_request("invalid_id", e.to_string()))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"display_name": "Nova", "consent": true}))]
pub struct Profile {
    /// At most 200 characters.
    #[schema(max_length = 200)]
    display_name: Option<String>,
    /// Whether the influencer agreed to their style being used.
    consent: bool,
}

/// The profile as stored.
#[derive(Serialize, ToSchema)]
pub struct SavedProfile {
    #[schema(value_type = String)]
    influencer: InfluencerRef,
    display_name: Option<String>,
    consent: bool,
}

/// Create or update an influencer's profile: display name and consent (only consenting
/// influencers' styles are used for generation).
#[utoipa::path(put, path = "/v1/influencers/{influencer}", tag = "styles",
    security(("api_key" = [])),
    params(("influencer" = String, Path, description = "The platform's influencer id.", example = "noir_nadia")),
    request_body = Profile,
    responses(
        (status = 200, description = "The stored profile.", body = SavedProfile),
        (status = 400, description = "Invalid id or body.", body = ErrorBody),
        (status = 401, description = "Missing or invalid API key.", body = ErrorBody),
        (status = 403, description = "The key lacks the `admin` scope.", body = ErrorBody),
        (status = 413, description = "The JSON body is over the size limit.", body = ErrorBody),
        (status = 415, description = "The body is not application/json.", body = ErrorBody),
        (status = 429, description = "The key is over its rate limit.", body = ErrorBody),
        (status = 503, description = "Postgres is unavailable.", body = ErrorBody),
    ))]
pub async fn put_influencer(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<String>,
    body: web::Json<Profile>,
) -> Result<HttpResponse, AppError> {
    principal.require(Scope::Admin)?;
    let influencer = influencer_ref(path)?;
    if body.display_name.as_ref().is_some_and(|n| n.chars().count() > 200) {
        return Err(AppError::bad_request(
            "invalid_display_name",
            "display_name is longer than 200 characters",
        ));
    }
    // Postgres text cannot hold NUL, and no name needs control characters.
    if body
        .display_name
        .as_ref()
        .is_some_and(|n| n.chars().any(char::is_control))
    {
        return Err(AppError::bad_request(
            "invalid_display_name",
            "display_name contains control characters",
        ));
    }
    styles::upsert_influencer(
        &state.pool,
        influencer.as_str(),
        body.display_name.as_deref(),
        body.consent,
    )
    .await?;
    let body = body.into_inner();
    Ok(HttpResponse::Ok().json(SavedProfile {
        influencer,
        display_name: body.display_name,
        consent: body.consent,
    }))
}

/// A multipart upload of one photo.
#[allow(dead_code)] // documents the wire format only
#[derive(ToSchema)]
pub struct PhotoUpload {
    /// JPEG, PNG or WebP.
    #[schema(value_type = String, format = Binary)]
    photo: Vec<u8>,
}

/// Add a reference photo (the raw image as the body, or multipart field `photo`); its
/// style code and Gram matrices are computed once and the influencer's style updated.
#[utoipa::path(post, path = "/v1/influencers/{influencer}/photos", tag = "styles",
    security(("api_key" = [])),
    params(("influencer" = String, Path, description = "An influencer created with PUT first.", example = "noir_nadia")),
    request_body(description = "JPEG, PNG or WebP, at most 10 MB.", content(
        (super::body::ImageBytes = "image/jpeg"), (super::body::ImageBytes = "image/png"), (super::body::ImageBytes = "image/webp"),
        (super::body::ImageBytes = "application/octet-stream"), (PhotoUpload = "multipart/form-data"),
    )),
    responses(
        (status = 201, description = "The influencer's updated style.", body = StoredStyle),
        (status = 400, description = "Invalid id, missing photo, or an image that cannot be decoded.", body = ErrorBody),
        (status = 401, description = "Missing or invalid API key.", body = ErrorBody),
        (status = 403, description = "The key lacks the `admin` scope.", body = ErrorBody),
        (status = 404, description = "No such influencer (create it with PUT first).", body = ErrorBody),
        (status = 413, description = "Over the byte, side or pixel-area limit.", body = ErrorBody),
        (status = 429, description = "Rate limit, or the model queue is full.", body = ErrorBody),
        (status = 503, description = "Postgres or the models are unavailable.", body = ErrorBody),
    ))]
pub async fn post_photo(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, AppError> {
    principal.require(Scope::Admin)?;
    let influencer = influencer_ref(path)?;
    let models = state.generation.models()?;
    let photo = read_image_upload(&req, payload, state.media.max_bytes, "photo").await?;
    let alternates = &state.generation.alternates;
    let style = service::add_photo(&state.pool, models, alternates, state.media, influencer.as_str(), photo).await?;
    Ok(HttpResponse::Created().json(style))
}

/// An influencer's style: mean code, photo count, Gram summary, encoder version.
#[utoipa::path(get, path = "/v1/influencers/{influencer}/style", tag = "styles",
    security(("api_key" = [])),
    params(("influencer" = String, Path, description = "The platform's influencer id.", example = "noir_nadia")),
    responses(
        (status = 200, description = "The style.", body = StoredStyle),
        (status = 400, description = "Invalid id.", body = ErrorBody),
        (status = 401, description = "Missing or invalid API key.", body = ErrorBody),
        (status = 403, description = "The key lacks the `read` scope.", body = ErrorBody),
        (status = 404, description = "No style (no photos yet) or no such influencer.", body = ErrorBody),
        (status = 429, description = "The key is over its rate limit.", body = ErrorBody),
        (status = 503, description = "Postgres is unavailable.", body = ErrorBody),
    ))]
pub async fn get_style(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    principal.require(Scope::Read)?;
    let influencer = influencer_ref(path)?;
    let style = styles::style(&state.pool, influencer.as_str())
        .await?
        .ok_or_else(|| AppError::NotFound(format!("style of influencer {influencer:?}")))?;
    Ok(HttpResponse::Ok().json(style))
}

/// Erases the influencer everywhere: reference photos and style, every user's events with
/// them (and the follows, likes, hides and affinity those made), their vectors in every model
/// version, feed items and stored images in their style, and cache entries. They leave
/// recommendations and blends at once, before the next model build; feeds re-render without
/// them. Generation records keep provenance: their share of a blend is kept as
/// `erased_influencer`. Only a salted hash of the id stays, in the erasure log. A second
/// call answers 404 `unknown_influencer`.
#[utoipa::path(delete, path = "/v1/influencers/{influencer}", tag = "styles",
    security(("api_key" = [])),
    params(("influencer" = String, Path, description = "The platform's influencer id.", example = "noir_nadia")),
    responses(
        (status = 200, description = "Erased, with the rows removed per kind.", body = crate::erasure::InfluencerErasure),
        (status = 400, description = "Invalid id.", body = ErrorBody),
        (status = 401, description = "Missing or invalid API key.", body = ErrorBody),
        (status = 403, description = "The key lacks the `erase` scope (admin keys have it).", body = ErrorBody),
        (status = 404, description = "`unknown_influencer`: nothing is stored for this influencer.", body = ErrorBody),
        (status = 429, description = "The key is over its rate limit.", body = ErrorBody),
        (status = 503, description = "Postgres is unavailable.", body = ErrorBody),
    ))]
pub async fn erase_influencer(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    principal.require(Scope::Erase)?;
    let influencer = influencer_ref(path)?;
    Ok(HttpResponse::Ok().json(state.erasure.erase_influencer(&influencer).await?))
}
