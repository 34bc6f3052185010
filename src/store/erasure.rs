//! Erasing a user: every row keyed by them, in one transaction, and the erasure log.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};

/// What one erasure removed from Postgres, and what the caller must remove elsewhere.
#[derive(Debug, Default)]
pub struct ErasedRows {
    /// Rows removed (or anonymised, for generations) per kind.
    pub counts: BTreeMap<&'static str, u64>,
    /// Stored images whose bytes the image store must drop (filesystem backend).
    pub image_ids: Vec<String>,
    /// Generation cache entries made from the user's photos.
    pub cache_keys: Vec<String>,
}

/// The salt of erasure-log hashes (made by the migration).
pub async fn salt(pool: &PgPool) -> Result<Vec<u8>, sqlx::Error> {
    sqlx::query_scalar("SELECT salt FROM erasure_salt")
        .fetch_one(pool)
        .await
}

/// Erases the user `external_id` (whose salted hash is `subject_hash`); None when the
/// database holds nothing of them. Deletes in one transaction, the user's row locked first
/// so a concurrent erasure of the same user waits and then finds nothing.
pub async fn erase_user(
    pool: &PgPool,
    external_id: &str,
    subject_hash: &str,
) -> Result<Option<ErasedRows>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let user_id: Option<i64> = sqlx::query_scalar("SELECT id FROM users WHERE external_id = $1 FOR UPDATE")
        .bind(external_id)
        .fetch_optional(&mut *tx)
        .await?;
    let mut erased = ErasedRows::default();
    if let Some(user_id) = user_id {
        delete_keyed_rows(&mut tx, user_id, &mut erased).await?;
    }
    let anonymised: Vec<Option<String>> = sqlx::query_scalar(
        "WITH theirs AS (SELECT id, cache_key FROM generations WHERE user_external_id = $1 OR user_id = $2 FOR UPDATE)
         UPDATE generations g SET user_id = NULL, user_external_id = NULL, input_sha256 = NULL, cache_key = NULL,
                user_erased_at = now()
         FROM theirs WHERE g.id = theirs.id
         RETURNING theirs.cache_key",
    )
    .bind(external_id)
    .bind(user_id)
    .fetch_all(&mut *tx)
    .await?;
    erased.counts.insert("generations_anonymised", anonymised.len() as u64);
    erased.cache_keys = anonymised.into_iter().flatten().collect();
    // What was served to them and their experiment assignments are keyed by external id:
    // a user may be served before any event of theirs arrives.
    for (kind, table) in [
        ("served_lists", "served_lists"),
        ("experiment_assignments", "experiment_assignments"),
    ] {
        let removed = sqlx::query(&format!("DELETE FROM {table} WHERE user_external_id = $1"))
            .bind(external_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        erased.counts.insert(kind, removed);
    }
    if user_id.is_none() && erased.counts.values().all(|n| *n == 0) {
        tx.rollback().await?;
        return Ok(None);
    }
    if let Some(user_id) = user_id {
        sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
    }
    let removed = serde_json::to_value(&erased.counts).unwrap_or_default();
    sqlx::query("INSERT INTO erasure_log (subject_kind, subject_hash, removed) VALUES ('user', $1, $2)")
        .bind(subject_hash)
        .bind(removed)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Some(erased))
}

/// Every table keyed by the user. Event keys go with the events (they are the events' ids,
/// which platforms often build from user ids). Derived state has no foreign keys (ingest
/// speed, migration 20261126000008), so each table is named here.
async fn delete_keyed_rows(tx: &mut PgConnection, user_id: i64, erased: &mut ErasedRows) -> Result<(), sqlx::Error> {
    let event_keys = sqlx::query(
        "DELETE FROM event_keys k USING engagement_events e WHERE e.user_id = $1 AND k.event_id = e.event_id",
    )
    .bind(user_id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    erased.counts.insert("event_keys", event_keys);
    for (kind, table) in [
        ("events", "engagement_events"),
        ("follows", "follows"),
        ("likes", "likes"),
        ("hides", "hides"),
        ("affinity", "affinity_activity"),
        ("feed_items", "feed_items"),
        ("photos", "user_photos"),
    ] {
        let removed = sqlx::query(&format!("DELETE FROM {table} WHERE user_id = $1"))
            .bind(user_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        erased.counts.insert(kind, removed);
    }
    // Through the primary key (model_version, user_id), one probe per kept version: a
    // filter on user_id alone would scan every vector of every version.
    let vectors = sqlx::query(
        "DELETE FROM user_vectors WHERE model_version = ANY(ARRAY(SELECT version FROM embedding_models))
           AND user_id = $1",
    )
    .bind(user_id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    erased.counts.insert("vectors", vectors);
    // Bytes of the postgres backend go by ON DELETE CASCADE; files after the commit.
    erased.image_ids = sqlx::query_scalar("DELETE FROM images WHERE user_id = $1 RETURNING id")
        .bind(user_id)
        .fetch_all(&mut *tx)
        .await?;
    erased.counts.insert("images", erased.image_ids.len() as u64);
    Ok(())
}

/// Of these salted hashes, those of users erased since `since`.
pub async fn erased_since(
    pool: &PgPool,
    subject_hashes: &[String],
    since: DateTime<Utc>,
) -> Result<HashSet<String>, sqlx::Error> {
    let found: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT subject_hash FROM erasure_log
         WHERE subject_kind = 'user' AND subject_hash = ANY($1) AND erased_at >= $2",
    )
    .bind(subject_hashes)
    .bind(since)
    .fetch_all(pool)
    .await?;
    Ok(found.into_iter().collect())
}

/// Erases the influencer `external_id`: their reference photos and style, every user's events
/// with them and the state and affinity those made, their vectors, feed items and stored
/// images in their style. Generation records keep provenance: the influencer's share of a
/// blend stays, under `erased_influencer`. None when the database holds nothing of them.
pub async fn erase_influencer(
    pool: &PgPool,
    external_id: &str,
    subject_hash: &str,
) -> Result<Option<ErasedRows>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let Some(influencer_id) =
        sqlx::query_scalar::<_, i64>("SELECT id FROM influencers WHERE external_id = $1 FOR UPDATE")
            .bind(external_id)
            .fetch_optional(&mut *tx)
            .await?
    else {
        tx.rollback().await?;
        return Ok(None);
    };
    let mut erased = ErasedRows::default();
    let event_keys = sqlx::query(
        "DELETE FROM event_keys k USING engagement_events e WHERE e.influencer_id = $1 AND k.event_id = e.event_id",
    )
    .bind(influencer_id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    erased.counts.insert("event_keys", event_keys);
    // Images in their style: those of feed items that show them, and those whose generation
    // blended them. Their feed items go too, so feeds re-plan and re-render without them.
    erased.image_ids = sqlx::query_scalar(
        "WITH styled AS (
             SELECT image_id FROM feed_items WHERE (influencer_id = $1 OR blend ? $2) AND image_id IS NOT NULL
             UNION SELECT image_id FROM generations WHERE blend ? $2 AND image_id IS NOT NULL)
         DELETE FROM images i USING styled WHERE i.id = styled.image_id RETURNING i.id",
    )
    .bind(influencer_id)
    .bind(external_id)
    .fetch_all(&mut *tx)
    .await?;
    erased.counts.insert("images", erased.image_ids.len() as u64);
    let feed_items = sqlx::query("DELETE FROM feed_items WHERE influencer_id = $1 OR blend ? $2")
        .bind(influencer_id)
        .bind(external_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    erased.counts.insert("feed_items", feed_items);
    for (kind, table) in [
        ("events", "engagement_events"),
        ("follows", "follows"),
        ("likes", "likes"),
        ("hides", "hides"),
        ("affinity", "affinity_activity"),
        // Experiment generators' codes (their photos' codes go with the photos).
        ("style_codes", "influencer_style_codes"),
        ("photos", "influencer_photos"),
        ("styles", "influencer_styles"),
    ] {
        let removed = sqlx::query(&format!("DELETE FROM {table} WHERE influencer_id = $1"))
            .bind(influencer_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        erased.counts.insert(kind, removed);
    }
    let vectors = sqlx::query(
        "DELETE FROM influencer_vectors WHERE model_version = ANY(ARRAY(SELECT version FROM embedding_models))
           AND influencer_id = $1",
    )
    .bind(influencer_id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    erased.counts.insert("vectors", vectors);
    // Lists served with them keep their shape (ranks stay comparable) without the name.
    // A scan of served_lists: erasure is rare, and an index on the arrays would tax every
    // impression written.
    let blanked = sqlx::query(
        "UPDATE served_lists SET influencers = array_replace(influencers, $1, NULL) WHERE influencers @> ARRAY[$1]",
    )
    .bind(external_id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    erased.counts.insert("served_lists_blanked", blanked);
    let anonymised: Vec<Option<String>> = sqlx::query_scalar(
        "WITH theirs AS (SELECT id, cache_key FROM generations WHERE blend ? $1 FOR UPDATE)
         UPDATE generations g
         SET blend = (g.blend - $1) || jsonb_build_object('erased_influencer',
                 coalesce((g.blend ->> 'erased_influencer')::float8, 0) + (g.blend ->> $1)::float8),
             feed_slot = CASE WHEN g.feed_slot = 'influencer:' || $1 THEN 'influencer:erased_influencer'
                              ELSE g.feed_slot END,
             image_id = NULL, cache_key = NULL
         FROM theirs WHERE g.id = theirs.id
         RETURNING theirs.cache_key",
    )
    .bind(external_id)
    .fetch_all(&mut *tx)
    .await?;
    erased.counts.insert("generations_anonymised", anonymised.len() as u64);
    erased.cache_keys = anonymised.into_iter().flatten().collect();
    sqlx::query("DELETE FROM influencers WHERE id = $1")
        .bind(influencer_id)
        .execute(&mut *tx)
        .await?;
    let removed = serde_json::to_value(&erased.counts).unwrap_or_default();
    sqlx::query("INSERT INTO erasure_log (subject_kind, subject_hash, removed) VALUES ('influencer', $1, $2)")
        .bind(subject_hash)
        .bind(removed)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Some(erased))
}

/// How many influencers were ever erased: the catalogue's version, which readers of
/// influencer data held in memory (models, rankings, cached answers) compare.
pub async fn influencer_erasures(pool: &PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*) FROM erasure_log WHERE subject_kind = 'influencer'")
        .fetch_one(pool)
        .await
}
