//! `Authorization: Bearer <key>` → the caller's scopes.

use std::future::Future;
use std::pin::Pin;

use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};
use secrecy::SecretString;
use serde::Deserialize;

use super::state::AppState;
use crate::error::AppError;
use crate::keys::{self, Scope};
use crate::store;

/// `[auth]`: the bootstrap key and the per-key rate limit.
#[derive(Debug, Clone, Deserialize)]
pub struct AuthSettings {
    /// Bootstrap key holding every scope (`STYLECAST_ADMIN_KEY`).
    pub admin_key: Option<SecretString>,
    /// Requests per second each API key may make (sustained); 0 turns the limit off.
    pub rate_limit_per_sec: u32,
    /// Requests a key may make at once above the sustained rate.
    pub rate_limit_burst: u32,
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    pub name: String,
    scopes: Vec<Scope>,
}

impl Principal {
    pub fn require(&self, scope: Scope) -> Result<(), AppError> {
        // Admin keys may erase: whoever manages keys and influencers manages their removal.
        let implied = scope == Scope::Erase && self.scopes.contains(&Scope::Admin);
        if self.scopes.contains(&scope) || implied {
            Ok(())
        } else {
            Err(AppError::Forbidden(scope.as_str()))
        }
    }
}

impl FromRequest for Principal {
    type Error = AppError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, AppError>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let token = bearer_token(req);
        Box::pin(async move {
            let state = state.ok_or_else(|| AppError::Internal("application state missing".into()))?;
            let (principal, key) = authenticate(&state, token?.as_str()).await?;
            if let Some(limiter) = &state.rate_limiter {
                limiter.check(&key)?;
            }
            Ok(principal)
        })
    }
}

fn bearer_token(req: &HttpRequest) -> Result<String, AppError> {
    let value = req
        .headers()
        .get(header::AUTHORIZATION)
        .ok_or(AppError::Unauthorized("missing Authorization: Bearer <key> header"))?;
    let value = value
        .to_str()
        .map_err(|_| AppError::Unauthorized("malformed Authorization header"))?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .ok_or(AppError::Unauthorized("Authorization must use the Bearer scheme"))?;
    Ok(token.trim().to_string())
}

/// The caller and the identity its rate limit is counted under.
async fn authenticate(state: &AppState, token: &str) -> Result<(Principal, String), AppError> {
    if state.bootstrap_key.as_ref().is_some_and(|key| key.matches(token)) {
        let principal = Principal {
            name: "bootstrap-admin".into(),
            scopes: Scope::ALL.to_vec(),
        };
        return Ok((principal, "bootstrap-admin".into()));
    }
    let presented = keys::parse_token(token).ok_or(AppError::Unauthorized("invalid API key"))?;
    let stored = store::keys::find_active(&state.pool, presented.id)
        .await?
        .ok_or(AppError::Unauthorized("invalid API key"))?;
    if !presented.matches(&stored.salt, &stored.secret_hash) {
        return Err(AppError::Unauthorized("invalid API key"));
    }
    let scopes = stored.scopes.iter().filter_map(|s| s.parse().ok()).collect();
    Ok((
        Principal {
            name: stored.name,
            scopes,
        },
        stored.id.to_string(),
    ))
}
