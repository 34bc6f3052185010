//! Writes of one ingest batch. Every function takes the batch's transaction; arrays are
//! bound with `unnest`, one statement per table, and keys go in sorted so concurrent
//! batches lock rows in the same order.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use crate::ingest::state::{ResolvedEvent, ToggleKey, ToggleState};
use crate::ingest::Toggle;

/// Inserts the events whose ids were never seen (sorted by event id); returns their ids.
pub async fn insert_new_events(conn: &mut PgConnection, events: &[ResolvedEvent]) -> Result<Vec<String>, sqlx::Error> {
    let mut ids = Vec::with_capacity(events.len());
    let mut users = Vec::with_capacity(events.len());
    let mut influencers = Vec::with_capacity(events.len());
    let mut kinds = Vec::with_capacity(events.len());
    let mut times = Vec::with_capacity(events.len());
    let mut posts = Vec::with_capacity(events.len());
    let mut weights = Vec::with_capacity(events.len());
    let mut images = Vec::with_capacity(events.len());
    for event in events {
        ids.push(event.event_id.as_str());
        users.push(event.user_id);
        influencers.push(event.influencer_id);
        kinds.push(event.kind.as_str());
        times.push(event.occurred_at);
        posts.push(event.post_id.as_deref());
        weights.push(event.weight);
        images.push(event.image_id.as_deref());
    }
    sqlx::query_scalar(
        "WITH input AS (
             SELECT * FROM unnest($1::text[], $2::int8[], $3::int8[], $4::text[], $5::timestamptz[], $6::text[], $7::float4[], $8::text[])
                 AS t(event_id, user_id, influencer_id, kind, occurred_at, post_id, weight, image_id)),
         fresh AS (
             INSERT INTO event_keys (event_id, occurred_at) SELECT event_id, occurred_at FROM input
             ON CONFLICT (event_id) DO NOTHING RETURNING event_id)
         INSERT INTO engagement_events (event_id, user_id, influencer_id, kind, occurred_at, post_id, weight, image_id)
         SELECT i.event_id, i.user_id, i.influencer_id, i.kind::event_kind, i.occurred_at, i.post_id, i.weight, i.image_id
         FROM input i JOIN fresh USING (event_id)
         RETURNING event_id",
    )
    .bind(ids)
    .bind(users)
    .bind(influencers)
    .bind(kinds)
    .bind(times)
    .bind(posts)
    .bind(weights)
    .bind(images)
    .fetch_all(&mut *conn)
    .await
}

struct ToggleColumns {
    users: Vec<i64>,
    influencers: Vec<i64>,
    posts: Vec<String>,
}

impl ToggleColumns {
    fn of<'a>(keys: impl Iterator<Item = &'a ToggleKey>) -> Self {
        let mut columns = Self {
            users: Vec::new(),
            influencers: Vec::new(),
            posts: Vec::new(),
        };
        for key in keys {
            columns.users.push(key.user_id);
            columns.influencers.push(key.influencer_id);
            columns.posts.push(key.post_id.clone());
        }
        columns
    }
}

/// Writes the newest incoming state per key where it is newer than the stored row,
/// by (occurred_at, event_id); ON CONFLICT re-checks against the latest committed row,
/// so concurrent batches converge on the same state. Keys must be sorted.
pub async fn upsert_toggles(
    conn: &mut PgConnection,
    toggle: Toggle,
    rows: &BTreeMap<ToggleKey, ToggleState>,
) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let columns = ToggleColumns::of(rows.keys());
    let active: Vec<bool> = rows.values().map(|s| s.active).collect();
    let weights: Vec<f32> = rows.values().map(|s| s.weight).collect();
    let times: Vec<DateTime<Utc>> = rows.values().map(|s| s.changed_at).collect();
    let events: Vec<&str> = rows.values().map(|s| s.changed_by_event.as_str()).collect();
    let sql = match toggle {
        Toggle::Follow => {
            "INSERT INTO follows AS f (user_id, influencer_id, active, weight, changed_at, changed_by_event)
             SELECT u, i, a, w, c, e
             FROM unnest($1::int8[], $2::int8[], $3::text[], $4::bool[], $5::float4[], $6::timestamptz[], $7::text[])
                  AS t(u, i, p, a, w, c, e)
             ON CONFLICT (user_id, influencer_id) DO UPDATE
             SET active = excluded.active, weight = excluded.weight,
                 changed_at = excluded.changed_at, changed_by_event = excluded.changed_by_event
             WHERE (excluded.changed_at, excluded.changed_by_event) > (f.changed_at, f.changed_by_event)"
        }
        Toggle::Like => {
            "INSERT INTO likes AS l (user_id, influencer_id, post_id, active, weight, changed_at, changed_by_event)
             SELECT u, i, p, a, w, c, e
             FROM unnest($1::int8[], $2::int8[], $3::text[], $4::bool[], $5::float4[], $6::timestamptz[], $7::text[])
                  AS t(u, i, p, a, w, c, e)
             ON CONFLICT (user_id, influencer_id, post_id) DO UPDATE
             SET active = excluded.active, weight = excluded.weight,
                 changed_at = excluded.changed_at, changed_by_event = excluded.changed_by_event
             WHERE (excluded.changed_at, excluded.changed_by_event) > (l.changed_at, l.changed_by_event)"
        }
    };
    sqlx::query(sql)
        .bind(&columns.users)
        .bind(&columns.influencers)
        .bind(&columns.posts)
        .bind(active)
        .bind(weights)
        .bind(times)
        .bind(events)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Adds reference-score deltas of the additive kinds (see interest::affinity); keys sorted.
pub async fn add_activity(conn: &mut PgConnection, deltas: &BTreeMap<(i64, i64), f64>) -> Result<(), sqlx::Error> {
    if deltas.is_empty() {
        return Ok(());
    }
    let users: Vec<i64> = deltas.keys().map(|k| k.0).collect();
    let influencers: Vec<i64> = deltas.keys().map(|k| k.1).collect();
    let scores: Vec<f64> = deltas.values().copied().collect();
    sqlx::query(
        "INSERT INTO affinity_activity AS a (user_id, influencer_id, score_ref)
         SELECT * FROM unnest($1::int8[], $2::int8[], $3::float8[])
         ON CONFLICT (user_id, influencer_id)
         DO UPDATE SET score_ref = a.score_ref + excluded.score_ref, updated_at = now()",
    )
    .bind(users)
    .bind(influencers)
    .bind(scores)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
