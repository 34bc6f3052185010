//! Influencer profiles, reference photos and styles; generation records.

use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

/// Creates or updates an influencer's profile; returns its internal id.
pub async fn upsert_influencer(
    pool: &PgPool,
    external_id: &str,
    display_name: Option<&str>,
    consent: bool,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO influencers (external_id, display_name, consent) VALUES ($1, $2, $3)
         ON CONFLICT (external_id) DO UPDATE SET display_name = excluded.display_name, consent = excluded.consent
         RETURNING id",
    )
    .bind(external_id)
    .bind(display_name)
    .bind(consent)
    .fetch_one(pool)
    .await
}

pub async fn influencer_id(pool: &PgPool, external_id: &str) -> Result<Option<(i64, bool)>, sqlx::Error> {
    sqlx::query_as("SELECT id, consent FROM influencers WHERE external_id = $1")
        .bind(external_id)
        .fetch_optional(pool)
        .await
}

pub struct NewPhoto<'a> {
    pub influencer_id: i64,
    pub sha256: &'a str,
    pub width: i32,
    pub height: i32,
    pub image: &'a [u8],
    pub style_code: &'a [f32],
    pub gram_summary: &'a Value,
    pub model_version: &'a str,
}

/// Stores a photo; false when the influencer already has this exact photo.
pub async fn insert_photo(pool: &PgPool, photo: &NewPhoto<'_>) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO influencer_photos (influencer_id, sha256, width, height, image, style_code, gram_summary, model_version)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (influencer_id, sha256) DO NOTHING",
    )
    .bind(photo.influencer_id)
    .bind(photo.sha256)
    .bind(photo.width)
    .bind(photo.height)
    .bind(photo.image)
    .bind(photo.style_code)
    .bind(photo.gram_summary)
    .bind(photo.model_version)
    .execute(pool)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

/// (photo id, image bytes) of one influencer, or of all when `influencer_id` is None.
pub async fn photos(pool: &PgPool, influencer_id: Option<i64>) -> Result<Vec<(i64, i64, Vec<u8>)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, influencer_id, image FROM influencer_photos WHERE $1::int8 IS NULL OR influencer_id = $1 ORDER BY id",
    )
    .bind(influencer_id)
    .fetch_all(pool)
    .await
}

pub async fn update_photo_style(
    pool: &PgPool,
    photo_id: i64,
    code: &[f32],
    gram_summary: &Value,
    model_version: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE influencer_photos SET style_code = $2, gram_summary = $3, model_version = $4 WHERE id = $1")
        .bind(photo_id)
        .bind(code)
        .bind(gram_summary)
        .bind(model_version)
        .execute(pool)
        .await?;
    Ok(())
}

pub async fn save_style(
    pool: &PgPool,
    influencer_id: i64,
    code: &[f32],
    photo_count: i32,
    gram_summary: &Value,
    model_version: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO influencer_styles (influencer_id, style_code, photo_count, gram_summary, model_version)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (influencer_id) DO UPDATE SET style_code = excluded.style_code, photo_count = excluded.photo_count,
             gram_summary = excluded.gram_summary, model_version = excluded.model_version, updated_at = now()",
    )
    .bind(influencer_id)
    .bind(code)
    .bind(photo_count)
    .bind(gram_summary)
    .bind(model_version)
    .execute(pool)
    .await?;
    Ok(())
}

#[derive(Debug, sqlx::FromRow, serde::Serialize, utoipa::ToSchema)]
pub struct StoredStyle {
    pub influencer: String,
    pub display_name: Option<String>,
    pub consent: bool,
    pub style_code: Vec<f32>,
    pub photo_count: i32,
    /// Per VGG19 layer (relu1_1…relu4_1), averaged over the photos.
    #[schema(value_type = Vec<crate::style::gram::GramSummary>)]
    pub gram_summary: Value,
    pub model_version: String,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

const STYLE_COLUMNS: &str = "i.external_id AS influencer, i.display_name, i.consent, s.style_code, s.photo_count,
     s.gram_summary, s.model_version, s.updated_at
     FROM influencer_styles s JOIN influencers i ON i.id = s.influencer_id";

pub async fn style(pool: &PgPool, external_id: &str) -> Result<Option<StoredStyle>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {STYLE_COLUMNS} WHERE i.external_id = $1"))
        .bind(external_id)
        .fetch_optional(pool)
        .await
}

/// The style columns with the code of encoder `$1`: the default encoder's from
/// `influencer_styles`, an experiment generator's from `influencer_style_codes`.
const CODED_STYLE_COLUMNS: &str = "i.external_id AS influencer, i.display_name, i.consent,
     COALESCE(c.style_code, s.style_code) AS style_code, COALESCE(c.photo_count, s.photo_count) AS photo_count,
     s.gram_summary, COALESCE(c.model_version, s.model_version) AS model_version,
     COALESCE(c.updated_at, s.updated_at) AS updated_at
     FROM influencer_styles s JOIN influencers i ON i.id = s.influencer_id
     LEFT JOIN influencer_style_codes c ON c.influencer_id = s.influencer_id AND c.model_version = $1
     WHERE i.consent AND (s.model_version = $1 OR c.model_version IS NOT NULL)";

/// Styles usable for generation: computed by this encoder version, influencer consented.
pub async fn usable_styles(pool: &PgPool, model_version: &str) -> Result<Vec<StoredStyle>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {CODED_STYLE_COLUMNS} ORDER BY i.external_id"))
        .bind(model_version)
        .fetch_all(pool)
        .await
}

/// External ids of the influencers `usable_styles` would return, without the codes.
pub async fn styled_influencers(pool: &PgPool, model_version: &str) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(&format!(
        "SELECT influencer FROM (SELECT {CODED_STYLE_COLUMNS}) styled ORDER BY influencer"
    ))
    .bind(model_version)
    .fetch_all(pool)
    .await
}

/// The stored photo's id.
pub async fn photo_id(pool: &PgPool, influencer_id: i64, sha256: &str) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar("SELECT id FROM influencer_photos WHERE influencer_id = $1 AND sha256 = $2")
        .bind(influencer_id)
        .bind(sha256)
        .fetch_optional(pool)
        .await
}

/// (photo id, influencer id) of the photos without a code by encoder `model_version`
/// (an experiment generator's).
pub async fn photos_without_code(pool: &PgPool, model_version: &str) -> Result<Vec<(i64, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT p.id, p.influencer_id FROM influencer_photos p
         WHERE NOT EXISTS (SELECT 1 FROM photo_style_codes c WHERE c.photo_id = p.id AND c.model_version = $1)
         ORDER BY p.influencer_id, p.id",
    )
    .bind(model_version)
    .fetch_all(pool)
    .await
}

pub async fn photo_image(pool: &PgPool, photo_id: i64) -> Result<Option<Vec<u8>>, sqlx::Error> {
    sqlx::query_scalar("SELECT image FROM influencer_photos WHERE id = $1")
        .bind(photo_id)
        .fetch_optional(pool)
        .await
}

/// Stores a photo's code by an experiment generator's encoder.
pub async fn save_photo_code(
    pool: &PgPool,
    photo_id: i64,
    model_version: &str,
    code: &[f32],
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO photo_style_codes (photo_id, model_version, style_code) VALUES ($1, $2, $3)
         ON CONFLICT (photo_id, model_version) DO UPDATE SET style_code = excluded.style_code, created_at = now()",
    )
    .bind(photo_id)
    .bind(model_version)
    .bind(code)
    .execute(pool)
    .await?;
    Ok(())
}

/// The codes of one influencer's photos by encoder `model_version` (an experiment generator's).
pub async fn photo_codes(pool: &PgPool, influencer_id: i64, model_version: &str) -> Result<Vec<Vec<f32>>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT c.style_code FROM photo_style_codes c JOIN influencer_photos p ON p.id = c.photo_id
         WHERE p.influencer_id = $1 AND c.model_version = $2 ORDER BY p.id",
    )
    .bind(influencer_id)
    .bind(model_version)
    .fetch_all(pool)
    .await
}

/// An influencer's mean code by an experiment generator's encoder.
pub async fn save_style_code(
    pool: &PgPool,
    influencer_id: i64,
    model_version: &str,
    code: &[f32],
    photo_count: i32,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO influencer_style_codes (influencer_id, model_version, style_code, photo_count)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (influencer_id, model_version) DO UPDATE SET style_code = excluded.style_code,
             photo_count = excluded.photo_count, updated_at = now()",
    )
    .bind(influencer_id)
    .bind(model_version)
    .bind(code)
    .bind(photo_count)
    .execute(pool)
    .await?;
    Ok(())
}

/// Why an image was made: a caller's request, or a feed slot (with the recommendation that
/// put the influencer there), recorded with the generation for analysts.
#[derive(Debug, Clone, Default)]
pub struct FeedOrigin {
    pub slot: String,
    pub rank: Option<i32>,
    pub score: Option<f64>,
    pub recommendation_model: Option<i64>,
}

pub struct GenerationRecord<'a> {
    pub id: Uuid,
    pub user_external_id: &'a str,
    pub blend: &'a Value,
    pub blend_source: &'a str,
    pub strength: f32,
    pub size: i32,
    pub format: &'a str,
    pub model_version: &'a str,
    pub provider: &'a str,
    pub input_sha256: &'a str,
    pub output_sha256: &'a str,
    pub latency_ms: f64,
    pub cache_hit: bool,
    /// The generation cache key of its pixels (erasure removes the entry).
    pub cache_key: &'a str,
    /// Set for feed images (whose stored image id is the output hash).
    pub origin: Option<&'a FeedOrigin>,
}

pub async fn record_generation(pool: &PgPool, r: &GenerationRecord<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO generations (id, user_id, user_external_id, blend, blend_source, strength, size, format,
             model_version, provider, input_sha256, output_sha256, latency_ms, cache_hit,
             origin, image_id, feed_slot, recommendation_rank, recommendation_score, recommendation_model, cache_key)
         VALUES ($1, (SELECT id FROM users WHERE external_id = $2), $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13,
             $14, $15, $16, $17, $18, $19, $20)",
    )
    .bind(r.id)
    .bind(r.user_external_id)
    .bind(r.blend)
    .bind(r.blend_source)
    .bind(r.strength)
    .bind(r.size)
    .bind(r.format)
    .bind(r.model_version)
    .bind(r.provider)
    .bind(r.input_sha256)
    .bind(r.output_sha256)
    .bind(r.latency_ms)
    .bind(r.cache_hit)
    .bind(if r.origin.is_some() { "feed" } else { "request" })
    .bind(r.origin.map(|_| r.output_sha256))
    .bind(r.origin.map(|o| o.slot.as_str()))
    .bind(r.origin.and_then(|o| o.rank))
    .bind(r.origin.and_then(|o| o.score))
    .bind(r.origin.and_then(|o| o.recommendation_model))
    .bind(r.cache_key)
    .execute(pool)
    .await?;
    Ok(())
}

/// Per-photo codes and Gram summaries of one influencer made by this encoder version.
pub async fn photo_styles(
    pool: &PgPool,
    influencer_id: i64,
    model_version: &str,
) -> Result<Vec<(Vec<f32>, Value)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT style_code, gram_summary FROM influencer_photos WHERE influencer_id = $1 AND model_version = $2 ORDER BY id",
    )
    .bind(influencer_id)
    .bind(model_version)
    .fetch_all(pool)
    .await
}

/// A generation as recorded, for provenance look-ups.
#[derive(Debug, sqlx::FromRow, serde::Serialize, utoipa::ToSchema)]
pub struct StoredGeneration {
    pub id: Uuid,
    /// The user it was made for; null once that user was erased.
    pub user_external_id: Option<String>,
    /// Set when the user was erased: the record keeps provenance without the person.
    pub user_erased_at: Option<chrono::DateTime<chrono::Utc>>,
    pub blend: Value,
    pub blend_source: String,
    pub strength: f32,
    pub size: i32,
    pub format: String,
    pub model_version: String,
    pub provider: String,
    /// SHA-256 of the uploaded photo; null once the user was erased.
    pub input_sha256: Option<String>,
    pub output_sha256: String,
    pub latency_ms: f64,
    pub cache_hit: bool,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

#[tracing::instrument(skip(pool))]
pub async fn generation(pool: &PgPool, id: Uuid) -> Result<Option<StoredGeneration>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, user_external_id, user_erased_at, blend, blend_source, strength, size, format, model_version,
             provider, input_sha256, output_sha256, latency_ms, cache_hit, created_at
         FROM generations WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await
}
