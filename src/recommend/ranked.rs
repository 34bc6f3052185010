//! One ranked influencer, as answers list them (apart from `mod.rs`, so the popularity
//! ranking can make them without importing the recommender).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Scored {
    pub influencer: String,
    pub score: f64,
}
