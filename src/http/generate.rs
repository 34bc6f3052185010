use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};

use super::auth::Principal;
use super::body::read_multipart;
use super::state::AppState;
use crate::error::{AppError, ErrorBody};
use crate::generate::pipeline::{GenerateRequest, StyleChoice};
use crate::ingest::event::{InfluencerRef, UserRef};
use crate::keys::Scope;
use crate::media::OutputFormat;

/// The multipart form of `POST /v1/generate`.
#[allow(dead_code)] // documents the wire format only
#[derive(utoipa::ToSchema)]
pub struct GenerateForm {
    /// The photo to restyle: JPEG, PNG or WebP, at most 10 MB.
    #[schema(value_type = String, format = Binary)]
    photo: Vec<u8>,
    /// The platform's user id the generation is for (their interests pick the blend).
    #[schema(example = "ana")]
    user: String,
    /// One influencer's style instead of the user's interests.
    #[schema(example = "noir_nadia")]
    influencer: Option<String>,
    /// Explicit weights instead of the user's interests, e.g. `neon_nova=0.7,ink_iris=0.3`.
    #[schema(example = "neon_nova=0.7,ink_iris=0.3")]
    mix: Option<String>,
    /// 0 returns the photo, 1 the full style (default 1).
    #[schema(minimum = 0.0, maximum = 1.0)]
    strength: Option<f32>,
    /// Longest side of the output, exactly (default 256; the photo is never scaled up).
    #[schema(minimum = 32, maximum = 2048)]
    size: Option<u32>,
    /// Output format (default png).
    #[schema(value_type = Option<String>, pattern = "^(png|jpeg|jpg|webp)$")]
    format: Option<String>,
}

/// Restyle a photo for a user: one influencer's style, an explicit mix, or (by default) the
/// user's interest blend. Answers the image; headers carry its provenance.
#[utoipa::path(post, path = "/v1/generate", tag = "generate",
    security(("api_key" = [])),
    request_body(content = GenerateForm, content_type = "multipart/form-data"),
    responses(
        (status = 200, description = "The generated image.",
            content(
                (super::body::ImageBytes = "image/png"),
                (super::body::ImageBytes = "image/jpeg"),
                (super::body::ImageBytes = "image/webp"),
            ),
            headers(
                ("X-Generation-Id" = uuid::Uuid, description = "The `generations` record; also the served id to echo as `served_id` on events about this image."),
                ("X-Experiment" = String, description = "The experiment that served this generation, when one runs."),
                ("X-Variant" = String, description = "The user's variant of that experiment."),
                ("X-Model-Version" = String, description = "Generator and encoder versions."),
                ("X-Execution-Provider" = String, description = "The ONNX Runtime provider that ran."),
                ("X-Blend" = String, description = "JSON object influencer → weight, e.g. {\"neon_nova\":0.7,\"ink_iris\":0.3}."),
                ("X-Blend-Source" = String, description = "influencer, mix, interests or popularity."),
                ("X-Cache" = String, description = "hit or miss."),
                ("Server-Timing" = String, description = "Milliseconds per stage inside the service (W3C Server Timing): styles, cache, decode, encoder, tensors, queue, model, encode, record, total; a cache hit has no render stages."),
            )),
        (status = 400, description = "Missing or invalid field, or an image that cannot be decoded.", body = ErrorBody),
        (status = 401, description = "Missing or invalid API key.", body = ErrorBody),
        (status = 403, description = "The key lacks the `generate` scope.", body = ErrorBody),
        (status = 413, description = "Over the byte, side or pixel-area limit.", body = ErrorBody),
        (status = 422, description = "A requested influencer has no usable style.", body = ErrorBody),
        (status = 429, description = "Rate limit, or the generator is at capacity.", body = ErrorBody),
        (status = 503, description = "Postgres or the models are unavailable.", body = ErrorBody),
    ))]
pub async fn post_generate(
    state: web::Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, AppError> {
    principal.require(Scope::Generate)?;
    let pipeline = state.generation.pipeline()?;
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
        None => state.generation.settings.default_size,
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
            photo_sha256: None,
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
    let mut response = HttpResponse::Ok();
    if let Some(served) = &generated.served {
        if let (Some(experiment), Some(variant)) = (&served.experiment, &served.variant) {
            response
                .insert_header(("X-Experiment", experiment.as_str()))
                .insert_header(("X-Variant", variant.as_str()));
        }
    }
    Ok(response
        .content_type(generated.format.content_type())
        .insert_header(("X-Generation-Id", generated.id.to_string()))
        .insert_header(("X-Model-Version", generated.model_version))
        .insert_header(("X-Execution-Provider", generated.provider))
        .insert_header(("X-Blend", blend.to_string()))
        .insert_header(("X-Blend-Source", generated.blend.source.as_str()))
        .insert_header(("X-Cache", if generated.cache_hit { "hit" } else { "miss" }))
        .insert_header(("Server-Timing", generated.times.header_value()))
        .insert_header((header::CACHE_CONTROL, "private, max-age=3600"))
        .body(generated.image))
}
