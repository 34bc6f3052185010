use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};

use super::auth::Principal;
use super::body::read_limited;
use super::state::AppState;
use crate::error::{AppError, ErrorBody};
use crate::ingest::BatchFormat;
use crate::ingest::IngestReport;
use crate::keys::Scope;

/// One engagement event as a platform sends it (the schema of a batch item; the body is
/// parsed item by item in `ingest::parse`, so a bad item is rejected alone).
#[allow(dead_code)] // documents the wire format only
#[derive(utoipa::ToSchema)]
#[schema(example = json!({"event_id": "e1", "user": "ana", "influencer": "nova", "kind": "follow",
    "occurred_at": "2026-11-20T10:00:00Z"}))]
pub struct EventInput {
    /// The platform's idempotency key (1–128 characters, no control characters).
    event_id: String,
    /// The platform's user id (1–128 characters).
    user: String,
    /// The platform's influencer id (1–128 characters).
    influencer: String,
    kind: crate::ingest::event::EventKind,
    /// RFC 3339; not before 2000-01-01 nor more than 5 minutes ahead.
    occurred_at: chrono::DateTime<chrono::Utc>,
    post_id: Option<String>,
    /// Multiplier on the kind's affinity weight (default 1).
    weight: Option<f32>,
    /// The `served_id` of the recommendations answer or feed page (or the `X-Generation-Id`
    /// of the generation) this event follows from; the analyst views attribute the event to
    /// that list and the item's rank. Must be a UUID (`invalid_served_id` otherwise).
    served_id: Option<uuid::Uuid>,
}

/// Ingest a batch of engagement events.
///
/// A JSON array or NDJSON of events, up to 10,000 events or 5 MB. Valid events land even
/// when others in the batch are bad; `event_id` is the idempotency key (replays change
/// nothing); a 200 means the accepted events are committed.
#[utoipa::path(post, path = "/v1/events", tag = "events",
    security(("api_key" = [])),
    request_body(description = "A batch of events.", content(
        (Vec<EventInput> = "application/json"),
        (String = "application/x-ndjson", example = json!("{\"event_id\":\"e2\",\"user\":\"ana\",\"influencer\":\"nova\",\"kind\":\"like\",\"occurred_at\":\"2026-11-20T10:01:00Z\"}\n")),
    )),
    responses(
        (status = 200, description = "Per-batch outcome.", body = IngestReport,
            example = json!({"accepted": 1, "duplicates": 0, "rejected": []})),
        (status = 400, description = "The body as a whole is malformed (not an array, not UTF-8).", body = ErrorBody),
        (status = 401, description = "Missing or invalid API key.", body = ErrorBody),
        (status = 403, description = "The key lacks the `ingest` scope.", body = ErrorBody),
        (status = 413, description = "Over 10,000 events or 5 MB.", body = ErrorBody),
        (status = 415, description = "Neither JSON nor NDJSON.", body = ErrorBody),
        (status = 429, description = "The key is over its rate limit.", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait."))),
        (status = 503, description = "Postgres is unavailable.", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait."))),
    ))]
pub async fn post_events(
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, AppError> {
    principal.require(Scope::Ingest)?;
    let content_type = match req.headers().get(header::CONTENT_TYPE) {
        Some(value) => Some(value.to_str().map_err(|_| AppError::UnsupportedMediaType {
            content_type: "<not ASCII>".into(),
            expected: crate::error::EVENT_BATCH_TYPES,
        })?),
        None => None,
    };
    let format = BatchFormat::from_content_type(content_type)?;
    let body = read_limited(&req, payload, state.ingestor.max_body_bytes()).await?;
    let report = state.ingestor.ingest(body, format).await?;
    Ok(HttpResponse::Ok().json(report))
}
