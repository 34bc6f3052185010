use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::auth::Principal;
use super::body::{is_multipart, read_limited, read_multipart};
use crate::error::AppError;
use crate::ingest::event::InfluencerRef;
use crate::keys::Scope;
use crate::startup::AppState;
use crate::store::styles;
use crate::style::service;

fn influencer_ref(path: web::Path<String>) -> Result<InfluencerRef, AppError> {
    InfluencerRef::parse(path.into_inner()).map_err(|e| AppError::bad_request("invalid_id", e.to_string()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    display_name: Option<String>,
    /// Whether the influencer agreed to their style being used.
    consent: bool,
}

/// `PUT /v1/influencers/{id}`: display name and consent.
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
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "influencer": influencer, "display_name": body.display_name, "consent": body.consent
    })))
}

/// `POST /v1/influencers/{id}/photos`: a reference photo (image body or multipart `photo`).
pub async fn post_photo(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, AppError> {
    principal.require(Scope::Admin)?;
    let influencer = influencer_ref(path)?;
    let models = state.models()?;
    let limit = state.media.max_bytes;
    let photo = if is_multipart(&req) {
        let mut parts = read_multipart(&req, payload, limit + 64 * 1024).await?;
        parts
            .remove("photo")
            .ok_or_else(|| AppError::bad_request("missing_photo", "multipart field `photo` is required"))?
    } else {
        read_limited(&req, payload, limit).await?
    };
    let style = service::add_photo(&state.pool, models, state.media, influencer.as_str(), photo).await?;
    Ok(HttpResponse::Created().json(style))
}

/// `GET /v1/influencers/{id}/style`: code, photo count, Gram summary, model version.
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
