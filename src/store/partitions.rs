//! Monthly partitions of `engagement_events`: known ones cached in-process, missing ones
//! created (outside any batch transaction) before a batch that needs them.

use std::collections::BTreeSet;
use std::sync::Mutex;

use chrono::{DateTime, Datelike, Months, NaiveDate, TimeZone, Utc};
use sqlx::PgPool;

/// First instant (UTC) of a month; the unit partitions are made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Month(NaiveDate);

impl Month {
    pub fn of(at: DateTime<Utc>) -> Self {
        Self(NaiveDate::from_ymd_opt(at.year(), at.month(), 1).unwrap_or(NaiveDate::MIN))
    }

    pub fn start(self) -> DateTime<Utc> {
        Utc.from_utc_datetime(&self.0.and_time(chrono::NaiveTime::MIN))
    }

    pub fn plus(self, months: u32) -> Self {
        Self(self.0.checked_add_months(Months::new(months)).unwrap_or(self.0))
    }
}

#[derive(Debug, Default)]
pub struct Partitions {
    known: Mutex<BTreeSet<Month>>,
}

impl Partitions {
    /// Creates the partitions of the given months that this process has not seen yet.
    pub async fn ensure(&self, pool: &PgPool, months: impl IntoIterator<Item = Month>) -> Result<(), sqlx::Error> {
        let missing: Vec<Month> = {
            let known = self.known.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            months
                .into_iter()
                .filter(|m| !known.contains(m))
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect()
        };
        for month in missing {
            let name: String = sqlx::query_scalar("SELECT ensure_event_partition($1)")
                .bind(month.start())
                .fetch_one(pool)
                .await?;
            tracing::debug!(partition = %name, "partition ready");
            self.known
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(month);
        }
        Ok(())
    }

    /// The current month and `ahead` months after it.
    pub async fn ensure_ahead(&self, pool: &PgPool, ahead: u32) -> Result<(), sqlx::Error> {
        let this_month = Month::of(Utc::now());
        self.ensure(pool, (0..=ahead).map(|n| this_month.plus(n))).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_start_at_midnight_utc_on_the_first() {
        let at: DateTime<Utc> = "2026-12-31T23:59:59Z".parse().expect("valid");
        let month = Month::of(at);
        assert_eq!(month.start().to_rfc3339(), "2026-12-01T00:00:00+00:00");
        assert_eq!(month.plus(1).start().to_rfc3339(), "2027-01-01T00:00:00+00:00");
    }
}
