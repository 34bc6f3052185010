use std::time::Duration;

use bytes::Bytes;
use stylecast::cache::{Cache, CacheKind};
use stylecast::config::Settings;

use crate::helpers::redis_url;

fn settings(url: Option<&str>) -> stylecast::cache::RedisSettings {
    let mut redis = Settings::load(None).expect("settings").redis;
    redis.url = url.map(|u| u.to_string().into());
    redis.key_prefix = format!("test:{}:", uuid::Uuid::new_v4().simple());
    redis
}

/// Two instances of one deployment on the test Redis (two replicas of the service).
async fn two_redis_caches() -> (stylecast::cache::RedisSettings, Cache, Cache) {
    let settings = settings(Some(&redis_url()));
    let deployment = uuid::Uuid::new_v4();
    let writer = Cache::new(&settings, deployment).expect("cache");
    let reader = Cache::new(&settings, deployment).expect("cache");
    assert_eq!(writer.live_kind().await, CacheKind::Redis);
    (settings, writer, reader)
}

#[tokio::test]
async fn values_round_trip_through_redis_and_are_shared_between_instances() {
    let (settings, writer, reader) = two_redis_caches().await;
    writer
        .set("k", Bytes::from_static(b"value"), Duration::from_secs(30))
        .await;
    assert_eq!(
        reader.get("k").await.as_deref(),
        Some(&b"value"[..]),
        "read back from Redis by another instance"
    );
    // Another deployment on the same Redis and prefix (a reset database) sees nothing.
    let other = Cache::new(&settings, uuid::Uuid::new_v4()).expect("cache");
    assert_eq!(other.get("k").await, None);
    writer.delete("k").await;
    assert_eq!(reader.get("k").await, None);
}

#[tokio::test]
async fn a_dead_redis_falls_back_to_the_in_process_cache() {
    let cache = Cache::new(&settings(Some("redis://127.0.0.1:1")), uuid::Uuid::new_v4()).expect("cache");
    cache.set("k", Bytes::from_static(b"v"), Duration::from_secs(30)).await;
    assert_eq!(cache.get("k").await.as_deref(), Some(&b"v"[..]));
    assert_eq!(cache.live_kind().await, CacheKind::Memory);
    let none = Cache::new(&settings(None), uuid::Uuid::new_v4()).expect("cache");
    assert_eq!(none.live_kind().await, CacheKind::Memory);
}

/// The protocol a cached computation follows: read the value and its counters, compute,
/// store under the counters read. An invalidation between the read and the store (a racing
/// writer) leaves the stored value under a generation no reader accepts.
async fn a_late_write_after_a_bump_is_not_trusted(cache: &Cache, reader: &Cache) {
    let counters = ["gen:ana".to_string()];
    let before = cache.get_with_generations("v", &counters).await;
    assert_eq!(before.value, None);
    assert_eq!(before.generations, vec![None], "no counter yet");
    let started = cache.bump_generations(counters.clone()).await;
    let read = reader.get_with_generations("v", &counters).await;
    assert_eq!(read.generations, vec![Some(started[0])], "a started counter is seen");

    // The computation read generation `started`; an invalidation lands before it stores.
    let bumped = cache.bump_generations(counters.clone()).await;
    assert_eq!(bumped[0], started[0] + 1);
    cache
        .set("v", Bytes::from(started[0].to_string()), Duration::from_secs(30))
        .await;
    let after = reader.get_with_generations("v", &counters).await;
    assert_eq!(after.value.as_deref(), Some(started[0].to_string().as_bytes()));
    assert_ne!(
        after.generations,
        vec![Some(started[0])],
        "the late value's generation is stale"
    );
    assert_eq!(after.generations, vec![Some(bumped[0])]);
}

#[tokio::test]
async fn generations_outlive_a_racing_write_in_redis() {
    let (_, writer, reader) = two_redis_caches().await;
    a_late_write_after_a_bump_is_not_trusted(&writer, &reader).await;
}

#[tokio::test]
async fn generations_outlive_a_racing_write_in_process() {
    let cache = Cache::new(&settings(None), uuid::Uuid::new_v4()).expect("cache");
    a_late_write_after_a_bump_is_not_trusted(&cache, &cache).await;
    // Counters started on two caches start at random values: one that expired and came
    // back does not meet its earlier values.
    let other = Cache::new(&settings(None), uuid::Uuid::new_v4()).expect("cache");
    let first = cache.bump_generations(["gen:new".to_string()]).await;
    let second = other.bump_generations(["gen:new".to_string()]).await;
    assert_ne!(first, second);
}
