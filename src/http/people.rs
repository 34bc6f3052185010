use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::Principal;
use super::state::AppState;
use crate::erasure::UserErasure;
use crate::error::{AppError, ErrorBody};
use crate::ingest::event::{InfluencerRef, UserRef};
use crate::interest::blend::Blend;
use crate::keys::Scope;
use crate::recommend::{Exclude, RecommendationRequest, ServedRecommendations, MAX_EXCLUDED_BY_NAME};
use crate::store::people::{self, InfluencerSummary, UserSummary};

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TopQuery {
    /// How many top affinities to list (1–100, default 10).
    #[param(minimum = 1, maximum = 100)]
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

/// A user: event counts by kind, follows, likes and top influencers by decayed affinity.
#[utoipa::path(get, path = "/v1/users/{user}", tag = "people",
    security(("api_key" = [])),
    params(("user" = String, Path, description = "The platform's user id.", example = "ana"), TopQuery),
    responses(
        (status = 200, description = "The user's summary.", body = UserSummary),
        (status = 400, description = "Invalid id or query.", body = ErrorBody),
        (status = 401, description = "Missing or invalid API key.", body = ErrorBody),
        (status = 403, description = "The key lacks the `read` scope.", body = ErrorBody),
        (status = 404, description = "No such user.", body = ErrorBody),
        (status = 429, description = "The key is over its rate limit.", body = ErrorBody),
        (status = 503, description = "Postgres is unavailable.", body = ErrorBody),
    ))]
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

/// An influencer: event counts, followers, likes and top fans by decayed affinity.
#[utoipa::path(get, path = "/v1/influencers/{influencer}", tag = "people",
    security(("api_key" = [])),
    params(("influencer" = String, Path, description = "The platform's influencer id.", example = "noir_nadia"), TopQuery),
    responses(
        (status = 200, description = "The influencer's summary.", body = InfluencerSummary),
        (status = 400, description = "Invalid id or query.", body = ErrorBody),
        (status = 401, description = "Missing or invalid API key.", body = ErrorBody),
        (status = 403, description = "The key lacks the `read` scope.", body = ErrorBody),
        (status = 404, description = "No such influencer.", body = ErrorBody),
        (status = 429, description = "The key is over its rate limit.", body = ErrorBody),
        (status = 503, description = "Postgres is unavailable.", body = ErrorBody),
    ))]
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

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RecommendationsQuery {
    /// How many to return (1–100, default 20).
    #[param(minimum = 1, maximum = 100)]
    k: Option<usize>,
    /// What the user already has and is left out: `engaged` (default) drops every
    /// influencer they follow or have positive affinity with (likes, views, comments,
    /// shares, image engagement); `followed` drops only follows.
    #[param(inline)]
    exclude: Option<Exclude>,
    /// Influencers left out of this answer only, comma-separated external ids (at most
    /// 100), for request-time business rules.
    #[param(example = "neon_nova,ink_iris")]
    exclude_influencers: Option<String>,
}

/// Influencers to follow next: ALS scores with the user folded in from current affinity,
/// leaving out what the user already has (`exclude`) and any influencers the caller names;
/// decayed popularity without a model (and says so).
#[utoipa::path(get, path = "/v1/users/{user}/recommendations", tag = "people",
    security(("api_key" = [])),
    params(("user" = String, Path, description = "The platform's user id.", example = "ana"), RecommendationsQuery),
    responses(
        (status = 200, description = "Ranked influencers, with the id to echo as `served_id` on events they lead to.", body = ServedRecommendations),
        (status = 400, description = "Invalid id or query.", body = ErrorBody),
        (status = 401, description = "Missing or invalid API key.", body = ErrorBody),
        (status = 403, description = "The key lacks the `read` scope.", body = ErrorBody),
        (status = 429, description = "The key is over its rate limit.", body = ErrorBody),
        (status = 503, description = "Postgres is unavailable.", body = ErrorBody),
    ))]
pub async fn get_recommendations(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<String>,
    query: web::Query<RecommendationsQuery>,
) -> Result<HttpResponse, AppError> {
    principal.require(Scope::Read)?;
    let user = UserRef::parse(path.into_inner()).map_err(invalid_id)?;
    let query = query.into_inner();
    let request = RecommendationRequest {
        k: recommendation_k(query.k)?,
        exclude: query.exclude.unwrap_or_default(),
        exclude_influencers: excluded_by_name(query.exclude_influencers.as_deref())?,
        model_version: None,
    };
    Ok(HttpResponse::Ok().json(state.recommender.serve(&user, &request).await?))
}

fn recommendation_k(k: Option<usize>) -> Result<usize, AppError> {
    match k.unwrap_or(20) {
        k @ 1..=crate::recommend::MAX_K => Ok(k),
        k => Err(AppError::bad_request(
            "invalid_query",
            format!("k must be within 1..=100, got {k}"),
        )),
    }
}

fn excluded_by_name(list: Option<&str>) -> Result<Vec<String>, AppError> {
    let Some(list) = list.filter(|l| !l.trim().is_empty()) else {
        return Ok(Vec::new());
    };
    let ids: Vec<String> = list
        .split(',')
        .map(|id| {
            InfluencerRef::parse(id.trim().to_string())
                .map(|id| id.as_str().to_string())
                .map_err(|err| AppError::bad_request("invalid_query", format!("exclude_influencers: {err}")))
        })
        .collect::<Result<_, _>>()?;
    if ids.len() > MAX_EXCLUDED_BY_NAME {
        return Err(AppError::bad_request(
            "invalid_query",
            format!(
                "exclude_influencers names {} influencers; at most {MAX_EXCLUDED_BY_NAME}",
                ids.len()
            ),
        ));
    }
    Ok(ids)
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InterestsQuery {
    /// How many influencers in the blend (1–20, default from settings).
    #[param(minimum = 1, maximum = 20)]
    k: Option<usize>,
}

/// A user's interest blend.
#[derive(Serialize, ToSchema)]
pub struct Interests {
    #[schema(value_type = String)]
    user: UserRef,
    blend: Blend,
}

/// The style blend generation uses for this user: a softmax over the user's ALS scores
/// (affinity before the first model build, popularity without engagement) for influencers
/// that have a usable style.
#[utoipa::path(get, path = "/v1/users/{user}/interests", tag = "people",
    security(("api_key" = [])),
    params(("user" = String, Path, description = "The platform's user id.", example = "ana"), InterestsQuery),
    responses(
        (status = 200, description = "The blend; weights sum to 1.", body = Interests),
        (status = 400, description = "Invalid id or query.", body = ErrorBody),
        (status = 401, description = "Missing or invalid API key.", body = ErrorBody),
        (status = 403, description = "The key lacks the `read` scope.", body = ErrorBody),
        (status = 429, description = "The key is over its rate limit.", body = ErrorBody),
        (status = 503, description = "Postgres or the models are unavailable.", body = ErrorBody),
    ))]
pub async fn get_interests(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<String>,
    query: web::Query<InterestsQuery>,
) -> Result<HttpResponse, AppError> {
    principal.require(Scope::Read)?;
    let user = UserRef::parse(path.into_inner()).map_err(invalid_id)?;
    let k = match query.k.unwrap_or(state.generation.settings.interests_k) {
        k @ 1..=20 => k,
        k => {
            return Err(AppError::bad_request(
                "invalid_query",
                format!("k must be within 1..=20, got {k}"),
            ))
        }
    };
    let encoder_version = state.generation.models()?.encoder.version.clone();
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
        state.generation.settings.interests_temperature,
    )
    .await?;
    Ok(HttpResponse::Ok().json(Interests { user, blend }))
}

/// Erases the user everywhere (GDPR Art. 17, CCPA): events in every partition and their
/// idempotency keys, follows, likes, hides, affinity, vectors of every model version, the
/// stored photo, feed items and stored images (database and files), their cache entries and
/// queued feed jobs; all Postgres rows in one transaction. Generation records stay for
/// provenance without the person: `verify` still finds an image's generation (time, model,
/// blend) and says the user was erased. Only a salted hash of the external id is kept, in
/// the erasure log. The user's influence on influencer factors lasts until the next model
/// build (hourly by default). Events of the user sent again within
/// `ingest.refuse_erased_user_days` (30) are rejected with `erased_user`. A second call
/// answers 404 `unknown_user`.
#[utoipa::path(delete, path = "/v1/users/{user}", tag = "people",
    security(("api_key" = [])),
    params(("user" = String, Path, description = "The platform's user id.", example = "ana")),
    responses(
        (status = 200, description = "Erased, with the rows removed per kind.", body = UserErasure),
        (status = 400, description = "Invalid id.", body = ErrorBody),
        (status = 401, description = "Missing or invalid API key.", body = ErrorBody),
        (status = 403, description = "The key lacks the `erase` scope (admin keys have it).", body = ErrorBody),
        (status = 404, description = "`unknown_user`: nothing is stored for this user (never seen, or already erased).", body = ErrorBody),
        (status = 429, description = "The key is over its rate limit.", body = ErrorBody),
        (status = 503, description = "Postgres is unavailable.", body = ErrorBody),
    ))]
pub async fn erase_user(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    principal.require(Scope::Erase)?;
    let user = UserRef::parse(path.into_inner()).map_err(invalid_id)?;
    Ok(HttpResponse::Ok().json(state.erasure.erase_user(&user).await?))
}
