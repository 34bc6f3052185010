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

#[tokio::test]
async fn values_round_trip_through_redis_and_are_shared_between_instances() {
    let settings = settings(Some(&redis_url()));
    let deployment = uuid::Uuid::new_v4();
    let writer = Cache::new(&settings, deployment).expect("cache");
    let reader = Cache::new(&settings, deployment).expect("cache");
    assert_eq!(writer.live_kind().await, CacheKind::Redis);
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
