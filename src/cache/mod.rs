//! A byte cache: Redis when it is configured and answering, an in-process cache always.
//!
//! Every write goes to both, every read tries Redis first; a Redis error or timeout falls
//! back to the in-process cache, so a Redis outage degrades sharing across replicas but
//! never fails a request.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use redis::aio::ConnectionManager;
use redis::AsyncCommands;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

/// `[redis]`: the shared cache (and the feed job stream).
#[derive(Debug, Clone, Deserialize)]
pub struct RedisSettings {
    /// Absent: the in-process cache serves alone.
    pub url: Option<SecretString>,
    /// Prefix for every key this process writes (tests give each run its own).
    pub key_prefix: String,
    /// Entries kept by the in-process fallback cache.
    pub memory_capacity: u64,
    /// Milliseconds a Redis command may take before the fallback serves.
    pub timeout_ms: u64,
}

/// Which cache answered the last probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CacheKind {
    Redis,
    Memory,
}

pub struct Cache {
    redis: Option<RedisBackend>,
    memory: moka::future::Cache<String, Bytes>,
    prefix: String,
}

struct RedisBackend {
    client: redis::Client,
    connection: Mutex<Option<ConnectionManager>>,
    last_connect_attempt: Mutex<Option<Instant>>,
    timeout: Duration,
    healthy: AtomicBool,
}

/// A failed connect is not retried more often than this.
const RECONNECT_INTERVAL: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
#[error("invalid REDIS_URL")]
pub struct InvalidRedisUrl(#[source] redis::RedisError);

/// Where this deployment's keys live in Redis: the configured prefix, then the database's
/// deployment id (`store::deployment_id`). Two databases on one Redis, or a database reset
/// under a running Redis, never see each other's keys.
pub fn namespace(settings: &RedisSettings, deployment: uuid::Uuid) -> String {
    format!("{}{}:", settings.key_prefix, deployment.simple())
}

impl Cache {
    pub fn new(settings: &RedisSettings, deployment: uuid::Uuid) -> Result<Self, InvalidRedisUrl> {
        let redis = match &settings.url {
            Some(url) => Some(RedisBackend {
                client: redis::Client::open(url.expose_secret()).map_err(InvalidRedisUrl)?,
                connection: Mutex::new(None),
                last_connect_attempt: Mutex::new(None),
                timeout: Duration::from_millis(settings.timeout_ms),
                healthy: AtomicBool::new(false),
            }),
            None => None,
        };
        Ok(Self {
            redis,
            memory: moka::future::Cache::builder()
                .max_capacity(settings.memory_capacity)
                .time_to_live(Duration::from_secs(3600))
                .build(),
            prefix: namespace(settings, deployment),
        })
    }

    fn key(&self, key: &str) -> String {
        format!("{}{}", self.prefix, key)
    }

    pub async fn get(&self, key: &str) -> Option<Bytes> {
        let key = self.key(key);
        if let Some(redis) = &self.redis {
            match redis
                .run(
                    |mut conn, k| async move { conn.get::<_, Option<Vec<u8>>>(k).await },
                    key.clone(),
                )
                .await
            {
                Some(Ok(value)) => return value.map(Bytes::from),
                Some(Err(err)) => redis.mark_unhealthy(&err),
                None => {}
            }
        }
        self.memory.get(&key).await
    }

    pub async fn set(&self, key: &str, value: Bytes, ttl: Duration) {
        let key = self.key(key);
        self.memory.insert(key.clone(), value.clone()).await;
        if let Some(redis) = &self.redis {
            let seconds = ttl.as_secs().max(1);
            let result = redis
                .run(
                    |mut conn, k| async move { conn.set_ex::<_, _, ()>(k, value.to_vec(), seconds).await },
                    key,
                )
                .await;
            if let Some(Err(err)) = result {
                redis.mark_unhealthy(&err);
            }
        }
    }

    pub async fn delete(&self, key: &str) {
        let key = self.key(key);
        self.memory.invalidate(&key).await;
        if let Some(redis) = &self.redis {
            if let Some(Err(err)) = redis
                .run(|mut conn, k| async move { conn.del::<_, ()>(k).await }, key)
                .await
            {
                redis.mark_unhealthy(&err);
            }
        }
    }

    /// Deletes many keys in one round trip.
    pub async fn delete_many(&self, keys: impl IntoIterator<Item = String>) {
        let keys: Vec<String> = keys.into_iter().map(|key| self.key(&key)).collect();
        if keys.is_empty() {
            return;
        }
        for key in &keys {
            self.memory.invalidate(key).await;
        }
        if let Some(redis) = &self.redis {
            if let Some(Err(err)) = redis
                .run(|mut conn, k| async move { conn.del::<_, ()>(k).await }, keys)
                .await
            {
                redis.mark_unhealthy(&err);
            }
        }
    }

    /// Probes Redis now and says which cache serves.
    /// Deletes every entry whose key starts with `prefix` (an influencer's erasure drops every
    /// cached recommendation list, since any of them may name the influencer). Redis is
    /// walked with SCAN, a page of keys per step, never KEYS.
    pub async fn delete_prefix(&self, prefix: &str) -> usize {
        let full = self.key(prefix);
        let in_memory: Vec<String> = self
            .memory
            .iter()
            .filter(|(key, _)| key.starts_with(&full))
            .map(|(key, _)| key.as_ref().clone())
            .collect();
        for key in &in_memory {
            self.memory.invalidate(key).await;
        }
        let mut removed = in_memory.len();
        let Some(redis) = &self.redis else {
            return removed;
        };
        let pattern = format!("{full}*");
        let mut cursor: u64 = 0;
        loop {
            let step = redis
                .run(
                    |mut conn, (cursor, pattern): (u64, String)| async move {
                        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                            .arg(cursor)
                            .arg("MATCH")
                            .arg(pattern)
                            .arg("COUNT")
                            .arg(1000)
                            .query_async(&mut conn)
                            .await?;
                        if !keys.is_empty() {
                            conn.del::<_, ()>(&keys).await?;
                        }
                        Ok((next, keys.len()))
                    },
                    (cursor, pattern.clone()),
                )
                .await;
            match step {
                Some(Ok((next, deleted))) => {
                    removed += deleted;
                    if next == 0 {
                        break;
                    }
                    cursor = next;
                }
                Some(Err(err)) => {
                    redis.mark_unhealthy(&err);
                    break;
                }
                None => break,
            }
        }
        removed
    }

    pub async fn live_kind(&self) -> CacheKind {
        let Some(redis) = &self.redis else {
            return CacheKind::Memory;
        };
        let pong = redis
            .run(
                |mut conn, _| async move { redis::cmd("PING").query_async::<String>(&mut conn).await },
                (),
            )
            .await;
        match pong {
            Some(Ok(_)) => CacheKind::Redis,
            Some(Err(err)) => {
                redis.mark_unhealthy(&err);
                CacheKind::Memory
            }
            None => CacheKind::Memory,
        }
    }
}

impl RedisBackend {
    /// Runs one command with the timeout; None when no connection could be had.
    async fn run<T, A, F, Fut>(&self, command: F, arg: A) -> Option<redis::RedisResult<T>>
    where
        F: FnOnce(ConnectionManager, A) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let conn = self.connection().await?;
        let outcome = match tokio::time::timeout(self.timeout, command(conn, arg)).await {
            Ok(result) => result,
            Err(_) => Err(redis::RedisError::from(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "redis timed out",
            ))),
        };
        if outcome.is_ok() && !self.healthy.swap(true, Ordering::Relaxed) {
            tracing::info!("redis cache is serving");
        }
        Some(outcome)
    }

    async fn connection(&self) -> Option<ConnectionManager> {
        let mut slot = self.connection.lock().await;
        if let Some(conn) = slot.as_ref() {
            return Some(conn.clone());
        }
        {
            let mut last = self.last_connect_attempt.lock().await;
            if last.is_some_and(|at| at.elapsed() < RECONNECT_INTERVAL) {
                return None;
            }
            *last = Some(Instant::now());
        }
        match tokio::time::timeout(self.timeout * 4, ConnectionManager::new(self.client.clone())).await {
            Ok(Ok(conn)) => {
                *slot = Some(conn.clone());
                Some(conn)
            }
            Ok(Err(err)) => {
                self.mark_unhealthy(&err);
                None
            }
            Err(_) => {
                tracing::warn!("connecting to redis timed out; the in-process cache serves");
                None
            }
        }
    }

    fn mark_unhealthy(&self, err: &redis::RedisError) {
        if self.healthy.swap(false, Ordering::Relaxed) {
            tracing::warn!(error = %err, "redis failed; the in-process cache serves");
        }
        metrics::counter!("stylecast_cache_redis_errors_total").increment(1);
    }
}
