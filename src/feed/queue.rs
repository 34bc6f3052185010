//! Feed jobs: a Redis Stream with a consumer group when Redis answers at start-up (any
//! number of workers on any machine; a job is acknowledged only after its image is stored,
//! and XAUTOCLAIM hands jobs of dead workers to live ones), else an in-process queue for
//! the single-machine case. Jobs only point at rows in Postgres, so a job delivered twice
//! or lost costs work or delay, never a wrong image.

use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::streams::{StreamAutoClaimOptions, StreamId, StreamReadOptions, StreamReadReply};
use redis::AsyncCommands;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, Mutex};

use super::settings::FeedSettings;
use crate::cache::RedisSettings;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "job", rename_all = "snake_case")]
pub enum Job {
    /// Re-plan the user's first page (their photo, interests or recommendations changed).
    Refresh { user: String },
    /// Render one slot for one spec.
    Render {
        user: String,
        slot: String,
        spec: String,
        rank: Option<i32>,
        score: Option<f64>,
        recommendation_model: Option<i64>,
    },
}

/// A job handed to one worker; `ack` once it is done.
#[derive(Debug)]
pub struct Delivery {
    pub id: String,
    pub job: Job,
    /// Whether another worker had it before (taken over after `reclaim_idle_ms`).
    pub reclaimed: bool,
}

pub enum JobQueue {
    Streams(StreamQueue),
    Memory(MemoryQueue),
}

pub struct StreamQueue {
    conn: ConnectionManager,
    stream: String,
    group: String,
    reclaim_idle_ms: u64,
}

pub struct MemoryQueue {
    sender: mpsc::Sender<Job>,
    receiver: Mutex<mpsc::Receiver<Job>>,
}

const MEMORY_CAPACITY: usize = 100_000;

impl JobQueue {
    /// Redis Streams when Redis is configured and answers now, else in-process.
    pub async fn connect(redis: &RedisSettings, feed: &FeedSettings, deployment: uuid::Uuid) -> Self {
        if let Some(url) = &redis.url {
            let stream = format!("{}{}", crate::cache::namespace(redis, deployment), feed.stream);
            match StreamQueue::connect(url.expose_secret(), redis, feed, stream).await {
                Ok(queue) => return Self::Streams(queue),
                Err(err) => tracing::warn!(error = %err, "redis unavailable for feed jobs; using an in-process queue"),
            }
        }
        Self::memory()
    }

    pub fn memory() -> Self {
        let (sender, receiver) = mpsc::channel(MEMORY_CAPACITY);
        Self::Memory(MemoryQueue {
            sender,
            receiver: Mutex::new(receiver),
        })
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Self::Streams(_) => "redis_streams",
            Self::Memory(_) => "memory",
        }
    }

    /// Queues jobs; a failure is logged and counted, not returned: the slots stay pending in
    /// Postgres and the next feed read after `requeue_after_secs` queues them again.
    pub async fn push(&self, jobs: Vec<Job>) {
        if jobs.is_empty() {
            return;
        }
        let count = jobs.len() as u64;
        let result = match self {
            Self::Streams(queue) => queue.push(&jobs).await.map_err(|e| e.to_string()),
            Self::Memory(queue) => queue.push(jobs),
        };
        match result {
            Ok(()) => metrics::counter!("stylecast_feed_jobs_queued_total").increment(count),
            Err(error) => {
                metrics::counter!("stylecast_feed_jobs_queue_errors_total").increment(count);
                tracing::warn!(%error, "queueing feed jobs failed; they are queued again on a later feed read");
            }
        }
    }

    /// The next job for this consumer: first one a dead worker left behind, then a new one;
    /// None when there is none within `wait`.
    pub async fn next(&self, consumer: &str, wait: Duration) -> Result<Option<Delivery>, redis::RedisError> {
        match self {
            Self::Streams(queue) => queue.next(consumer, wait).await,
            Self::Memory(queue) => Ok(queue.next(wait).await),
        }
    }

    pub async fn ack(&self, delivery: &Delivery) -> Result<(), redis::RedisError> {
        match self {
            Self::Streams(queue) => queue.ack(&delivery.id).await,
            Self::Memory(_) => Ok(()),
        }
    }

    /// Removes the user's queued jobs (erasure): they name the user. Returns how many went.
    /// The in-process queue lives only in this process's memory and its jobs name rows that
    /// are gone, so a worker drops them; it reports 0.
    pub async fn forget_user(&self, user: &str) -> Result<usize, redis::RedisError> {
        match self {
            Self::Streams(queue) => queue.forget_user(user).await,
            Self::Memory(_) => Ok(0),
        }
    }
}

impl Job {
    fn user(&self) -> &str {
        match self {
            Self::Refresh { user } | Self::Render { user, .. } => user,
        }
    }
}

impl StreamQueue {
    async fn connect(
        url: &str,
        redis: &RedisSettings,
        feed: &FeedSettings,
        stream: String,
    ) -> Result<Self, redis::RedisError> {
        let client = redis::Client::open(url)?;
        let timeout = Duration::from_millis(redis.timeout_ms.max(500) * 4);
        let mut conn = tokio::time::timeout(timeout, ConnectionManager::new(client))
            .await
            .map_err(|_| redis::RedisError::from(std::io::Error::new(std::io::ErrorKind::TimedOut, "connect")))??;
        let created: redis::RedisResult<()> = conn.xgroup_create_mkstream(&stream, &feed.group, "0").await;
        if let Err(err) = created {
            if err.code() != Some("BUSYGROUP") {
                return Err(err);
            }
        }
        Ok(Self {
            conn,
            stream,
            group: feed.group.clone(),
            reclaim_idle_ms: feed.reclaim_idle_ms,
        })
    }

    async fn push(&self, jobs: &[Job]) -> Result<(), redis::RedisError> {
        let mut pipe = redis::pipe();
        for job in jobs {
            let body = serde_json::to_string(job).unwrap_or_default();
            pipe.xadd(&self.stream, "*", &[("job", body)]).ignore();
        }
        let mut conn = self.conn.clone();
        pipe.query_async::<()>(&mut conn).await
    }

    async fn next(&self, consumer: &str, wait: Duration) -> Result<Option<Delivery>, redis::RedisError> {
        let mut conn = self.conn.clone();
        let claimed: redis::streams::StreamAutoClaimReply = conn
            .xautoclaim_options(
                &self.stream,
                &self.group,
                consumer,
                self.reclaim_idle_ms,
                "0-0",
                StreamAutoClaimOptions::default().count(1),
            )
            .await?;
        if let Some(entry) = claimed.claimed.into_iter().next() {
            metrics::counter!("stylecast_feed_jobs_reclaimed_total").increment(1);
            return Ok(Some(self.delivery(entry, true)));
        }
        // Polling (not BLOCK) keeps this connection shared; an idle worker asks every ~50 ms.
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let options = StreamReadOptions::default().group(&self.group, consumer).count(1);
            let reply: Option<StreamReadReply> = conn.xread_options(&[&self.stream], &[">"], &options).await?;
            if let Some(entry) = reply.into_iter().flat_map(|r| r.keys).flat_map(|k| k.ids).next() {
                return Ok(Some(self.delivery(entry, false)));
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(None);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn delivery(&self, entry: StreamId, reclaimed: bool) -> Delivery {
        let job = entry
            .get::<String>("job")
            .and_then(|body| serde_json::from_str::<Job>(&body).ok());
        Delivery {
            id: entry.id,
            // An entry this version cannot read is acknowledged as done by the worker.
            job: job.unwrap_or(Job::Refresh { user: String::new() }),
            reclaimed,
        }
    }

    /// Acknowledged jobs are deleted at once, so the stream holds only jobs not yet done:
    /// a scan of it is short.
    async fn forget_user(&self, user: &str) -> Result<usize, redis::RedisError> {
        let mut conn = self.conn.clone();
        let mut theirs: Vec<String> = Vec::new();
        let mut start = "-".to_string();
        loop {
            let page: redis::streams::StreamRangeReply = conn.xrange_count(&self.stream, &start, "+", 1000).await?;
            let Some(last) = page.ids.last().map(|entry| entry.id.clone()) else {
                break;
            };
            let full_page = page.ids.len() == 1000;
            theirs.extend(
                page.ids
                    .into_iter()
                    .filter(|entry| self.delivery(entry.clone(), false).job.user() == user)
                    .map(|entry| entry.id),
            );
            if !full_page {
                break;
            }
            start = format!("({last}");
        }
        if theirs.is_empty() {
            return Ok(0);
        }
        let _: usize = conn.xack(&self.stream, &self.group, &theirs).await?;
        let removed: usize = conn.xdel(&self.stream, &theirs).await?;
        Ok(removed)
    }

    async fn ack(&self, id: &str) -> Result<(), redis::RedisError> {
        let mut conn = self.conn.clone();
        let _: usize = conn.xack(&self.stream, &self.group, &[id]).await?;
        // Acknowledged entries are not needed for replay: keep the stream short.
        let _: usize = conn.xdel(&self.stream, &[id]).await?;
        Ok(())
    }
}

impl MemoryQueue {
    fn push(&self, jobs: Vec<Job>) -> Result<(), String> {
        for job in jobs {
            self.sender
                .try_send(job)
                .map_err(|_| format!("in-process feed queue is full ({MEMORY_CAPACITY} jobs)"))?;
        }
        Ok(())
    }

    async fn next(&self, wait: Duration) -> Option<Delivery> {
        let mut receiver = self.receiver.lock().await;
        let job = tokio::time::timeout(wait, receiver.recv()).await.ok().flatten()?;
        Some(Delivery {
            id: String::new(),
            job,
            reclaimed: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_round_trip_as_tagged_json() {
        let job = Job::Render {
            user: "ana".into(),
            slot: "blend".into(),
            spec: "abc".into(),
            rank: Some(0),
            score: Some(0.5),
            recommendation_model: None,
        };
        let text = serde_json::to_string(&job).expect("serializes");
        assert!(text.contains(r#""job":"render""#));
        assert_eq!(serde_json::from_str::<Job>(&text).ok(), Some(job));
    }

    #[tokio::test]
    async fn the_memory_queue_hands_out_jobs_in_order_and_times_out_when_empty() {
        let queue = JobQueue::memory();
        queue
            .push(vec![
                Job::Refresh { user: "a".into() },
                Job::Refresh { user: "b".into() },
            ])
            .await;
        let first = queue.next("w", Duration::from_millis(10)).await.ok().flatten();
        assert_eq!(first.map(|d| d.job), Some(Job::Refresh { user: "a".into() }));
        let _ = queue.next("w", Duration::from_millis(10)).await;
        assert!(queue
            .next("w", Duration::from_millis(10))
            .await
            .ok()
            .flatten()
            .is_none());
    }
}
