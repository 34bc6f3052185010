//! The per-key request rate limit.

use crate::error::AppError;

/// Requests per key over time (GCRA, the `governor` crate); one per application.
pub struct KeyRateLimiter(governor::DefaultKeyedRateLimiter<String>);

impl KeyRateLimiter {
    /// None when the limit is off (a rate of 0).
    pub fn new(per_second: u32, burst: u32) -> Option<Self> {
        let rate = std::num::NonZeroU32::new(per_second)?;
        let burst = std::num::NonZeroU32::new(burst.max(per_second)).unwrap_or(rate);
        Some(Self(governor::RateLimiter::keyed(
            governor::Quota::per_second(rate).allow_burst(burst),
        )))
    }

    pub fn check(&self, key: &str) -> Result<(), AppError> {
        use governor::clock::Clock;
        self.0.check_key(&key.to_string()).map_err(|not_until| {
            let wait = not_until.wait_time_from(governor::clock::DefaultClock::default().now());
            AppError::RateLimited {
                retry_after_secs: wait.as_secs().max(1),
            }
        })
    }
}
