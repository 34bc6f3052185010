//! Read models of users and influencers: counts and top affinities.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;

use crate::ingest::event::{InfluencerRef, UserRef};
use crate::interest::AffinityModel;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Affine {
    /// The other side's external id.
    pub id: String,
    /// Affinity decayed to the time of the request.
    pub affinity: f64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserSummary {
    pub user: String,
    pub first_seen: DateTime<Utc>,
    pub events_by_kind: BTreeMap<String, i64>,
    /// Influencers the user follows now.
    pub following: i64,
    /// Posts the user likes now.
    pub likes: i64,
    pub top_influencers: Vec<Affine>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct InfluencerSummary {
    pub influencer: String,
    pub display_name: Option<String>,
    pub first_seen: DateTime<Utc>,
    pub events_by_kind: BTreeMap<String, i64>,
    /// Users who follow the influencer now.
    pub followers: i64,
    /// Likes the influencer's posts hold now.
    pub likes: i64,
    pub top_fans: Vec<Affine>,
}

pub async fn user_summary(
    pool: &PgPool,
    model: &AffinityModel,
    user: &UserRef,
    top: i64,
) -> Result<Option<UserSummary>, sqlx::Error> {
    let Some((id, first_seen)) =
        sqlx::query_as::<_, (i64, DateTime<Utc>)>("SELECT id, created_at FROM users WHERE external_id = $1")
            .bind(user.as_str())
            .fetch_optional(pool)
            .await?
    else {
        return Ok(None);
    };
    let events_by_kind = events_by_kind(pool, "user_id", id).await?;
    let (following, likes): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM follows WHERE user_id = $1 AND active),
                (SELECT count(*) FROM likes WHERE user_id = $1 AND active)",
    )
    .bind(id)
    .fetch_one(pool)
    .await?;
    let rows: Vec<(String, f64)> = sqlx::query_as(
        "SELECT i.external_id, a.score_ref FROM affinity a JOIN influencers i ON i.id = a.influencer_id
         WHERE a.user_id = $1 AND a.score_ref > 0 ORDER BY a.score_ref DESC, i.external_id LIMIT $2",
    )
    .bind(id)
    .bind(top)
    .fetch_all(pool)
    .await?;
    Ok(Some(UserSummary {
        user: user.to_string(),
        first_seen,
        events_by_kind,
        following,
        likes,
        top_influencers: decayed(model, rows),
    }))
}

pub async fn influencer_summary(
    pool: &PgPool,
    model: &AffinityModel,
    influencer: &InfluencerRef,
    top: i64,
) -> Result<Option<InfluencerSummary>, sqlx::Error> {
    let Some((id, display_name, first_seen)) = sqlx::query_as::<_, (i64, Option<String>, DateTime<Utc>)>(
        "SELECT id, display_name, created_at FROM influencers WHERE external_id = $1",
    )
    .bind(influencer.as_str())
    .fetch_optional(pool)
    .await?
    else {
        return Ok(None);
    };
    let events_by_kind = events_by_kind(pool, "influencer_id", id).await?;
    let (followers, likes): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM follows WHERE influencer_id = $1 AND active),
                (SELECT count(*) FROM likes WHERE influencer_id = $1 AND active)",
    )
    .bind(id)
    .fetch_one(pool)
    .await?;
    let rows: Vec<(String, f64)> = sqlx::query_as(
        "SELECT u.external_id, a.score_ref FROM affinity a JOIN users u ON u.id = a.user_id
         WHERE a.influencer_id = $1 AND a.score_ref > 0 ORDER BY a.score_ref DESC, u.external_id LIMIT $2",
    )
    .bind(id)
    .bind(top)
    .fetch_all(pool)
    .await?;
    Ok(Some(InfluencerSummary {
        influencer: influencer.to_string(),
        display_name,
        first_seen,
        events_by_kind,
        followers,
        likes,
        top_fans: decayed(model, rows),
    }))
}

async fn events_by_kind(pool: &PgPool, column: &'static str, id: i64) -> Result<BTreeMap<String, i64>, sqlx::Error> {
    let sql = format!("SELECT kind::text, count(*) FROM engagement_events WHERE {column} = $1 GROUP BY kind");
    let rows: Vec<(String, i64)> = sqlx::query_as(&sql).bind(id).fetch_all(pool).await?;
    Ok(rows.into_iter().collect())
}

fn decayed(model: &AffinityModel, rows: Vec<(String, f64)>) -> Vec<Affine> {
    let now = Utc::now();
    rows.into_iter()
        .map(|(id, score_ref)| Affine {
            id,
            affinity: model.score_at(score_ref, now),
        })
        .collect()
}
