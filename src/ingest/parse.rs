//! Batch bodies (JSON array or NDJSON) → validated events plus per-item rejections.
//!
//! A malformed body as a whole (not an array, not UTF-8) fails the request; a bad item
//! only rejects that item, so the valid events of a mixed batch still land.

use std::borrow::Cow;

use chrono::{DateTime, Duration, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::error::IngestError;
use super::event::{Event, EventId, EventKind, IdError, ImageEvent, ImageId, InfluencerRef, PostId, UserRef};

/// How the batch body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchFormat {
    JsonArray,
    Ndjson,
}

impl BatchFormat {
    /// From a Content-Type value; absent means JSON.
    pub fn from_content_type(content_type: Option<&str>) -> Result<Self, IngestError> {
        let Some(value) = content_type else {
            return Ok(Self::JsonArray);
        };
        let essence = value.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        match essence.as_str() {
            "" | "application/json" => Ok(Self::JsonArray),
            "application/x-ndjson" | "application/ndjson" | "application/jsonl" | "application/x-jsonlines" => {
                Ok(Self::Ndjson)
            }
            _ => Err(IngestError::UnsupportedMediaType(value.to_string())),
        }
    }
}

/// Why one item of a batch was not accepted.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Rejection {
    /// Position in the JSON array, or among the non-blank lines of NDJSON (0-based).
    pub index: usize,
    pub code: &'static str,
    pub message: String,
}

/// The limits an item is validated against.
#[derive(Debug, Clone)]
pub struct ValidationRules {
    pub now: DateTime<Utc>,
    pub max_future_skew: Duration,
    pub min_occurred_at: DateTime<Utc>,
    pub max_events: usize,
}

#[derive(Debug, Default)]
pub struct ParsedBatch {
    /// Valid events with their batch index.
    pub events: Vec<(usize, Event)>,
    /// Valid image events, whose influencer is still to be looked up from the image.
    pub image_events: Vec<(usize, ImageEvent)>,
    pub rejected: Vec<Rejection>,
}

/// A valid item: an event, or an image event still missing its influencer.
enum Item {
    Event(Event),
    Image(ImageEvent),
}

#[derive(Deserialize)]
struct RawEvent<'a> {
    #[serde(borrow)]
    event_id: Cow<'a, str>,
    #[serde(borrow)]
    user: Cow<'a, str>,
    /// Required except for image kinds, whose influencer is the image's.
    #[serde(borrow, default)]
    influencer: Option<Cow<'a, str>>,
    /// Required for image kinds.
    #[serde(borrow, default)]
    image: Option<Cow<'a, str>>,
    #[serde(borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    occurred_at: Cow<'a, str>,
    #[serde(borrow, default)]
    post_id: Option<Cow<'a, str>>,
    #[serde(default)]
    weight: Option<f64>,
    /// The `served_id` of the answer the event follows from.
    #[serde(borrow, default)]
    served_id: Option<Cow<'a, str>>,
}

pub fn parse_batch(body: &[u8], format: BatchFormat, rules: &ValidationRules) -> Result<ParsedBatch, IngestError> {
    match format {
        BatchFormat::JsonArray => parse_json_array(body, rules),
        BatchFormat::Ndjson => parse_ndjson(body, rules),
    }
}

fn parse_json_array(body: &[u8], rules: &ValidationRules) -> Result<ParsedBatch, IngestError> {
    let text = std::str::from_utf8(body).map_err(|err| IngestError::Malformed {
        code: "invalid_utf8",
        message: format!("body is not UTF-8 (first bad byte at offset {})", err.valid_up_to()),
    })?;
    let items: Vec<&RawValue> = serde_json::from_str(text).map_err(|err| {
        let code = if err.is_data() {
            "expected_array"
        } else {
            "malformed_json"
        };
        IngestError::Malformed {
            code,
            message: format!("body must be a JSON array of events: {err}"),
        }
    })?;
    check_count(items.len(), rules)?;
    let mut batch = ParsedBatch::default();
    for (index, item) in items.into_iter().enumerate() {
        batch.push(index, validate_item(item.get(), rules));
    }
    Ok(batch)
}

fn parse_ndjson(body: &[u8], rules: &ValidationRules) -> Result<ParsedBatch, IngestError> {
    let lines: Vec<&[u8]> = body
        .split(|byte| *byte == b'\n')
        .filter(|line| !line.iter().all(u8::is_ascii_whitespace))
        .collect();
    check_count(lines.len(), rules)?;
    let mut batch = ParsedBatch::default();
    for (index, line) in lines.into_iter().enumerate() {
        let item = std::str::from_utf8(line)
            .map_err(|_| ItemError::new("invalid_utf8", "line is not UTF-8"))
            .and_then(|text| validate_item(text, rules));
        batch.push(index, item);
    }
    Ok(batch)
}

fn check_count(count: usize, rules: &ValidationRules) -> Result<(), IngestError> {
    if count > rules.max_events {
        return Err(IngestError::TooManyEvents {
            count,
            limit: rules.max_events,
        });
    }
    Ok(())
}

impl ParsedBatch {
    fn push(&mut self, index: usize, item: Result<Item, ItemError>) {
        match item {
            Ok(Item::Event(event)) => self.events.push((index, event)),
            Ok(Item::Image(event)) => self.image_events.push((index, event)),
            Err(err) => self.rejected.push(Rejection {
                index,
                code: err.code,
                message: err.message,
            }),
        }
    }
}

struct ItemError {
    code: &'static str,
    message: String,
}

impl ItemError {
    fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

impl From<IdError> for ItemError {
    fn from(err: IdError) -> Self {
        Self::new("invalid_id", err.to_string())
    }
}

fn validate_item(json: &str, rules: &ValidationRules) -> Result<Item, ItemError> {
    let mut deserializer = serde_json::Deserializer::from_str(json);
    let raw: RawEvent<'_> = serde_path_to_error::deserialize(&mut deserializer).map_err(describe_shape_error)?;
    deserializer
        .end()
        .map_err(|err| ItemError::new("malformed_json", format!("trailing data after the event: {err}")))?;
    let kind: EventKind = raw
        .kind
        .parse()
        .map_err(|err: super::event::UnknownKind| ItemError::new("unknown_kind", err.to_string()))?;
    let occurred_at = parse_timestamp(&raw.occurred_at, rules)?;
    let weight = match raw.weight {
        None => 1.0,
        Some(w) if w.is_finite() && w > 0.0 && w <= 1000.0 => w as f32,
        Some(w) => {
            return Err(ItemError::new(
                "invalid_weight",
                format!("weight {w} is outside (0, 1000]"),
            ))
        }
    };
    let served_id = raw
        .served_id
        .map(|id| uuid::Uuid::parse_str(&id))
        .transpose()
        .map_err(|err| ItemError::new("invalid_served_id", format!("served_id is not a UUID: {err}")))?;
    let event_id = EventId::parse(raw.event_id)?;
    let user = UserRef::parse(raw.user)?;
    if kind.names_image() {
        let image = raw
            .image
            .ok_or_else(|| ItemError::new("missing_field", format!("missing field `image` (required for {kind})")))?;
        let image = ImageId::parse(image).map_err(|err| ItemError::new("invalid_image_id", err.to_string()))?;
        return Ok(Item::Image(ImageEvent {
            event_id,
            user,
            kind,
            occurred_at,
            weight,
            image,
            served_id,
        }));
    }
    let influencer = raw
        .influencer
        .ok_or_else(|| ItemError::new("missing_field", "missing field `influencer`"))?;
    Ok(Item::Event(Event {
        event_id,
        user,
        influencer: InfluencerRef::parse(influencer)?,
        kind,
        occurred_at,
        post_id: raw.post_id.map(PostId::parse).transpose()?,
        weight,
        image: None,
        served_id,
    }))
}

fn describe_shape_error(err: serde_path_to_error::Error<serde_json::Error>) -> ItemError {
    let path = err.path().to_string();
    let inner = err.into_inner();
    let text = inner.to_string();
    if text.starts_with("missing field") {
        ItemError::new("missing_field", text)
    } else if inner.is_syntax() || inner.is_eof() {
        ItemError::new("malformed_json", text)
    } else if path == "." {
        ItemError::new("invalid_event", format!("an event must be a JSON object: {text}"))
    } else {
        ItemError::new("invalid_type", format!("{path}: {text}"))
    }
}

fn parse_timestamp(value: &str, rules: &ValidationRules) -> Result<DateTime<Utc>, ItemError> {
    let at = DateTime::parse_from_rfc3339(value)
        .map_err(|err| {
            ItemError::new(
                "invalid_timestamp",
                format!("occurred_at {value:?} is not RFC 3339: {err}"),
            )
        })?
        .with_timezone(&Utc)
        // Postgres keeps microseconds; comparing at finer precision would make a stored
        // event look older than itself.
        .trunc_subsecs(6);
    if at > rules.now + rules.max_future_skew {
        return Err(ItemError::new(
            "timestamp_in_future",
            format!(
                "occurred_at {value} is more than {}s ahead of server time",
                rules.max_future_skew.num_seconds()
            ),
        ));
    }
    if at < rules.min_occurred_at {
        return Err(ItemError::new(
            "timestamp_too_old",
            format!("occurred_at {value} is before {}", rules.min_occurred_at.to_rfc3339()),
        ));
    }
    Ok(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> ValidationRules {
        ValidationRules {
            now: "2026-11-26T12:00:00Z".parse().expect("valid"),
            max_future_skew: Duration::minutes(5),
            min_occurred_at: "2000-01-01T00:00:00Z".parse().expect("valid"),
            max_events: 3,
        }
    }

    const GOOD: &str =
        r#"{"event_id":"e1","user":"u1","influencer":"i1","kind":"like","occurred_at":"2026-11-26T10:00:00Z"}"#;

    fn codes(batch: &ParsedBatch) -> Vec<&'static str> {
        batch.rejected.iter().map(|r| r.code).collect()
    }

    #[test]
    fn a_mixed_array_keeps_valid_items_and_names_each_bad_one() {
        let body = format!(
            r#"[{GOOD}, {{"event_id":"e2","user":5,"influencer":"i","kind":"like","occurred_at":"2026-11-26T10:00:00Z"}},
               {{"event_id":"e3","user":"u","influencer":"i","kind":"poke","occurred_at":"2026-11-26T10:00:00Z"}}]"#
        );
        let batch = parse_batch(body.as_bytes(), BatchFormat::JsonArray, &rules()).expect("parses");
        assert_eq!(batch.events.len(), 1);
        assert_eq!(codes(&batch), ["invalid_type", "unknown_kind"]);
        assert_eq!(batch.rejected[0].index, 1);
        assert!(
            batch.rejected[0].message.contains("user"),
            "{}",
            batch.rejected[0].message
        );
    }

    #[test]
    fn timestamps_are_checked_against_the_window() {
        let future = GOOD.replace("2026-11-26T10:00:00Z", "2030-01-01T00:00:00Z");
        let old = GOOD.replace("2026-11-26T10:00:00Z", "1999-01-01T00:00:00Z");
        let bad = GOOD.replace("2026-11-26T10:00:00Z", "yesterday");
        let body = format!("[{future},{old},{bad}]");
        let batch = parse_batch(body.as_bytes(), BatchFormat::JsonArray, &rules()).expect("parses");
        assert_eq!(
            codes(&batch),
            ["timestamp_in_future", "timestamp_too_old", "invalid_timestamp"]
        );
    }

    #[test]
    fn ndjson_rejects_bad_lines_and_skips_blank_ones() {
        let body = format!("{GOOD}\n\n{{not json\n\u{20}\n{}\n", GOOD.replace("e1", "e2"));
        let batch = parse_batch(body.as_bytes(), BatchFormat::Ndjson, &rules()).expect("parses");
        assert_eq!(batch.events.len(), 2);
        assert_eq!(batch.events[1].0, 2);
        assert_eq!(codes(&batch), ["malformed_json"]);
    }

    #[test]
    fn whole_body_errors_fail_the_request() {
        let malformed = |result: Result<ParsedBatch, IngestError>| match result {
            Err(IngestError::Malformed { code, .. }) => Some(code),
            _ => None,
        };
        let not_array = parse_batch(GOOD.as_bytes(), BatchFormat::JsonArray, &rules());
        assert_eq!(malformed(not_array), Some("expected_array"));
        let broken = parse_batch(b"[{", BatchFormat::JsonArray, &rules());
        assert_eq!(malformed(broken), Some("malformed_json"));
        let latin1 = parse_batch(b"[\"caf\xe9\"]", BatchFormat::JsonArray, &rules());
        assert_eq!(malformed(latin1), Some("invalid_utf8"));
        let many = format!("[{GOOD},{GOOD},{GOOD},{GOOD}]");
        let too_many = parse_batch(many.as_bytes(), BatchFormat::JsonArray, &rules());
        assert!(matches!(
            too_many,
            Err(IngestError::TooManyEvents { count: 4, limit: 3 })
        ));
    }

    #[test]
    fn weights_must_be_positive_and_bounded() {
        let body = format!("[{}]", GOOD.replace("}", r#","weight":-1}"#));
        let batch = parse_batch(body.as_bytes(), BatchFormat::JsonArray, &rules()).expect("parses");
        assert_eq!(codes(&batch), ["invalid_weight"]);
    }

    #[test]
    fn content_types_choose_the_framing() {
        assert_eq!(BatchFormat::from_content_type(None).ok(), Some(BatchFormat::JsonArray));
        assert_eq!(
            BatchFormat::from_content_type(Some("application/x-ndjson; charset=utf-8")).ok(),
            Some(BatchFormat::Ndjson)
        );
        assert!(BatchFormat::from_content_type(Some("text/csv")).is_err());
    }
}
