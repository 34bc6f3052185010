use actix_web::{web, HttpResponse};

use super::auth::Principal;
use super::state::AppState;
use crate::error::{AppError, ErrorBody};
use crate::experiment::{Definition, Experiment};
use crate::keys::Scope;

/// Creates, replaces, starts or stops an experiment. Users are split between the variants
/// by a hash of user and experiment name (the same user always lands in the same variant)
/// and recorded when first served. Recommendations, interest blends, feeds and generations
/// honour the variant's settings; `"state": "stopped"` returns everyone to the defaults.
/// One experiment runs at a time.
#[utoipa::path(put, path = "/v1/experiments/{name}", tag = "experiments",
    security(("api_key" = [])),
    params(("name" = String, Path, description = "1-64 letters, digits, `_` or `-`.", example = "als_alpha_test",
        pattern = "^[A-Za-z0-9_-]{1,64}$")),
    request_body(content = Definition, example = json!({
        "variants": [
            {"name": "control", "share": 0.5, "settings": {}},
            {"name": "sharper_blends", "share": 0.5, "settings": {"blend_temperature": 0.1, "model_version": 3, "feed_blend_slot": false}}
        ],
        "state": "running"
    })),
    responses(
        (status = 200, description = "The experiment as stored, with users assigned so far.", body = Experiment),
        (status = 400, description = "`invalid_experiment` (names, shares, settings), `unknown_model_version`, or `generator_not_loaded` (a variant's generator is not in `onnx.experiment_generators`).", body = ErrorBody),
        (status = 401, description = "Missing or invalid API key.", body = ErrorBody),
        (status = 403, description = "The key lacks the `admin` scope.", body = ErrorBody),
        (status = 409, description = "`experiment_running`: another experiment runs; stop it first.", body = ErrorBody),
        (status = 413, description = "The JSON body is over the size limit.", body = ErrorBody),
        (status = 415, description = "The body is not application/json.", body = ErrorBody),
        (status = 429, description = "The key is over its rate limit.", body = ErrorBody),
        (status = 503, description = "Postgres is unavailable.", body = ErrorBody),
    ))]
pub async fn put_experiment(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<String>,
    body: web::Json<Definition>,
) -> Result<HttpResponse, AppError> {
    principal.require(Scope::Admin)?;
    let experiment = state.experiments.define(&path.into_inner(), body.into_inner()).await?;
    Ok(HttpResponse::Ok().json(experiment))
}

/// Every experiment with its state, variants and users assigned per variant.
#[utoipa::path(get, path = "/v1/experiments", tag = "experiments",
    security(("api_key" = [])),
    responses(
        (status = 200, description = "Experiments, oldest first.", body = [Experiment]),
        (status = 401, description = "Missing or invalid API key.", body = ErrorBody),
        (status = 403, description = "The key lacks the `read` scope.", body = ErrorBody),
        (status = 429, description = "The key is over its rate limit.", body = ErrorBody),
        (status = 503, description = "Postgres is unavailable.", body = ErrorBody),
    ))]
pub async fn list_experiments(state: web::Data<AppState>, principal: Principal) -> Result<HttpResponse, AppError> {
    principal.require(Scope::Read)?;
    Ok(HttpResponse::Ok().json(state.experiments.list().await?))
}
