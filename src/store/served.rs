//! Served lists (impressions) and the experiment assignments they carry, written in batches
//! by `served::Impressions`; retention deletes old lists.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

/// One served list as stored. Rank n (1-based) is element n of `influencers` / `image_ids`.
#[derive(Debug, Clone)]
pub struct ServedRow {
    pub id: Uuid,
    /// `recommendations`, `feed` or `generation` (the table checks it).
    pub surface: &'static str,
    pub user: String,
    pub influencers: Vec<Option<String>>,
    pub image_ids: Vec<Option<String>>,
    pub model_version: Option<i64>,
    /// (experiment, variant) when an experiment served it.
    pub assignment: Option<(String, String)>,
    pub served_at: DateTime<Utc>,
}

/// Marks an absent element inside the comma-joined arrays below. Neither external ids of
/// this form nor image ids (hex) can be it: ids are checked at ingest, and a comma or this
/// marker in an external id would break the encoding, so such lists keep those items NULL.
const ABSENT: &str = "\u{1}";

/// The arrays go in as one text per row (Postgres `unnest` takes no ragged 2-D arrays),
/// joined with a unit separator and split again in SQL.
fn joined(items: &[Option<String>]) -> String {
    items
        .iter()
        .map(|item| match item.as_deref() {
            Some(id) if !id.contains('\u{1f}') && id != ABSENT => id,
            _ => ABSENT,
        })
        .collect::<Vec<_>>()
        .join("\u{1f}")
}

/// Lists served this long before an erasure may still be in flight when it runs.
const IN_FLIGHT: &str = "1 minute";

/// Users of `rows` erased since shortly before their list was served: their lists were
/// queued while the erasure ran (it writes what was queued before it starts) and must not
/// bring the person back. Skipped at the cost of one index probe when nobody was erased
/// lately.
async fn erased_meanwhile(
    tx: &mut sqlx::PgConnection,
    rows: &[ServedRow],
) -> Result<std::collections::HashSet<String>, sqlx::Error> {
    let Some(first) = rows.iter().map(|r| r.served_at).min() else {
        return Ok(Default::default());
    };
    let recent: bool = sqlx::query_scalar(&format!(
        "SELECT EXISTS (SELECT 1 FROM erasure_log WHERE subject_kind = 'user' AND erased_at >= $1 - interval '{IN_FLIGHT}')"
    ))
    .bind(first)
    .fetch_one(&mut *tx)
    .await?;
    if !recent {
        return Ok(Default::default());
    }
    let users: Vec<&str> = rows.iter().map(|r| r.user.as_str()).collect();
    let times: Vec<DateTime<Utc>> = rows.iter().map(|r| r.served_at).collect();
    // The log keeps hex SHA-256 of the deployment's salt and the id (erasure::ErasureLog).
    let erased: Vec<String> = sqlx::query_scalar(&format!(
        "SELECT DISTINCT r.u FROM unnest($1::text[], $2::timestamptz[]) AS r(u, t), erasure_salt s
         WHERE EXISTS (SELECT 1 FROM erasure_log e
                       WHERE e.subject_kind = 'user'
                         AND e.subject_hash = encode(sha256(s.salt || convert_to(r.u, 'UTF8')), 'hex')
                         AND e.erased_at >= r.t - interval '{IN_FLIGHT}')"
    ))
    .bind(&users)
    .bind(&times)
    .fetch_all(&mut *tx)
    .await?;
    Ok(erased.into_iter().collect())
}

/// Inserts the lists and, for those an experiment served, the user's assignment (the first
/// exposure wins; assignment is deterministic, so later ones agree). One transaction. Lists
/// of users erased meanwhile are left out.
pub async fn insert(pool: &PgPool, rows: &[ServedRow]) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    let erased = erased_meanwhile(&mut tx, rows).await?;
    let kept: Vec<&ServedRow> = rows.iter().filter(|r| !erased.contains(&r.user)).collect();
    let rows = kept;
    let mut ids = Vec::with_capacity(rows.len());
    let mut surfaces = Vec::with_capacity(rows.len());
    let mut users = Vec::with_capacity(rows.len());
    let mut influencers = Vec::with_capacity(rows.len());
    let mut images = Vec::with_capacity(rows.len());
    let mut versions = Vec::with_capacity(rows.len());
    let mut experiments = Vec::with_capacity(rows.len());
    let mut variants = Vec::with_capacity(rows.len());
    let mut times = Vec::with_capacity(rows.len());
    for row in &rows {
        ids.push(row.id);
        surfaces.push(row.surface);
        users.push(row.user.as_str());
        influencers.push(joined(&row.influencers));
        images.push(joined(&row.image_ids));
        versions.push(row.model_version);
        experiments.push(row.assignment.as_ref().map(|a| a.0.as_str()));
        variants.push(row.assignment.as_ref().map(|a| a.1.as_str()));
        times.push(row.served_at);
    }
    // Impressions are analytics, not acknowledged data: the commit need not wait for the WAL
    // flush (a crash loses at most the last moments' lists, never an event), which keeps
    // the writer's fsyncs off the disk the request path shares.
    sqlx::query("SET LOCAL synchronous_commit = off")
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO served_lists (id, surface, user_external_id, influencers, image_ids, model_version,
                                   experiment, variant, served_at)
         SELECT id, surface, u, string_to_array(i, E'\\x1f', E'\\x01'), string_to_array(m, E'\\x1f', E'\\x01'),
                v, x, var, t
         FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int8[], $7::text[], $8::text[],
                     $9::timestamptz[]) AS r(id, surface, u, i, m, v, x, var, t)
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(&ids)
    .bind(&surfaces)
    .bind(&users)
    .bind(&influencers)
    .bind(&images)
    .bind(&versions)
    .bind(&experiments)
    .bind(&variants)
    .bind(&times)
    .execute(&mut *tx)
    .await?;
    if rows.iter().all(|row| row.assignment.is_none()) {
        return tx.commit().await;
    }
    // Only experiments that still exist (a list may outlive a deleted test database row).
    sqlx::query(
        "INSERT INTO experiment_assignments (experiment, user_external_id, variant, assigned_at)
         SELECT DISTINCT ON (r.x, r.u) r.x, r.u, r.var, r.t
         FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[]) AS r(x, u, var, t)
         JOIN experiments e ON e.name = r.x
         WHERE r.x IS NOT NULL
         ORDER BY r.x, r.u, r.t
         ON CONFLICT (experiment, user_external_id) DO NOTHING",
    )
    .bind(&experiments)
    .bind(&users)
    .bind(&variants)
    .bind(&times)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// Deletes lists served before `cutoff`; how many went.
pub async fn delete_before(pool: &PgPool, cutoff: DateTime<Utc>) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query("DELETE FROM served_lists WHERE served_at < $1")
        .bind(cutoff)
        .execute(pool)
        .await?
        .rows_affected())
}
