//! Served lists: every recommendations answer, feed page and generation gets an id that
//! events echo as `served_id`, and is recorded (user, items by rank, model version,
//! experiment variant, time) for attribution. Recording is off the request path: a bounded
//! channel to one writer task that inserts in batches; when the channel is full the list
//! is dropped and counted (`stylecast_served_lists_dropped_total`), never waited on.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::experiment::Assignment;
use crate::store::served::{self as store, ServedRow};

/// `[served]`: how impressions are written and kept.
#[derive(Debug, Clone, Deserialize)]
pub struct ServedSettings {
    /// Record served lists at all (ids are returned either way).
    pub record: bool,
    /// Lists queued in memory before new ones are dropped.
    pub queue_capacity: usize,
    /// Lists per insert.
    pub batch_size: usize,
    /// Longest a list waits in memory before its batch is written.
    pub flush_interval_ms: u64,
    /// Lists older than this are deleted (0 keeps them forever).
    pub retention_days: f64,
    /// How often retention runs.
    pub retention_interval_secs: u64,
}

/// What a response says about how it was served.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ServedTag {
    /// Echo it as `served_id` on events that follow from this answer.
    pub served_id: Uuid,
    /// The experiment this user's answer came from (absent: the defaults).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experiment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl ServedTag {
    /// A fresh id (v7: time-ordered, so the table's index stays append-mostly).
    pub fn new(assignment: Option<&Assignment>) -> Self {
        Self::with_id(Uuid::now_v7(), assignment)
    }

    pub fn with_id(served_id: Uuid, assignment: Option<&Assignment>) -> Self {
        Self {
            served_id,
            experiment: assignment.map(|a| a.experiment.clone()),
            variant: assignment.map(|a| a.variant.clone()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    Recommendations,
    Feed,
    Generation,
}

impl Surface {
    fn as_str(self) -> &'static str {
        match self {
            Self::Recommendations => "recommendations",
            Self::Feed => "feed",
            Self::Generation => "generation",
        }
    }
}

/// One served list, as the surfaces hand it over.
#[derive(Debug, Clone)]
pub struct ServedList {
    pub tag: ServedTag,
    pub surface: Surface,
    pub user: String,
    /// Influencer external ids by rank (None for a slot without one, a feed's blend).
    pub influencers: Vec<Option<String>>,
    /// Image ids by rank (feed slots, a generation's image).
    pub image_ids: Vec<Option<String>>,
    pub model_version: Option<i64>,
    pub served_at: DateTime<Utc>,
}

impl ServedList {
    fn into_row(self) -> ServedRow {
        let assignment = self.tag.experiment.zip(self.tag.variant);
        ServedRow {
            id: self.tag.served_id,
            surface: self.surface.as_str(),
            user: self.user,
            influencers: self.influencers,
            image_ids: self.image_ids,
            model_version: self.model_version,
            assignment,
            served_at: self.served_at,
        }
    }
}

/// What the writer receives: a list to write, or a request to write everything queued now.
enum Message {
    List(ServedList),
    Flush(oneshot::Sender<()>),
}

/// The sending side, cloned into every surface.
#[derive(Clone)]
pub struct Impressions {
    sender: Option<mpsc::Sender<Message>>,
}

impl Impressions {
    /// No recording (CLI tools, `served.record = false`).
    pub fn disabled() -> Self {
        Self { sender: None }
    }

    /// Starts the writer; it drains what is queued and stops once `stop` turns true.
    pub fn start(
        pool: PgPool,
        settings: &ServedSettings,
        stop: watch::Receiver<bool>,
    ) -> (Self, Option<JoinHandle<()>>) {
        if !settings.record {
            return (Self::disabled(), None);
        }
        let (sender, receiver) = mpsc::channel(settings.queue_capacity.max(1));
        let writer = tokio::spawn(write_batches(pool, settings.clone(), receiver, stop));
        (Self { sender: Some(sender) }, Some(writer))
    }

    /// Queues a list for writing; never waits.
    pub fn record(&self, list: ServedList) {
        let Some(sender) = &self.sender else { return };
        if sender.try_send(Message::List(list)).is_err() {
            metrics::counter!("stylecast_served_lists_dropped_total").increment(1);
        }
    }

    /// Writes every list queued so far before returning (erasure runs after it, so no list
    /// naming the person lands after their rows are deleted). Bounded by `timeout`.
    pub async fn flush(&self, timeout: Duration) {
        let Some(sender) = &self.sender else { return };
        let (done, written) = oneshot::channel();
        let flushed = async {
            if sender.send(Message::Flush(done)).await.is_ok() {
                let _ = written.await;
            }
        };
        if tokio::time::timeout(timeout, flushed).await.is_err() {
            tracing::warn!("served lists were not flushed in time");
        }
    }
}

async fn write_batches(
    pool: PgPool,
    settings: ServedSettings,
    mut receiver: mpsc::Receiver<Message>,
    mut stop: watch::Receiver<bool>,
) {
    let batch_size = settings.batch_size.max(1);
    let flush_every = Duration::from_millis(settings.flush_interval_ms.max(1));
    let retention_every = Duration::from_secs(settings.retention_interval_secs.max(1));
    let mut last_retention: Option<tokio::time::Instant> = None;
    let mut batch: Vec<ServedList> = Vec::with_capacity(batch_size);
    let mut flushed: Vec<oneshot::Sender<()>> = Vec::new();
    loop {
        let deadline = tokio::time::sleep(flush_every);
        tokio::pin!(deadline);
        let stopping = loop {
            tokio::select! {
                received = receiver.recv() => match received {
                    Some(Message::List(list)) => {
                        batch.push(list);
                        if batch.len() >= batch_size { break false; }
                    }
                    Some(Message::Flush(done)) => {
                        flushed.push(done);
                        break false;
                    }
                    None => break true,
                },
                () = &mut deadline => break false,
                _ = stop.changed() => break true,
            }
        };
        if stopping {
            while let Ok(message) = receiver.try_recv() {
                match message {
                    Message::List(list) => batch.push(list),
                    Message::Flush(done) => flushed.push(done),
                }
            }
        }
        for chunk in batch.chunks(batch_size) {
            write(&pool, chunk).await;
        }
        batch.clear();
        for done in flushed.drain(..) {
            let _ = done.send(());
        }
        if stopping {
            return;
        }
        if settings.retention_days > 0.0 && last_retention.is_none_or(|at| at.elapsed() >= retention_every) {
            last_retention = Some(tokio::time::Instant::now());
            enforce_retention(&pool, settings.retention_days).await;
        }
    }
}

/// One insert, retried once (a dropped connection); a batch that fails twice is dropped
/// and counted: impressions are analytics, and holding them would grow memory without end.
async fn write(pool: &PgPool, lists: &[ServedList]) {
    let rows: Vec<ServedRow> = lists.iter().cloned().map(ServedList::into_row).collect();
    for attempt in 1..=2 {
        match store::insert(pool, &rows).await {
            Ok(()) => {
                metrics::counter!("stylecast_served_lists_written_total").increment(rows.len() as u64);
                return;
            }
            Err(err) if attempt == 1 => {
                tracing::warn!(error = %err, lists = rows.len(), "writing served lists failed; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(err) => {
                tracing::warn!(error = %err, lists = rows.len(), "served lists dropped");
                metrics::counter!("stylecast_served_lists_dropped_total").increment(rows.len() as u64);
            }
        }
    }
}

async fn enforce_retention(pool: &PgPool, days: f64) {
    let cutoff = Utc::now() - chrono::Duration::milliseconds((days * 86_400_000.0) as i64);
    match store::delete_before(pool, cutoff).await {
        Ok(0) => {}
        Ok(removed) => tracing::info!(removed, "served-list retention removed old lists"),
        Err(err) => tracing::warn!(error = %err, "served-list retention failed; will retry"),
    }
}
