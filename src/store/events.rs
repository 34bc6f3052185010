//! Writes of one ingest batch. Every function takes the batch's transaction; arrays are
//! bound with `unnest`, one statement per table, and keys go in sorted so concurrent
//! batches lock rows in the same order.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use crate::ingest::state::{ResolvedEvent, ToggleKey, ToggleState};
use crate::ingest::Toggle;

/// Which people table an external id lives in.
#[derive(Debug, Clone, Copy)]
pub enum People {
    Users,
    Influencers,
}

impl People {
    fn table(self) -> &'static str {
        match self {
            Self::Users => "users",
            Self::Influencers => "influencers",
        }
    }
}

/// Internal ids of the given external ids (sorted, distinct), creating missing rows.
pub async fn resolve_people(
    conn: &mut PgConnection,
    people: People,
    external_ids: &[String],
) -> Result<HashMap<String, i64>, sqlx::Error> {
    let table = people.table();
    // Insert only the missing ids: ON CONFLICT alone would burn an identity value per row.
    let sql = format!(
        "WITH input AS (SELECT x FROM unnest($1::text[]) AS t(x)),
              missing AS (SELECT x FROM input WHERE NOT EXISTS (SELECT 1 FROM {table} p WHERE p.external_id = input.x)),
              inserted AS (INSERT INTO {table} (external_id) SELECT x FROM missing
                           ON CONFLICT (external_id) DO NOTHING RETURNING id, external_id)
         SELECT id, external_id FROM inserted
         UNION ALL
         SELECT p.id, p.external_id FROM {table} p JOIN input ON p.external_id = input.x"
    );
    let rows: Vec<(i64, String)> = sqlx::query_as(&sql).bind(external_ids).fetch_all(&mut *conn).await?;
    let mut ids: HashMap<String, i64> = rows.into_iter().map(|(id, external)| (external, id)).collect();
    // A concurrent batch may have created some of them after this statement's snapshot.
    let unresolved: Vec<&String> = external_ids.iter().filter(|x| !ids.contains_key(*x)).collect();
    if !unresolved.is_empty() {
        let sql = format!("SELECT id, external_id FROM {table} WHERE external_id = ANY($1)");
        let rows: Vec<(i64, String)> = sqlx::query_as(&sql).bind(unresolved).fetch_all(&mut *conn).await?;
        ids.extend(rows.into_iter().map(|(id, external)| (external, id)));
    }
    Ok(ids)
}

/// Inserts the events whose ids were never seen (sorted by event id); returns their ids.
pub async fn insert_new_events(conn: &mut PgConnection, events: &[ResolvedEvent]) -> Result<Vec<String>, sqlx::Error> {
    let mut ids = Vec::with_capacity(events.len());
    let mut users = Vec::with_capacity(events.len());
    let mut influencers = Vec::with_capacity(events.len());
    let mut kinds = Vec::with_capacity(events.len());
    let mut times = Vec::with_capacity(events.len());
    let mut posts = Vec::with_capacity(events.len());
    let mut weights = Vec::with_capacity(events.len());
    for event in events {
        ids.push(event.event_id.as_str());
        users.push(event.user_id);
        influencers.push(event.influencer_id);
        kinds.push(event.kind.as_str());
        times.push(event.occurred_at);
        posts.push(event.post_id.as_deref());
        weights.push(event.weight);
    }
    sqlx::query_scalar(
        "WITH input AS (
             SELECT * FROM unnest($1::text[], $2::int8[], $3::int8[], $4::text[], $5::timestamptz[], $6::text[], $7::float4[])
                 AS t(event_id, user_id, influencer_id, kind, occurred_at, post_id, weight)),
         fresh AS (
             INSERT INTO event_keys (event_id, occurred_at) SELECT event_id, occurred_at FROM input
             ON CONFLICT (event_id) DO NOTHING RETURNING event_id)
         INSERT INTO engagement_events (event_id, user_id, influencer_id, kind, occurred_at, post_id, weight)
         SELECT i.event_id, i.user_id, i.influencer_id, i.kind::event_kind, i.occurred_at, i.post_id, i.weight
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
        let mut columns = Self { users: Vec::new(), influencers: Vec::new(), posts: Vec::new() };
        for key in keys {
            columns.users.push(key.user_id);
            columns.influencers.push(key.influencer_id);
            columns.posts.push(key.post_id.clone());
        }
        columns
    }
}

/// Locks the stored rows of these keys (creating placeholder rows so that a key that does
/// not exist yet is locked too) and returns the real ones.
pub async fn lock_toggles(
    conn: &mut PgConnection,
    toggle: Toggle,
    keys: &[&ToggleKey],
) -> Result<BTreeMap<ToggleKey, ToggleState>, sqlx::Error> {
    let columns = ToggleColumns::of(keys.iter().copied());
    // The placeholder is older than any acceptable event, so the incoming event always
    // replaces it in this same transaction; it never survives a commit.
    let (insert, select) = match toggle {
        Toggle::Follow => (
            "INSERT INTO follows (user_id, influencer_id, active, weight, changed_at, changed_by_event)
             SELECT u, i, false, 0, 'epoch', '' FROM unnest($1::int8[], $2::int8[]) AS t(u, i)
             ON CONFLICT DO NOTHING",
            "SELECT f.user_id, f.influencer_id, ''::text, f.active, f.weight, f.changed_at, f.changed_by_event
             FROM follows f JOIN unnest($1::int8[], $2::int8[]) AS t(u, i) ON f.user_id = t.u AND f.influencer_id = t.i
             ORDER BY 1, 2 FOR UPDATE OF f",
        ),
        Toggle::Like => (
            "INSERT INTO likes (user_id, influencer_id, post_id, active, weight, changed_at, changed_by_event)
             SELECT u, i, p, false, 0, 'epoch', '' FROM unnest($1::int8[], $2::int8[], $3::text[]) AS t(u, i, p)
             ON CONFLICT DO NOTHING",
            "SELECT l.user_id, l.influencer_id, l.post_id, l.active, l.weight, l.changed_at, l.changed_by_event
             FROM likes l JOIN unnest($1::int8[], $2::int8[], $3::text[]) AS t(u, i, p)
               ON l.user_id = t.u AND l.influencer_id = t.i AND l.post_id = t.p
             ORDER BY 1, 2, 3 FOR UPDATE OF l",
        ),
    };
    let mut query = sqlx::query(insert).bind(&columns.users).bind(&columns.influencers);
    if toggle == Toggle::Like {
        query = query.bind(&columns.posts);
    }
    query.execute(&mut *conn).await?;

    let mut query = sqlx::query_as::<_, (i64, i64, String, bool, f32, DateTime<Utc>, String)>(select)
        .bind(&columns.users)
        .bind(&columns.influencers);
    if toggle == Toggle::Like {
        query = query.bind(&columns.posts);
    }
    let rows = query.fetch_all(&mut *conn).await?;
    Ok(rows
        .into_iter()
        .filter(|row| !row.6.is_empty())
        .map(|(user_id, influencer_id, post_id, active, weight, changed_at, changed_by_event)| {
            (
                ToggleKey { user_id, influencer_id, post_id },
                ToggleState { active, weight, changed_at, changed_by_event },
            )
        })
        .collect())
}

pub async fn write_toggles(
    conn: &mut PgConnection,
    toggle: Toggle,
    rows: &[(ToggleKey, ToggleState)],
) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let columns = ToggleColumns::of(rows.iter().map(|(key, _)| key));
    let active: Vec<bool> = rows.iter().map(|(_, s)| s.active).collect();
    let weights: Vec<f32> = rows.iter().map(|(_, s)| s.weight).collect();
    let times: Vec<DateTime<Utc>> = rows.iter().map(|(_, s)| s.changed_at).collect();
    let events: Vec<&str> = rows.iter().map(|(_, s)| s.changed_by_event.as_str()).collect();
    let sql = match toggle {
        Toggle::Follow => {
            "UPDATE follows f SET active = t.a, weight = t.w, changed_at = t.c, changed_by_event = t.e
             FROM unnest($1::int8[], $2::int8[], $3::text[], $4::bool[], $5::float4[], $6::timestamptz[], $7::text[])
                  AS t(u, i, p, a, w, c, e)
             WHERE f.user_id = t.u AND f.influencer_id = t.i"
        }
        Toggle::Like => {
            "UPDATE likes l SET active = t.a, weight = t.w, changed_at = t.c, changed_by_event = t.e
             FROM unnest($1::int8[], $2::int8[], $3::text[], $4::bool[], $5::float4[], $6::timestamptz[], $7::text[])
                  AS t(u, i, p, a, w, c, e)
             WHERE l.user_id = t.u AND l.influencer_id = t.i AND l.post_id = t.p"
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

/// Adds reference-score deltas (see interest::affinity), keys in sorted order.
pub async fn add_affinity(conn: &mut PgConnection, deltas: &BTreeMap<(i64, i64), f64>) -> Result<(), sqlx::Error> {
    if deltas.is_empty() {
        return Ok(());
    }
    let users: Vec<i64> = deltas.keys().map(|k| k.0).collect();
    let influencers: Vec<i64> = deltas.keys().map(|k| k.1).collect();
    let scores: Vec<f64> = deltas.values().copied().collect();
    sqlx::query(
        "INSERT INTO affinity (user_id, influencer_id, score_ref)
         SELECT * FROM unnest($1::int8[], $2::int8[], $3::float8[])
         ON CONFLICT (user_id, influencer_id)
         DO UPDATE SET score_ref = affinity.score_ref + excluded.score_ref, updated_at = now()",
    )
    .bind(users)
    .bind(influencers)
    .bind(scores)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
