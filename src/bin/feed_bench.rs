//! Feed benchmark: worker throughput (images/s at 256², with 1 and 2 `stylecast worker`
//! processes consuming the Redis Stream) and feed read latency once every item is ready.
//!
//!     cargo build --release --bins && target/release/feed-bench --users 12 --reads 2000
//!
//! Needs Postgres (TEST_DATABASE_URL), Redis (REDIS_URL), the ONNX Runtime library and the
//! models (`bash onnx/check.sh`).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use image::RgbImage;
use stylecast::media::{self, MediaLimits, OutputFormat};

#[path = "support/mod.rs"]
mod support;
use support::{percentile, BenchApp};

#[derive(Parser)]
struct Args {
    /// Users (each with their own photo) per worker-count run.
    #[arg(long, default_value_t = 12)]
    users: usize,
    /// Worker process counts to measure.
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    workers: Vec<usize>,
    /// Feed reads per concurrency level once everything is ready.
    #[arg(long, default_value_t = 2000)]
    reads: usize,
    #[arg(long, value_delimiter = ',', default_value = "1,8")]
    concurrency: Vec<usize>,
    #[arg(long, default_value = "onnx/styles/content_heldout/coffee.png")]
    photo: String,
    #[arg(
        long,
        env = "TEST_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432"
    )]
    server: String,
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    redis: String,
}

const INFLUENCERS: [&str; 4] = ["noir_nadia", "neon_nova", "golden_gabe", "ink_iris"];

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let prefix = format!("bench:{}:", uuid::Uuid::new_v4().simple());
    let redis = args.redis.clone();
    let app_prefix = prefix.clone();
    let app = BenchApp::start(&args.server, "feed", move |s| {
        s.redis.url = Some(redis.into());
        s.redis.key_prefix = app_prefix;
        s.feed.serve_worker = false;
        s.auth.rate_limit_per_sec = 0;
    })
    .await?;
    app.add_influencers(&INFLUENCERS).await?;
    let pool = sqlx::PgPool::connect(&app.database_url).await?;
    let base = image::open(&args.photo).context("content photo")?.to_rgb8();

    println!("| worker processes | sessions each | users | images | worker start-up s | rendering s | images/s |");
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    let mut ready_users = Vec::new();
    let mut consumers = 0;
    for &workers in &args.workers {
        let users: Vec<String> = (0..args.users).map(|n| format!("w{workers}-u{n}")).collect();
        for (n, user) in users.iter().enumerate() {
            // Photos differ across runs too: a cached render would not measure the workers.
            seed_user(&app, user, n, &distinct_photo(&base, workers * 1000 + n)?).await?;
        }
        // Each PUT queued a refresh; nothing renders until the workers start. The clock
        // starts once every worker has loaded its models and joined the consumer group.
        let sessions = (2 / workers).max(1);
        let concurrency = sessions * 2;
        let spawned = Instant::now();
        let mut children: Vec<Child> = (0..workers)
            .map(|w| {
                spawn_worker(
                    &app,
                    &args.redis,
                    &prefix,
                    sessions,
                    concurrency,
                    &format!("bench-{workers}-{w}"),
                )
            })
            .collect::<anyhow::Result<_>>()?;
        consumers += workers * concurrency;
        wait_for_consumers(&args.redis, &prefix, consumers).await?;
        let started = Instant::now();
        let startup = (started - spawned).as_secs_f64();
        let images = wait_until_rendered(&pool, &users).await?;
        let seconds = started.elapsed().as_secs_f64();
        for child in &mut children {
            let _ = child.kill();
            let _ = child.wait();
        }
        println!(
            "| {workers} | {sessions} | {} | {images} | {startup:.1} | {seconds:.2} | {:.2} |",
            users.len(),
            images as f64 / seconds
        );
        ready_users.extend(users);
    }

    println!();
    println!("| concurrency | reads | items per read | p50 ms | p99 ms | reads/s |");
    println!("|---:|---:|---:|---:|---:|---:|");
    for &concurrency in &args.concurrency {
        let started = Instant::now();
        let per_task = args.reads.div_ceil(concurrency);
        let mut tasks = Vec::new();
        for t in 0..concurrency {
            let (client, base, key, users) = (
                app.client.clone(),
                app.base.clone(),
                app.key.clone(),
                ready_users.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(per_task);
                let mut items = 0;
                for n in 0..per_task {
                    let user = &users[(t * per_task + n) % users.len()];
                    let sent = Instant::now();
                    let page: serde_json::Value = client
                        .get(format!("{base}/v1/users/{user}/feed?k=10"))
                        .bearer_auth(&key)
                        .send()
                        .await?
                        .error_for_status()?
                        .json()
                        .await?;
                    latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
                    let page_items = page["items"].as_array().context("items")?;
                    anyhow::ensure!(
                        page_items.iter().all(|i| i["status"] == "ready"),
                        "an item was not ready: {page}"
                    );
                    items = page_items.len();
                }
                Ok::<_, anyhow::Error>((latencies, items))
            }));
        }
        let mut latencies = Vec::new();
        let mut items = 0;
        for task in tasks {
            let (l, i) = task.await??;
            latencies.extend(l);
            items = i;
        }
        let wall = started.elapsed().as_secs_f64();
        latencies.sort_by(f64::total_cmp);
        println!(
            "| {concurrency} | {} | {items} | {:.2} | {:.2} | {:.0} |",
            latencies.len(),
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99),
            latencies.len() as f64 / wall
        );
    }
    pool.close().await;
    app.stop().await
}

/// The content photo with one pixel changed per user, so no two users share a cache entry.
fn distinct_photo(base: &RgbImage, n: usize) -> anyhow::Result<Vec<u8>> {
    let mut photo = base.clone();
    photo.put_pixel(0, 0, image::Rgb([(n % 256) as u8, (n / 256 % 256) as u8, 17]));
    Ok(media::encode(&photo, OutputFormat::Png)?)
}

/// Engagement spread over the influencers (so blends and recommendations differ), then the photo.
async fn seed_user(app: &BenchApp, user: &str, n: usize, photo: &[u8]) -> anyhow::Result<()> {
    let at = chrono::Utc::now().to_rfc3339();
    let events: Vec<serde_json::Value> = INFLUENCERS
        .iter()
        .enumerate()
        .map(|(i, influencer)| {
            let kind = if (i + n) % 4 == 0 { "share" } else { "view" };
            serde_json::json!({"event_id": format!("{user}-{i}"), "user": user, "influencer": influencer,
                               "kind": kind, "occurred_at": at})
        })
        .collect();
    app.client
        .post(format!("{}/v1/events", app.base))
        .bearer_auth(&app.key)
        .json(&events)
        .send()
        .await?
        .error_for_status()?;
    media::decode(photo, &MediaLimits::default())?;
    app.client
        .put(format!("{}/v1/users/{user}/photo", app.base))
        .bearer_auth(&app.key)
        .header("content-type", "image/png")
        .body(photo.to_vec())
        .send()
        .await?
        .error_for_status()?;
    Ok(())
}

fn spawn_worker(
    app: &BenchApp,
    redis: &str,
    prefix: &str,
    sessions: usize,
    concurrency: usize,
    name: &str,
) -> anyhow::Result<Child> {
    let bin = std::env::current_exe()?.with_file_name("stylecast");
    Command::new(&bin)
        .args(["worker", "--concurrency", &concurrency.to_string(), "--name", name])
        .env("DATABASE_URL", &app.database_url)
        .env("REDIS_URL", redis)
        .env("STYLECAST__REDIS__KEY_PREFIX", prefix)
        .env("STYLECAST__GENERATE__SESSIONS", sessions.to_string())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}; build it with cargo build --release --bins", bin.display()))
}

/// Waits until this many consumers (worker job loops) have joined the group.
async fn wait_for_consumers(redis: &str, prefix: &str, expected: usize) -> anyhow::Result<()> {
    let client = redis::Client::open(redis)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let consumers: Vec<redis::Value> = redis::cmd("XINFO")
            .arg("CONSUMERS")
            .arg(format!("{prefix}feed:jobs"))
            .arg("feed-workers")
            .query_async(&mut conn)
            .await?;
        // Consumers of earlier runs stay registered: `expected` counts them too.
        if consumers.len() >= expected {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "workers did not start");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until every slot of these users' first pages has its image; returns how many.
async fn wait_until_rendered(pool: &sqlx::PgPool, users: &[String]) -> anyhow::Result<i64> {
    let deadline = Instant::now() + Duration::from_secs(1800);
    loop {
        let (total, ready): (i64, i64) = sqlx::query_as(
            "SELECT count(*), count(f.image_id) FROM feed_items f JOIN users u ON u.id = f.user_id
             WHERE u.external_id = ANY($1)",
        )
        .bind(users)
        .fetch_one(pool)
        .await?;
        // Every user has a blend slot plus at least one influencer slot once planned.
        if total >= 2 * users.len() as i64 && ready == total {
            return Ok(ready);
        }
        anyhow::ensure!(Instant::now() < deadline, "rendering did not finish: {ready}/{total}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
