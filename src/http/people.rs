use actix_web::{web, HttpResponse};
use serde::Deserialize;

use super::auth::Principal;
use crate::error::AppError;
use crate::ingest::event::{InfluencerRef, UserRef};
use crate::keys::Scope;
use crate::startup::AppState;
use crate::store::people;

#[derive(Deserialize)]
pub struct TopQuery {
    /// How many top affinities to list (1–100, default 10).
    top: Option<i64>,
}

impl TopQuery {
    fn limit(&self) -> Result<i64, AppError> {
        match self.top.unwrap_or(10) {
            n @ 1..=100 => Ok(n),
            n => Err(AppError::bad_request(
                "invalid_query",
                format!("top must be within 1..=100, got {n}"),
            )),
        }
    }
}

fn invalid_id(err: crate::ingest::event::IdError) -> AppError {
    AppError::bad_request("invalid_id", err.to_string())
}

/// `GET /v1/users/{user}`: counts and top influencers by affinity.
pub async fn get_user(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<String>,
    query: web::Query<TopQuery>,
) -> Result<HttpResponse, AppError> {
    principal.require(Scope::Read)?;
    let user = UserRef::parse(path.into_inner()).map_err(invalid_id)?;
    let summary = people::user_summary(&state.pool, &state.model, &user, query.limit()?)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("user {user:?}")))?;
    Ok(HttpResponse::Ok().json(summary))
}

/// `GET /v1/influencers/{influencer}`: counts, followers and top fans by affinity.
pub async fn get_influencer(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<String>,
    query: web::Query<TopQuery>,
) -> Result<HttpResponse, AppError> {
    principal.require(Scope::Read)?;
    let influencer = InfluencerRef::parse(path.into_inner()).map_err(invalid_id)?;
    let summary = people::influencer_summary(&state.pool, &state.model, &influencer, query.limit()?)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("influencer {influencer:?}")))?;
    Ok(HttpResponse::Ok().json(summary))
}

#[derive(Deserialize)]
pub struct KQuery {
    /// How many to return (1–100, default 20).
    k: Option<usize>,
}

/// `GET /v1/users/{user}/recommendations?k=20`: influencers to follow next.
pub async fn get_recommendations(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<String>,
    query: web::Query<KQuery>,
) -> Result<HttpResponse, AppError> {
    principal.require(Scope::Read)?;
    let user = UserRef::parse(path.into_inner()).map_err(invalid_id)?;
    let k = match query.k.unwrap_or(20) {
        k @ 1..=crate::recommend::MAX_K => k,
        k => {
            return Err(AppError::bad_request(
                "invalid_query",
                format!("k must be within 1..=100, got {k}"),
            ))
        }
    };
    Ok(HttpResponse::Ok().json(state.recommender.recommend(&user, k).await?))
}

#[derive(Deserialize)]
pub struct InterestsQuery {
    /// How many influencers in the blend (1–20, default from settings).
    k: Option<usize>,
}

/// `GET /v1/users/{user}/interests?k=5`: the style blend generation uses for this user.
pub async fn get_interests(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<String>,
    query: web::Query<InterestsQuery>,
) -> Result<HttpResponse, AppError> {
    principal.require(Scope::Read)?;
    let user = UserRef::parse(path.into_inner()).map_err(invalid_id)?;
    let k = match query.k.unwrap_or(state.generate.interests_k) {
        k @ 1..=20 => k,
        k => {
            return Err(AppError::bad_request(
                "invalid_query",
                format!("k must be within 1..=20, got {k}"),
            ))
        }
    };
    let encoder_version = state.models()?.encoder.version.clone();
    let styled: Vec<String> = crate::store::styles::usable_styles(&state.pool, &encoder_version)
        .await?
        .into_iter()
        .map(|s| s.influencer)
        .collect();
    let blend = crate::interest::blend::interests(
        &state.pool,
        &state.recommender,
        &styled,
        user.as_str(),
        k,
        state.generate.interests_temperature,
    )
    .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "user": user, "blend": blend })))
}
