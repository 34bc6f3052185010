//! Interests: what a user's engagement says they care about.

pub mod affinity;

pub use affinity::AffinityModel;
