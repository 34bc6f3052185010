use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};

use super::auth::Principal;
use super::body::read_multipart;
use crate::error::AppError;
use crate::generate::pipeline::{GenerateRequest, StyleChoice};
use crate::ingest::event::{InfluencerRef, UserRef};
use crate::keys::Scope;
use crate::media::OutputFormat;
use crate::startup::AppState;

/// `POST /v1/generate` (multipart): `photo`, `user`, optional `influencer` or `mix`,
/// `strength`, `size`, `format`. Answers the image; headers carry its provenance.
pub async fn post_generate(
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, AppError> {
    principal.require(Scope::Generate)?;
    let pipeline = state.pipeline()?;
    let mut parts = read_multipart(&req, payload, state.media.max_bytes + 64 * 1024).await?;
    let text =
        |parts: &std::collections::HashMap<String, bytes::Bytes>, name: &str| -> Result<Option<String>, AppError> {
            parts
                .get(name)
                .map(|v| String::from_utf8(v.to_vec()).map(|s| s.trim().to_string()))
                .transpose()
                .map_err(|_| AppError::bad_request("invalid_field", format!("`{name}` is not UTF-8 text")))
        };
    let user =
        text(&parts, "user")?.ok_or_else(|| AppError::bad_request("missing_user", "field `user` is required"))?;
    let user = UserRef::parse(user).map_err(|e| AppError::bad_request("invalid_id", e.to_string()))?;
    let choice = match (text(&parts, "influencer")?, text(&parts, "mix")?) {
        (Some(_), Some(_)) => {
            return Err(AppError::bad_request(
                "conflicting_style",
                "give `influencer` or `mix`, not both",
            ))
        }
        (Some(id), None) => StyleChoice::Influencer(
            InfluencerRef::parse(id)
                .map_err(|e| AppError::bad_request("invalid_id", e.to_string()))?
                .into_inner(),
        ),
        (None, Some(mix)) => StyleChoice::parse_mix(&mix)?,
        (None, None) => StyleChoice::Interests,
    };
    let strength = match text(&parts, "strength")? {
        Some(v) => v
            .parse::<f32>()
            .map_err(|_| AppError::bad_request("invalid_strength", format!("strength {v:?} is not a number")))?,
        None => 1.0,
    };
    let size = match text(&parts, "size")? {
        Some(v) => v
            .parse::<u32>()
            .map_err(|_| AppError::bad_request("invalid_size", format!("size {v:?} is not a whole number")))?,
        None => state.generate.default_size,
    };
    let format = match text(&parts, "format")? {
        Some(v) => OutputFormat::parse(&v)
            .ok_or_else(|| AppError::bad_request("invalid_format", format!("format {v:?}: use png, jpeg or webp")))?,
        None => OutputFormat::Png,
    };
    let photo = parts
        .remove("photo")
        .ok_or_else(|| AppError::bad_request("missing_photo", "field `photo` is required"))?;
    let generated = pipeline
        .generate(GenerateRequest {
            photo,
            user: user.into_inner(),
            choice,
            strength,
            size,
            format,
        })
        .await?;
    let blend: serde_json::Value = generated
        .blend
        .weights
        .iter()
        .map(|w| (w.influencer.clone(), serde_json::json!(w.weight)))
        .collect();
    Ok(HttpResponse::Ok()
        .content_type(generated.format.content_type())
        .insert_header(("X-Generation-Id", generated.id.to_string()))
        .insert_header(("X-Model-Version", generated.model_version))
        .insert_header(("X-Execution-Provider", generated.provider))
        .insert_header(("X-Blend", blend.to_string()))
        .insert_header(("X-Blend-Source", generated.blend.source.as_str()))
        .insert_header(("X-Cache", if generated.cache_hit { "hit" } else { "miss" }))
        .insert_header((header::CACHE_CONTROL, "private, max-age=3600"))
        .body(generated.image))
}
