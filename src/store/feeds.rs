//! Users' reference photos and feed items (the image each feed slot shows).

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

/// A user's stored reference photo without its bytes.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PhotoMeta {
    pub user_id: i64,
    pub sha256: String,
    pub width: i32,
    pub height: i32,
}

/// Creates the user on first sight; returns whether a photo was replaced.
pub async fn put_photo(
    pool: &PgPool,
    user: &str,
    sha256: &str,
    width: u32,
    height: u32,
    png: &[u8],
) -> Result<(i64, bool), sqlx::Error> {
    let mut tx = pool.begin().await?;
    let user_id: i64 = sqlx::query_scalar(
        "INSERT INTO users (external_id) VALUES ($1)
         ON CONFLICT (external_id) DO UPDATE SET external_id = excluded.external_id RETURNING id",
    )
    .bind(user)
    .fetch_one(&mut *tx)
    .await?;
    let replaced: bool = sqlx::query_scalar(
        "INSERT INTO user_photos AS p (user_id, sha256, width, height, image) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (user_id) DO UPDATE SET sha256 = excluded.sha256, width = excluded.width,
             height = excluded.height, image = excluded.image, uploaded_at = now()
         RETURNING (xmax <> 0)",
    )
    .bind(user_id)
    .bind(sha256)
    .bind(width as i32)
    .bind(height as i32)
    .bind(png)
    .fetch_one(&mut *tx)
    .await?;
    // Items made from the previous photo are stale.
    sqlx::query("DELETE FROM feed_items WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok((user_id, replaced))
}

pub async fn photo_meta(pool: &PgPool, user: &str) -> Result<Option<PhotoMeta>, sqlx::Error> {
    sqlx::query_as(
        "SELECT p.user_id, p.sha256, p.width, p.height FROM user_photos p JOIN users u ON u.id = p.user_id
         WHERE u.external_id = $1",
    )
    .bind(user)
    .fetch_optional(pool)
    .await
}

/// The photo's bytes and hash, by internal user id.
pub async fn photo(pool: &PgPool, user_id: i64) -> Result<Option<(String, Vec<u8>)>, sqlx::Error> {
    sqlx::query_as("SELECT sha256, image FROM user_photos WHERE user_id = $1")
        .bind(user_id)
        .fetch_optional(pool)
        .await
}

/// Removes the photo and the feed items made from it; returns whether there was one.
pub async fn delete_photo(pool: &PgPool, user_id: i64) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("DELETE FROM feed_items WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    let deleted = sqlx::query("DELETE FROM user_photos WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    tx.commit().await?;
    Ok(deleted > 0)
}

/// Of these users, those with a stored photo.
pub async fn users_with_photos(pool: &PgPool, users: &[String]) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT u.external_id FROM users u JOIN user_photos p ON p.user_id = u.id WHERE u.external_id = ANY($1)",
    )
    .bind(users)
    .fetch_all(pool)
    .await
}

pub async fn all_users_with_photos(pool: &PgPool) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT u.external_id FROM users u JOIN user_photos p ON p.user_id = u.id ORDER BY 1")
        .fetch_all(pool)
        .await
}

/// What a slot should show now.
#[derive(Debug, Clone)]
pub struct DesiredItem {
    pub slot: String,
    pub influencer: Option<String>,
    pub blend: Value,
    pub spec: String,
}

/// A slot as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FeedItemRow {
    pub slot: String,
    pub spec: String,
    pub image_id: Option<String>,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub requested_at: DateTime<Utc>,
}

impl FeedItemRow {
    /// Whether planning `spec` for this row changes it or queues a job.
    fn needs_plan(&self, spec: &str, requeue_after_secs: f64, max_attempts: i32) -> bool {
        let stale = (Utc::now() - self.requested_at).num_milliseconds() as f64 > requeue_after_secs * 1000.0;
        self.spec != spec || (self.image_id.is_none() && self.attempts < max_attempts && stale)
    }
}

/// Records the wanted spec of each slot. A slot whose spec changed loses its image; returns
/// the slots that need a render job: new or changed, or pending for longer than
/// `requeue_after_secs` (a job lost with an in-process queue is queued again).
pub async fn plan_items(
    pool: &PgPool,
    user_id: i64,
    items: &[DesiredItem],
    requeue_after_secs: f64,
    max_attempts: i32,
) -> Result<(Vec<FeedItemRow>, Vec<String>), sqlx::Error> {
    let slots: Vec<&str> = items.iter().map(|i| i.slot.as_str()).collect();
    let rows = feed_rows(pool, user_id, &slots).await?;
    // The common read (every slot planned, nothing stale) writes nothing: no row locks,
    // no commit to wait for.
    let changed: Vec<&DesiredItem> = items
        .iter()
        .filter(|item| match rows.iter().find(|r| r.slot == item.slot) {
            Some(row) => row.needs_plan(&item.spec, requeue_after_secs, max_attempts),
            None => true,
        })
        .collect();
    if changed.is_empty() {
        return Ok((rows, Vec::new()));
    }
    let queued = upsert_specs(pool, user_id, &changed, requeue_after_secs, max_attempts).await?;
    Ok((feed_rows(pool, user_id, &slots).await?, queued))
}

async fn feed_rows(pool: &PgPool, user_id: i64, slots: &[&str]) -> Result<Vec<FeedItemRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT slot, spec, image_id, attempts, last_error, requested_at FROM feed_items
         WHERE user_id = $1 AND slot = ANY($2)",
    )
    .bind(user_id)
    .bind(slots)
    .fetch_all(pool)
    .await
}

/// New or changed specs clear the slot's image; pending slots past `requeue_after_secs` are
/// queued again. Re-checked in SQL, so concurrent reads queue each change once.
async fn upsert_specs(
    pool: &PgPool,
    user_id: i64,
    items: &[&DesiredItem],
    requeue_after_secs: f64,
    max_attempts: i32,
) -> Result<Vec<String>, sqlx::Error> {
    let slots: Vec<&str> = items.iter().map(|i| i.slot.as_str()).collect();
    let influencers: Vec<Option<&str>> = items.iter().map(|i| i.influencer.as_deref()).collect();
    let blends: Vec<&Value> = items.iter().map(|i| &i.blend).collect();
    let specs: Vec<&str> = items.iter().map(|i| i.spec.as_str()).collect();
    sqlx::query_scalar(
        "INSERT INTO feed_items AS f (user_id, slot, influencer_id, blend, spec)
         SELECT $1, t.slot, (SELECT id FROM influencers WHERE external_id = t.influencer), t.blend, t.spec
         FROM unnest($2::text[], $3::text[], $4::jsonb[], $5::text[]) AS t(slot, influencer, blend, spec)
         ORDER BY t.slot
         ON CONFLICT (user_id, slot) DO UPDATE
         SET spec = excluded.spec, blend = excluded.blend, image_id = NULL, generation_id = NULL,
             ready_at = NULL, attempts = 0, last_error = NULL, requested_at = now()
         WHERE f.spec <> excluded.spec
            OR (f.image_id IS NULL AND f.attempts < $7
                AND f.requested_at < now() - make_interval(secs => $6))
         RETURNING slot",
    )
    .bind(user_id)
    .bind(&slots)
    .bind(&influencers)
    .bind(&blends)
    .bind(&specs)
    .bind(requeue_after_secs)
    .bind(max_attempts)
    .fetch_all(pool)
    .await
}

/// The slot a render job targets, when it still wants that spec and has no image.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RenderTarget {
    pub blend: Value,
    pub attempts: i32,
    pub photo_sha256: String,
    pub photo: Vec<u8>,
}

pub async fn render_target(
    pool: &PgPool,
    user_id: i64,
    slot: &str,
    spec: &str,
) -> Result<Option<RenderTarget>, sqlx::Error> {
    sqlx::query_as(
        "UPDATE feed_items f SET attempts = f.attempts + 1, requested_at = now()
         FROM user_photos p
         WHERE f.user_id = $1 AND f.slot = $2 AND f.spec = $3 AND f.image_id IS NULL AND p.user_id = f.user_id
         RETURNING f.blend, f.attempts, p.sha256 AS photo_sha256, p.image AS photo",
    )
    .bind(user_id)
    .bind(slot)
    .bind(spec)
    .fetch_optional(pool)
    .await
}

/// Points the slot at its image, if it still wants that spec.
pub async fn complete(
    pool: &PgPool,
    user_id: i64,
    slot: &str,
    spec: &str,
    image_id: &str,
    generation_id: Uuid,
) -> Result<bool, sqlx::Error> {
    let updated = sqlx::query(
        "UPDATE feed_items SET image_id = $4, generation_id = $5, ready_at = now(), last_error = NULL
         WHERE user_id = $1 AND slot = $2 AND spec = $3
           AND EXISTS (SELECT 1 FROM images WHERE id = $4)",
    )
    .bind(user_id)
    .bind(slot)
    .bind(spec)
    .bind(image_id)
    .bind(generation_id)
    .execute(pool)
    .await?
    .rows_affected();
    Ok(updated > 0)
}

/// Marks the slot failed for this spec: not queued again until its spec changes.
pub async fn record_failure(
    pool: &PgPool,
    user_id: i64,
    slot: &str,
    spec: &str,
    error: &str,
    max_attempts: i32,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE feed_items SET last_error = $4, attempts = GREATEST(attempts, $5)
         WHERE user_id = $1 AND slot = $2 AND spec = $3",
    )
    .bind(user_id)
    .bind(slot)
    .bind(spec)
    .bind(error)
    .bind(max_attempts)
    .execute(pool)
    .await?;
    Ok(())
}

/// Pending slots, oldest first (queued again at start-up with an in-process queue).
pub async fn pending(pool: &PgPool, limit: i64) -> Result<Vec<(String, String, String, DateTime<Utc>)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT u.external_id, f.slot, f.spec, f.requested_at FROM feed_items f JOIN users u ON u.id = f.user_id
         WHERE f.image_id IS NULL ORDER BY f.requested_at LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await
}
