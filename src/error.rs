//! The one error type of the HTTP edge and its one mapping to HTTP.
//!
//! Domain modules return their own errors (`IngestError`, `GenerateError`, `FeedError`,
//! `StyleError`, `VerifyError`, …) and never see this type; each becomes an `AppError`
//! through one `From` at the end of this file. Client variants answer 4xx with `{"code", "message"}`; dependency outages answer 503
//! with `Retry-After`; everything else logs its cause chain and answers an opaque 500.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::experiment::ExperimentError;
use crate::feed::FeedError;
use crate::generate::engine::EngineError;
use crate::generate::GenerateError;
use crate::ingest::IngestError;
use crate::media::MediaError;
use crate::provenance::VerifyError;
use crate::style::service::StyleError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    #[error("request body is {actual} bytes or more; the limit is {limit}")]
    PayloadTooLarge { actual: usize, limit: usize },
    #[error("batch holds {count} events; the limit is {limit}")]
    TooManyEvents { count: usize, limit: usize },
    #[error("unsupported content type {content_type:?}; send {expected}")]
    UnsupportedMediaType {
        content_type: String,
        /// What this route takes.
        expected: &'static str,
    },
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("this key lacks the `{0}` scope")]
    Forbidden(&'static str),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{message}")]
    UnknownPerson { code: &'static str, message: String },
    #[error("no route for this method and path")]
    NoRoute,
    #[error("this path does not take this method; it takes {allow}")]
    MethodNotAllowed { allow: &'static str },
    #[error("{what} is unavailable; retry later")]
    Unavailable { what: &'static str, retry_after_secs: u64 },
    #[error("{message}")]
    Unprocessable { code: &'static str, message: String },
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error(transparent)]
    Media(#[from] MediaError),
    #[error("the generator is at capacity; retry after {retry_after_secs}s")]
    Overloaded { retry_after_secs: u64 },
    #[error("generation is unavailable: {0}")]
    ModelsUnavailable(String),
    #[error("this key is over its rate limit; retry after {retry_after_secs}s")]
    RateLimited { retry_after_secs: u64 },
    #[error("database error")]
    Database(#[source] sqlx::Error),
    #[error("internal error: {0}")]
    Internal(String),
}

/// Every error response: a stable machine-readable `code` and a human `message`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody<'a> {
    pub code: &'a str,
    pub message: String,
}

impl AppError {
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::BadRequest {
            code,
            message: message.into(),
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest { code, .. } => code,
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::TooManyEvents { .. } => "too_many_events",
            Self::UnsupportedMediaType { .. } => "unsupported_media_type",
            Self::Unauthorized(_) => "unauthorized",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound(_) => "not_found",
            Self::UnknownPerson { code, .. } => code,
            Self::NoRoute => "no_route",
            Self::MethodNotAllowed { .. } => "method_not_allowed",
            Self::Unavailable { .. } => "unavailable",
            Self::Unprocessable { code, .. } => code,
            Self::Conflict { code, .. } => code,
            Self::Media(err) => err.code(),
            Self::Overloaded { .. } => "overloaded",
            Self::ModelsUnavailable(_) => "models_unavailable",
            Self::RateLimited { .. } => "rate_limited",
            Self::Database(_) | Self::Internal(_) => "internal",
        }
    }
}

/// What `POST /v1/events` takes.
pub const EVENT_BATCH_TYPES: &str = "application/json or application/x-ndjson";

impl From<sqlx::Error> for AppError {
    fn from(err: sqlx::Error) -> Self {
        if database_unavailable(&err) {
            tracing::warn!(error = %err, "database unavailable");
            Self::Unavailable {
                what: "database",
                retry_after_secs: 2,
            }
        } else {
            Self::Database(err)
        }
    }
}

/// Whether Postgres is down, restarting or saturated — a condition the client should retry —
/// rather than a fault of the query.
fn database_unavailable(err: &sqlx::Error) -> bool {
    match err {
        // No pooled connection within the acquire timeout, a socket that broke, a pool
        // being closed, or the driver's worker gone.
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed => true,
        // A server that shuts down or restarts terminates its sessions with these codes
        // (a query in flight at that moment gets one of them rather than an I/O error).
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            code.starts_with("08") // connection_exception
                || matches!(
                    code.as_ref(),
                    "57P01" // admin_shutdown
                        | "57P02" // crash_shutdown
                        | "57P03" // cannot_connect_now
                        | "53300" // too_many_connections
                )
        }),
        _ => false,
    }
}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::PayloadTooLarge { .. } | Self::TooManyEvents { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) | Self::UnknownPerson { .. } | Self::NoRoute => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::Unavailable { .. } | Self::ModelsUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::Media(MediaError::TooLarge { .. } | MediaError::TooManyPixels { .. }) => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            Self::Media(_) => StatusCode::BAD_REQUEST,
            Self::Overloaded { .. } | Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Database(_) | Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let message = if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %error_chain(self), "request failed");
            "internal error; see the service log".to_string()
        } else {
            self.to_string()
        };
        let mut response = HttpResponse::build(status);
        match self {
            Self::Unavailable { retry_after_secs, .. }
            | Self::Overloaded { retry_after_secs }
            | Self::RateLimited { retry_after_secs } => {
                response.insert_header((header::RETRY_AFTER, retry_after_secs.to_string()));
            }
            Self::ModelsUnavailable(_) => {
                response.insert_header((header::RETRY_AFTER, "30"));
            }
            Self::Unauthorized(_) => {
                response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
            }
            Self::MethodNotAllowed { allow } => {
                response.insert_header((header::ALLOW, *allow));
            }
            _ => {}
        }
        response.json(ErrorBody {
            code: self.code(),
            message,
        })
    }
}

/// "outer: inner: root" for logs.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

// One `From` per domain error: the only place a domain outcome becomes a status, a code and
// a message. Database errors of every domain go through `From<sqlx::Error>` (503 when
// Postgres is unavailable, an opaque 500 otherwise).

impl From<EngineError> for AppError {
    fn from(err: EngineError) -> Self {
        match err {
            EngineError::Overloaded => Self::Overloaded { retry_after_secs: 1 },
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<StyleError> for AppError {
    fn from(err: StyleError) -> Self {
        match err {
            StyleError::Media(err) => Self::Media(err),
            StyleError::UnknownInfluencer(id) => Self::NotFound(format!("influencer {id:?}")),
            StyleError::Engine(err) => err.into(),
            StyleError::Database(err) => err.into(),
            StyleError::Task(message) => Self::Internal(message),
        }
    }
}

impl From<IngestError> for AppError {
    fn from(err: IngestError) -> Self {
        match err {
            IngestError::UnsupportedMediaType(content_type) => Self::UnsupportedMediaType {
                content_type,
                expected: EVENT_BATCH_TYPES,
            },
            IngestError::Malformed { code, message } => Self::BadRequest { code, message },
            IngestError::TooManyEvents { count, limit } => Self::TooManyEvents { count, limit },
            IngestError::Parser(_) => Self::Internal(err.to_string()),
            IngestError::Database(err) => err.into(),
        }
    }
}

impl From<GenerateError> for AppError {
    fn from(err: GenerateError) -> Self {
        match err {
            GenerateError::InvalidMix(_) => Self::bad_request("invalid_mix", err.to_string()),
            GenerateError::InvalidStrength(_) => Self::bad_request("invalid_strength", err.to_string()),
            GenerateError::InvalidSize { .. } => Self::bad_request("invalid_size", err.to_string()),
            GenerateError::NoStyle(_) | GenerateError::StyleWithdrawn(_) => Self::Unprocessable {
                code: "no_style",
                message: err.to_string(),
            },
            GenerateError::NoStyles => Self::Unprocessable {
                code: "no_styles",
                message: err.to_string(),
            },
            GenerateError::ModelsUnavailable(why) => Self::ModelsUnavailable(why),
            GenerateError::Media(err) => Self::Media(err),
            GenerateError::Engine(err) => err.into(),
            GenerateError::Database(err) => err.into(),
            GenerateError::Mark(_) | GenerateError::Task(_) => Self::Internal(err.to_string()),
        }
    }
}

impl From<crate::erasure::ErasureError> for AppError {
    fn from(err: crate::erasure::ErasureError) -> Self {
        use crate::erasure::ErasureError;
        match err {
            ErasureError::UnknownUser(_) => Self::UnknownPerson {
                code: "unknown_user",
                message: err.to_string(),
            },
            ErasureError::UnknownInfluencer(_) => Self::UnknownPerson {
                code: "unknown_influencer",
                message: err.to_string(),
            },
            ErasureError::Database(err) => err.into(),
            // The rows are gone (committed); only files of the filesystem store were left.
            ErasureError::Images(_) => Self::Internal(err.to_string()),
        }
    }
}

impl From<FeedError> for AppError {
    fn from(err: FeedError) -> Self {
        match err {
            FeedError::InvalidCursor(_) => Self::bad_request("invalid_cursor", err.to_string()),
            FeedError::NotFound(what) => Self::NotFound(what),
            FeedError::NoStyles => Self::Unprocessable {
                code: "no_styles",
                message: err.to_string(),
            },
            FeedError::Media(err) => Self::Media(err),
            FeedError::Generate(err) => err.into(),
            FeedError::Database(err) => err.into(),
            // Image store failures, database ones included, stay an opaque 500.
            FeedError::EncodePhoto(_) | FeedError::Images(_) | FeedError::Task(_) => Self::Internal(err.to_string()),
        }
    }
}

impl From<ExperimentError> for AppError {
    fn from(err: ExperimentError) -> Self {
        match err {
            ExperimentError::Invalid(_) => Self::bad_request("invalid_experiment", err.to_string()),
            ExperimentError::UnknownModelVersion(_) => Self::bad_request("unknown_model_version", err.to_string()),
            ExperimentError::GeneratorNotLoaded { .. } => Self::bad_request("generator_not_loaded", err.to_string()),
            ExperimentError::AnotherRunning { .. } => Self::Conflict {
                code: "experiment_running",
                message: err.to_string(),
            },
            ExperimentError::Database(err) => err.into(),
        }
    }
}

impl From<VerifyError> for AppError {
    fn from(err: VerifyError) -> Self {
        match err {
            VerifyError::Media(err) => Self::Media(err),
            VerifyError::TooSmall(too_small) => Self::Unprocessable {
                code: "image_too_small",
                message: too_small.to_string(),
            },
            VerifyError::Task(_) => Self::Internal(err.to_string()),
            VerifyError::Database(err) => err.into(),
        }
    }
}
