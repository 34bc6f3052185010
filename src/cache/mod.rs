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
    /// The in-process copies of generation counters (see `bump_generations`).
    generations: moka::future::Cache<String, u64>,
    prefix: String,
}

/// How long a generation counter lives after its last bump. A counter that expired reads as
/// absent, and an absent counter validates nothing, so expiry costs a recomputation, never
/// a stale answer.
const GENERATION_TTL: Duration = Duration::from_secs(7 * 86_400);

/// A value read together with the generation counters it is checked against.
pub struct Generational {
    pub value: Option<Bytes>,
    /// One per counter asked for, in order; None where the counter does not exist.
    pub generations: Vec<Option<u64>>,
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
            generations: moka::future::Cache::builder()
                .max_capacity(settings.memory_capacity)
                .time_to_live(GENERATION_TTL)
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
        self.generations.invalidate(&key).await;
        if let Some(redis) = &self.redis {
            if let Some(Err(err)) = redis
                .run(|mut conn, k| async move { conn.del::<_, ()>(k).await }, key)
                .await
            {
                redis.mark_unhealthy(&err);
            }
        }
    }

    /// Deletes many keys (values or generation counters) in one round trip. A deleted
    /// counter invalidates like a bump: an absent counter validates nothing.
    pub async fn delete_many(&self, keys: impl IntoIterator<Item = String>) {
        let keys: Vec<String> = keys.into_iter().map(|key| self.key(&key)).collect();
        if keys.is_empty() {
            return;
        }
        for key in &keys {
            self.memory.invalidate(key).await;
            self.generations.invalidate(key).await;
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

    /// Reads `key` and the generation counters `generations` in one round trip. A caller
    /// stores, beside its value, the generations it read before computing it, and trusts the
    /// value only while they are unchanged (`bump_generations` invalidates).
    pub async fn get_with_generations(&self, key: &str, generations: &[String]) -> Generational {
        let counters: Vec<String> = generations.iter().map(|g| self.key(g)).collect();
        let key = self.key(key);
        if let Some(redis) = &self.redis {
            let mut keys = vec![key.clone()];
            keys.extend(counters.iter().cloned());
            let answer = redis
                .run(
                    |mut conn, keys: Vec<String>| async move {
                        redis::cmd("MGET")
                            .arg(keys)
                            .query_async::<Vec<Option<Vec<u8>>>>(&mut conn)
                            .await
                    },
                    keys,
                )
                .await;
            match answer {
                Some(Ok(mut values)) if values.len() == counters.len() + 1 => {
                    let generations = values
                        .split_off(1)
                        .into_iter()
                        .map(|v| parse_counter(v.as_deref()))
                        .collect();
                    return Generational {
                        value: values.pop().flatten().map(Bytes::from),
                        generations,
                    };
                }
                Some(Err(err)) => redis.mark_unhealthy(&err),
                Some(Ok(_)) | None => {}
            }
        }
        let mut in_memory = Vec::with_capacity(counters.len());
        for counter in &counters {
            in_memory.push(self.generations.get(counter).await);
        }
        Generational {
            value: self.memory.get(&key).await,
            generations: in_memory,
        }
    }

    /// Advances each counter and returns the new values, in order. A counter that did not
    /// exist starts at a random value, so a counter that expired and came back never matches
    /// a generation stored under its earlier life. Invalidating by bumping, not deleting, is
    /// what makes a racing writer harmless: a computation that read the old state and stores
    /// its result after the bump stores it under the old generation, which no reader accepts
    /// (a delete would be undone by that late write).
    pub async fn bump_generations(&self, counters: impl IntoIterator<Item = String>) -> Vec<u64> {
        let counters: Vec<String> = counters.into_iter().map(|c| self.key(&c)).collect();
        if counters.is_empty() {
            return Vec::new();
        }
        if let Some(redis) = &self.redis {
            let seconds = GENERATION_TTL.as_secs();
            let answer = redis
                .run(
                    |mut conn, counters: Vec<String>| async move {
                        let mut pipe = redis::pipe();
                        pipe.atomic();
                        for counter in &counters {
                            pipe.cmd("SET")
                                .arg(counter)
                                .arg(random_start())
                                .arg("NX")
                                .arg("EX")
                                .arg(seconds)
                                .ignore();
                            pipe.cmd("INCR").arg(counter);
                            pipe.cmd("EXPIRE").arg(counter).arg(seconds).ignore();
                        }
                        pipe.query_async::<Vec<u64>>(&mut conn).await
                    },
                    counters.clone(),
                )
                .await;
            match answer {
                Some(Ok(values)) if values.len() == counters.len() => {
                    for (counter, value) in counters.iter().zip(&values) {
                        self.generations.insert(counter.clone(), *value).await;
                    }
                    return values;
                }
                Some(Err(err)) => redis.mark_unhealthy(&err),
                Some(Ok(_)) | None => {}
            }
        }
        let mut values = Vec::with_capacity(counters.len());
        for counter in counters {
            let entry = self
                .generations
                .entry(counter)
                .and_upsert_with(|old| async move {
                    old.map_or_else(random_start, |entry| entry.into_value().wrapping_add(1))
                })
                .await;
            values.push(entry.into_value());
        }
        values
    }

    /// Probes Redis now and says which cache serves.
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

/// Below 2^62, so Redis's signed INCR has room.
fn random_start() -> u64 {
    rand::random::<u64>() >> 2
}

/// A counter as INCR stores it: decimal digits.
fn parse_counter(raw: Option<&[u8]>) -> Option<u64> {
    std::str::from_utf8(raw?).ok()?.parse().ok()
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
