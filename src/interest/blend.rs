//! The one function that turns a user's interests into style weights: a softmax with a
//! temperature over the user's scores for influencers that have a usable style. Both
//! `GET /v1/users/{user}/interests` and generation call it.

use serde::Serialize;
use sqlx::PgPool;

use crate::recommend::Recommender;
use crate::store::vectors;

/// Where a blend's weights came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BlendSource {
    /// One influencer chosen by the caller.
    Influencer,
    /// Explicit weights from the caller.
    Mix,
    /// The user's interests: ALS scores when the model places the user, else affinity.
    Interests,
    /// The user has no interest in any styled influencer yet: decayed popularity.
    Popularity,
}

impl BlendSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Influencer => "influencer",
            Self::Mix => "mix",
            Self::Interests => "interests",
            Self::Popularity => "popularity",
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Weighted {
    pub influencer: String,
    pub weight: f64,
    /// The score the weight came from (ALS score, affinity or popularity).
    pub score: f64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Blend {
    pub source: BlendSource,
    /// The embedding model version whose scores were used, if any.
    pub model_version: Option<i64>,
    /// Sorted by weight, largest first; weights sum to 1.
    pub weights: Vec<Weighted>,
}

/// The user's interest blend over `styled` influencers (external ids), as their experiment
/// variant (if any) sets it.
pub async fn interests(
    pool: &PgPool,
    recommender: &Recommender,
    styled: &[String],
    user: &str,
    k: usize,
    temperature: f64,
) -> Result<Blend, sqlx::Error> {
    // The user's experiment variant may score with another model or blend at another
    // temperature.
    let treatment = recommender
        .experiments()
        .assign(user)
        .await
        .map(|a| a.treatment)
        .unwrap_or_default();
    let temperature = treatment.blend_temperature.unwrap_or(temperature);
    let user_id = vectors::user_id(pool, user).await?;
    // Influencers the user hid ("not interested") never enter their blend.
    let hidden = match user_id {
        Some(id) => vectors::hidden_named(pool, id).await?,
        None => Vec::new(),
    };
    let styled: Vec<String> = styled.iter().filter(|s| !hidden.contains(s)).cloned().collect();
    let styled = styled.as_slice();
    let is_styled = |id: &str| styled.iter().any(|s| s == id);
    let mut source = BlendSource::Interests;
    let mut model_version = None;
    let mut scored: Vec<(String, f64)> = Vec::new();
    if let Some(user_id) = user_id {
        if let Some((version, scores)) = recommender.scores_of(user_id, styled, treatment.model_version).await? {
            model_version = Some(version);
            scored = scores;
        }
        if scored.is_empty() {
            model_version = None;
            scored = vectors::user_affinity_named(pool, user_id)
                .await?
                .into_iter()
                .filter(|s| is_styled(&s.0))
                .collect();
        }
    }
    if scored.is_empty() {
        source = BlendSource::Popularity;
        scored = recommender.popularity().ranking().await?.scores_of(styled);
    }
    if scored.is_empty() {
        // Nobody has engaged with any styled influencer: every style counts the same.
        scored = styled.iter().map(|s| (s.clone(), 0.0)).collect();
    }
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    scored.truncate(k.max(1));
    Ok(Blend {
        source,
        model_version,
        weights: softmax(scored, temperature),
    })
}

/// w_i = exp(ŝ_i / T) / Σ exp(ŝ_j / T), computed stably, over the user's scores scaled by
/// their largest magnitude (ŝ = s / max|s|, so the top score is 1). ALS scores, affinity and
/// popularity live on different scales: popularity runs 65–90 on the demo data, where a raw
/// softmax at T = 0.25 gave one or two influencers all the weight. Scaled, T means the
/// same for every source; the reported `score` stays the raw one.
pub fn softmax(scored: Vec<(String, f64)>, temperature: f64) -> Vec<Weighted> {
    let t = temperature.max(1e-6);
    let scale = scored.iter().map(|s| s.1.abs()).fold(0.0, f64::max);
    let scale = if scale > 0.0 && scale.is_finite() { scale } else { 1.0 };
    let top = scored.iter().map(|s| s.1 / scale).fold(f64::NEG_INFINITY, f64::max);
    let exps: Vec<f64> = scored.iter().map(|s| ((s.1 / scale - top) / t).exp()).collect();
    let total: f64 = exps.iter().sum();
    scored
        .into_iter()
        .zip(exps)
        .map(|((influencer, score), e)| Weighted {
            influencer,
            weight: e / total,
            score,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_weights_sum_to_one_and_temperature_sharpens() {
        let scores = vec![("a".to_string(), 2.0), ("b".to_string(), 1.0), ("c".to_string(), 0.0)];
        let soft = softmax(scores.clone(), 1.0);
        assert!((soft.iter().map(|w| w.weight).sum::<f64>() - 1.0).abs() < 1e-12);
        assert!(soft[0].weight > soft[1].weight && soft[1].weight > soft[2].weight);
        let sharp = softmax(scores.clone(), 0.05);
        assert!(sharp[0].weight > 0.99);
        let flat = softmax(scores, 100.0);
        assert!((flat[0].weight - 1.0 / 3.0).abs() < 0.01);
    }

    #[test]
    fn the_temperature_means_the_same_whatever_the_scale_of_the_scores() {
        // Popularity on the demo data: a few points apart at 65–90. Unscaled, T = 0.25 gave
        // 0.5 / 0.5 / 1e-29 / 1e-46.
        let popularity = vec![
            ("noir_nadia".to_string(), 90.0),
            ("vintage_vera".to_string(), 90.0),
            ("neon_nova".to_string(), 73.0),
            ("golden_gabe".to_string(), 65.0),
        ];
        let weights = softmax(popularity.clone(), 0.25);
        assert!(weights.iter().all(|w| w.weight > 0.05 && w.weight < 0.6), "{weights:?}");
        assert_eq!(weights[2].score, 73.0, "the raw score is reported");
        let tenfold: Vec<(String, f64)> = popularity.into_iter().map(|(id, s)| (id, s * 10.0)).collect();
        let same = softmax(tenfold, 0.25);
        for (a, b) in weights.iter().zip(&same) {
            assert!((a.weight - b.weight).abs() < 1e-12);
        }
    }
}
