//! Why a batch as a whole was refused or not written (single bad events are `Rejection`s,
//! not errors). The HTTP status of each case is decided once, in `crate::error`.

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("unsupported content type {0:?}; send application/json or application/x-ndjson")]
    UnsupportedMediaType(String),
    /// The body is not a batch at all; `code` is the stable code clients see
    /// (`invalid_utf8`, `expected_array`, `malformed_json`).
    #[error("{message}")]
    Malformed { code: &'static str, message: String },
    #[error("batch holds {count} events; the limit is {limit}")]
    TooManyEvents { count: usize, limit: usize },
    // The message carries the cause: the HTTP edge logs it as one line.
    #[error("parser task failed: {0}")]
    Parser(tokio::task::JoinError),
    #[error("database error")]
    Database(#[from] sqlx::Error),
}
