//! Ingest benchmark: N generated events over HTTP in batches, next to a raw COPY of the
//! same events into the same schema, in one run on the same machine.
//!
//!     cargo run --release --bin ingest-bench -- --events 1000000
//!
//! Needs a Postgres server (TEST_DATABASE_URL, default postgres://postgres@127.0.0.1:5432);
//! creates two scratch databases and drops them afterwards.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use secrecy::SecretString;
use sqlx::{Connection, Executor, PgConnection, PgPool};
use stylecast::config::Settings;
use stylecast::startup::Application;

#[derive(Parser)]
struct Args {
    /// Events to ingest.
    #[arg(long, default_value_t = 1_000_000)]
    events: usize,
    /// Events per HTTP batch.
    #[arg(long, default_value_t = 10_000)]
    batch: usize,
    /// Concurrent HTTP clients (one per core does best here).
    #[arg(long, default_value_t = 2)]
    concurrency: usize,
    #[arg(long, default_value_t = 100_000)]
    users: usize,
    #[arg(long, default_value_t = 2_000)]
    influencers: usize,
    /// Postgres server URL without a database name.
    #[arg(
        long,
        env = "TEST_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432"
    )]
    server: String,
    /// Rounds of COPY then HTTP, each into fresh databases; the ratio reported is the median.
    /// This VM's disk and neighbours move single runs by ±15 %.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    rounds: u32,
    /// Keep the scratch databases.
    #[arg(long)]
    keep: bool,
    /// Share of events that echo a `served_id` (as events after a served list do), in both
    /// the HTTP and the COPY runs.
    #[arg(long, default_value_t = 0.0)]
    served_fraction: f64,
}

struct GeneratedEvent {
    id: String,
    user: usize,
    influencer: usize,
    kind: &'static str,
    occurred_at: DateTime<Utc>,
    post: Option<usize>,
    served_id: Option<uuid::Uuid>,
}

fn generate(args: &Args) -> Vec<GeneratedEvent> {
    let mut rng = StdRng::seed_from_u64(42);
    let now = Utc::now() - chrono::Duration::minutes(1);
    let kinds = [
        ("view", 50),
        ("like", 25),
        ("comment", 8),
        ("share", 5),
        ("follow", 7),
        ("unlike", 3),
        ("unfollow", 2),
    ];
    let total: u32 = kinds.iter().map(|k| k.1).sum();
    (0..args.events)
        .map(|n| {
            let mut pick = rng.random_range(0..total);
            let kind = kinds.iter().find(|k| {
                if pick < k.1 {
                    true
                } else {
                    pick -= k.1;
                    false
                }
            });
            let kind = kind.map_or("view", |k| k.0);
            let age = chrono::Duration::seconds(rng.random_range(0..60 * 86_400));
            GeneratedEvent {
                id: format!("ev-{n:08}"),
                // Skewed: a few heavy users and popular influencers, like real engagement.
                user: (rng.random::<f64>().powi(2) * args.users as f64) as usize,
                influencer: (rng.random::<f64>().powi(3) * args.influencers as f64) as usize,
                kind,
                occurred_at: now - age,
                post: matches!(kind, "like" | "unlike").then(|| rng.random_range(0..50)),
                served_id: (rng.random::<f64>() < args.served_fraction)
                    .then(|| uuid::Uuid::from_u128(rng.random::<u128>())),
            }
        })
        .collect()
}

fn json_batches(events: &[GeneratedEvent], batch: usize) -> Vec<Vec<u8>> {
    events
        .chunks(batch)
        .map(|chunk| {
            let items: Vec<serde_json::Value> = chunk
                .iter()
                .map(|e| {
                    let mut item = serde_json::json!({
                        "event_id": e.id, "user": format!("u{}", e.user), "influencer": format!("i{}", e.influencer),
                        "kind": e.kind, "occurred_at": e.occurred_at.to_rfc3339(),
                    });
                    if let Some(post) = e.post {
                        item["post_id"] = serde_json::json!(format!("p{post}"));
                    }
                    if let Some(served) = e.served_id {
                        item["served_id"] = serde_json::json!(served);
                    }
                    item
                })
                .collect();
            serde_json::to_vec(&items).unwrap_or_default()
        })
        .collect()
}

async fn fresh_database(server: &str, name: &str) -> anyhow::Result<String> {
    let mut admin = PgConnection::connect(&format!("{server}/postgres"))
        .await
        .context("connect to Postgres")?;
    admin
        .execute(format!(r#"DROP DATABASE IF EXISTS "{name}""#).as_str())
        .await?;
    admin.execute(format!(r#"CREATE DATABASE "{name}""#).as_str()).await?;
    Ok(format!("{server}/{name}"))
}

async fn drop_database(server: &str, name: &str) -> anyhow::Result<()> {
    let mut admin = PgConnection::connect(&format!("{server}/postgres")).await?;
    admin
        .execute(format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#).as_str())
        .await?;
    Ok(())
}

fn progress(len: usize, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len as u64);
    bar.set_style(
        ProgressStyle::with_template("{msg:>6} [{bar:40}] {pos}/{len} events {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(what.to_string());
    bar
}

async fn run_http(args: &Args, url: &str, batches: Vec<Vec<u8>>) -> anyhow::Result<(Duration, u64)> {
    let mut settings = Settings::load(None)?;
    settings.server.port = 0;
    settings.database.url = SecretString::from(url.to_string());
    settings.redis.url = None;
    settings.log.filter = "warn".into();
    let admin_key = format!("bench-{}", uuid::Uuid::new_v4());
    settings.auth.admin_key = Some(SecretString::from(admin_key.clone()));
    let app = Application::build(settings).await?;
    let endpoint = format!("http://127.0.0.1:{}/v1/events", app.port());
    let handle = app.handle();
    let server = tokio::spawn(app.run_until_stopped());

    let queue = Arc::new(tokio::sync::Mutex::new(batches.into_iter()));
    let bar = progress(args.events, "http");
    let started = Instant::now();
    let mut clients = Vec::new();
    for _ in 0..args.concurrency {
        let (queue, endpoint, key, bar) = (queue.clone(), endpoint.clone(), admin_key.clone(), bar.clone());
        clients.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut accepted = 0u64;
            loop {
                let Some(body) = queue.lock().await.next() else {
                    break;
                };
                let response = http
                    .post(&endpoint)
                    .bearer_auth(&key)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await?;
                anyhow::ensure!(response.status().is_success(), "batch failed: {}", response.status());
                let report: serde_json::Value = response.json().await?;
                let n = report["accepted"].as_u64().unwrap_or(0) + report["duplicates"].as_u64().unwrap_or(0);
                accepted += report["accepted"].as_u64().unwrap_or(0);
                bar.inc(n);
            }
            Ok::<u64, anyhow::Error>(accepted)
        }));
    }
    let mut accepted = 0;
    for client in clients {
        accepted += client.await??;
    }
    let elapsed = started.elapsed();
    bar.finish_and_clear();
    handle.stop(true).await;
    server.await??;
    Ok((elapsed, accepted))
}

/// COPY of the same events into the same schema: the people rows are loaded first
/// (untimed), then event_keys and engagement_events are COPYed and timed.
async fn run_copy(events: &[GeneratedEvent], args: &Args, url: &str) -> anyhow::Result<Duration> {
    let pool = PgPool::connect(url).await?;
    stylecast::store::migrate(&pool).await?;
    let partitions = stylecast::store::partitions::Partitions::default();
    let months: std::collections::BTreeSet<_> = events
        .iter()
        .map(|e| stylecast::store::partitions::Month::of(e.occurred_at))
        .collect();
    partitions.ensure(&pool, months).await?;
    sqlx::query("INSERT INTO users (external_id) SELECT 'u' || n FROM generate_series(0, $1) n")
        .bind(args.users as i64)
        .execute(&pool)
        .await?;
    sqlx::query("INSERT INTO influencers (external_id) SELECT 'i' || n FROM generate_series(0, $1) n")
        .bind(args.influencers as i64)
        .execute(&pool)
        .await?;
    // Ids are assigned 1.. in generate_series order, so u{n} has id n + 1.
    let mut keys_csv = String::new();
    let mut events_csv = String::new();
    for e in events {
        let at = e.occurred_at.to_rfc3339();
        let _ = writeln!(keys_csv, "{},{at}", e.id);
        let post = e.post.map(|p| format!("p{p}")).unwrap_or_default();
        let served = e.served_id.map(|id| id.to_string()).unwrap_or_default();
        let _ = writeln!(
            events_csv,
            "{},{},{},{},{at},{post},1,{served}",
            e.id,
            e.user + 1,
            e.influencer + 1,
            e.kind
        );
    }
    let mut conn = pool.acquire().await?;
    let bar = progress(args.events, "copy");
    let started = Instant::now();
    for (sql, data) in [
        ("COPY event_keys (event_id, occurred_at) FROM STDIN (FORMAT csv)", &keys_csv),
        (
            "COPY engagement_events (event_id, user_id, influencer_id, kind, occurred_at, post_id, weight, served_id) FROM STDIN (FORMAT csv)",
            &events_csv,
        ),
    ] {
        let mut copy = conn.copy_in_raw(sql).await?;
        for chunk in data.as_bytes().chunks(1 << 20) {
            copy.send(chunk).await?;
        }
        copy.finish().await?;
        bar.inc(args.events as u64 / 2);
    }
    let elapsed = started.elapsed();
    bar.finish_and_clear();
    drop(conn);
    pool.close().await;
    Ok(elapsed)
}

/// One COPY and one HTTP run, each into a fresh database after a checkpoint, so neither pays
/// for the other's dirty buffers.
async fn run_round(
    args: &Args,
    events: &[GeneratedEvent],
    batches: Vec<Vec<u8>>,
) -> anyhow::Result<(Duration, Duration)> {
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let (http_db, copy_db) = (
        format!("stylecast_bench_http_{suffix}"),
        format!("stylecast_bench_copy_{suffix}"),
    );
    let copy_url = fresh_database(&args.server, &copy_db).await?;
    checkpoint(&args.server).await;
    let copy_time = run_copy(events, args, &copy_url).await?;
    let http_url = fresh_database(&args.server, &http_db).await?;
    checkpoint(&args.server).await;
    let (http_time, accepted) = run_http(args, &http_url, batches).await?;
    anyhow::ensure!(
        accepted as usize == args.events,
        "accepted {accepted} of {}",
        args.events
    );
    if !args.keep {
        drop_database(&args.server, &http_db).await?;
        drop_database(&args.server, &copy_db).await?;
    }
    Ok((http_time, copy_time))
}

/// Needs a superuser; without one the round runs anyway, just noisier.
async fn checkpoint(server: &str) {
    let done = async {
        let mut admin = PgConnection::connect(&format!("{server}/postgres")).await?;
        admin.execute("CHECKPOINT").await?;
        Ok::<(), sqlx::Error>(())
    };
    if let Err(e) = done.await {
        eprintln!("CHECKPOINT skipped: {e}");
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    stylecast::telemetry::init_tracing(&stylecast::telemetry::LogSettings {
        format: "pretty".into(),
        filter: "warn".into(),
    });
    eprintln!(
        "generating {} events ({} users, {} influencers)",
        args.events, args.users, args.influencers
    );
    let events = generate(&args);
    let batches = json_batches(&events, args.batch);
    let body_mb = batches.iter().map(Vec::len).sum::<usize>() as f64 / 1e6;

    println!("| round | path | events | seconds | events/s |");
    println!("|---:|---|---:|---:|---:|");
    let mut ratios = Vec::new();
    for round in 1..=args.rounds {
        let (http, copy) = run_round(&args, &events, batches.clone()).await?;
        let http_rate = args.events as f64 / http.as_secs_f64();
        let copy_rate = args.events as f64 / copy.as_secs_f64();
        println!(
            "| {round} | HTTP POST /v1/events ({} per batch, {} clients, {body_mb:.0} MB JSON) | {} | {:.2} | {http_rate:.0} |",
            args.batch,
            args.concurrency,
            args.events,
            http.as_secs_f64(),
        );
        println!(
            "| {round} | raw COPY into event_keys + engagement_events | {} | {:.2} | {copy_rate:.0} |",
            args.events,
            copy.as_secs_f64(),
        );
        ratios.push(http_rate / copy_rate);
    }
    let shown: Vec<String> = ratios.iter().map(|r| format!("{r:.2}")).collect();
    ratios.sort_by(f64::total_cmp);
    println!(
        "\nratio HTTP / COPY = {:.2} (median of {} rounds: {})",
        ratios[ratios.len() / 2],
        ratios.len(),
        shown.join(", ")
    );
    Ok(())
}
