//! The affinity parameters stored beside the scores they produced.

use serde_json::Value;
use sqlx::PgPool;

use crate::interest::AffinityModel;

/// Makes the stored parameters equal the configured ones; when they differ, the additive
/// part of affinity is recomputed from the event log (the `affinity` view applies the new
/// parameters to follows and likes by itself).
/// Returns whether a rebuild ran (never on an empty event log).
pub async fn sync_params(pool: &PgPool, model: &AffinityModel) -> Result<bool, sqlx::Error> {
    let weights: Value = model
        .weights()
        .iter()
        .map(|(kind, w)| (kind.as_str().to_string(), Value::from(*w)))
        .collect();
    let mut tx = pool.begin().await?;
    let (half_life, stored_weights): (f64, Value) =
        sqlx::query_as("SELECT half_life_days, weights FROM affinity_params FOR UPDATE")
            .fetch_one(&mut *tx)
            .await?;
    if (half_life - model.half_life_days()).abs() < 1e-12 && stored_weights == weights {
        tx.rollback().await?;
        return Ok(false);
    }
    sqlx::query("UPDATE affinity_params SET half_life_days = $1, weights = $2")
        .bind(model.half_life_days())
        .bind(&weights)
        .execute(&mut *tx)
        .await?;
    // A fresh database holds the migration's parameters and no events: nothing to rebuild,
    // and nothing an operator needs to hear about.
    let has_events: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM engagement_events)")
        .fetch_one(&mut *tx)
        .await?;
    if has_events {
        tracing::warn!(half_life, %stored_weights, new_half_life = model.half_life_days(), %weights,
            "affinity parameters changed; rebuilding affinity from the event log");
        sqlx::query("SELECT rebuild_state_from_log()").execute(&mut *tx).await?;
    } else {
        tracing::debug!(%weights, "affinity parameters recorded on an empty event log");
    }
    tx.commit().await?;
    Ok(has_events)
}
