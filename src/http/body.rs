//! Request bodies read with a byte limit, answering 413 with a JSON error.

use actix_web::http::header;
use actix_web::{web, HttpRequest};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;

use crate::error::AppError;

pub async fn read_limited(req: &HttpRequest, mut payload: web::Payload, limit: usize) -> Result<Bytes, AppError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if let Some(length) = declared.filter(|length| *length > limit) {
        return Err(AppError::PayloadTooLarge { actual: length, limit });
    }
    let mut body = BytesMut::with_capacity(declared.unwrap_or(0).min(limit));
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|err| AppError::bad_request("invalid_body", format!("reading the body failed: {err}")))?;
        if body.len() + chunk.len() > limit {
            return Err(AppError::PayloadTooLarge {
                actual: body.len() + chunk.len(),
                limit,
            });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// A multipart/form-data body read into named parts, each bounded, the whole bounded too.
pub async fn read_multipart(
    req: &HttpRequest,
    payload: web::Payload,
    limit: usize,
) -> Result<std::collections::HashMap<String, Bytes>, AppError> {
    let invalid = |err: actix_multipart::MultipartError| AppError::bad_request("invalid_multipart", err.to_string());
    let mut multipart = actix_multipart::Multipart::new(req.headers(), payload);
    let mut parts = std::collections::HashMap::new();
    let mut total = 0usize;
    while let Some(field) = multipart.next().await {
        let mut field = field.map_err(invalid)?;
        let name = field.name().unwrap_or_default().to_string();
        let mut data = BytesMut::new();
        while let Some(chunk) = field.next().await {
            let chunk = chunk.map_err(invalid)?;
            total += chunk.len();
            if total > limit {
                return Err(AppError::PayloadTooLarge { actual: total, limit });
            }
            data.extend_from_slice(&chunk);
        }
        parts.insert(name, data.freeze());
    }
    Ok(parts)
}

/// Whether the request carries multipart/form-data.
pub fn is_multipart(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("multipart/form-data"))
}

/// An uploaded image: the raw body, or the multipart field `field` (`photo`, `image`).
pub async fn read_image_upload(
    req: &HttpRequest,
    payload: web::Payload,
    limit: usize,
    field: &'static str,
) -> Result<Bytes, AppError> {
    if is_multipart(req) {
        let mut parts = read_multipart(req, payload, limit + 64 * 1024).await?;
        parts.remove(field).ok_or_else(|| {
            let code = if field == "photo" {
                "missing_photo"
            } else {
                "missing_image"
            };
            AppError::bad_request(code, format!("multipart field `{field}` is required"))
        })
    } else {
        read_limited(req, payload, limit).await
    }
}

/// Raw image bytes in a request or response body (typed as a binary string, not an array
/// of integers).
#[allow(dead_code)] // documents the wire format only
#[derive(utoipa::ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct ImageBytes(Vec<u8>);
