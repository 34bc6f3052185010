//! Generation benchmark: end-to-end POST /v1/generate latency and throughput at each size
//! and concurrency, next to the bare ONNX Runtime generator session on the same input.
//!
//!     cargo run --release --bin generate-bench -- --requests 24
//!
//! Needs Postgres (TEST_DATABASE_URL), the ONNX Runtime library and the models
//! (`bash onnx/check.sh` builds what is not committed). bench/reference_generate.py is
//! the Python reference doing the same decode → encode → generate → encode work.

use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use stylecast::media;
use stylecast::startup::load_models;

#[path = "support/mod.rs"]
mod support;
use support::{percentile, BenchApp};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 24)]
    requests: usize,
    #[arg(long, value_delimiter = ',', default_value = "1,8")]
    concurrency: Vec<usize>,
    #[arg(long, value_delimiter = ',', default_value = "256,512")]
    sizes: Vec<u32>,
    #[arg(long, default_value = "onnx/styles/content_full/coffee.png")]
    photo: String,
    #[arg(
        long,
        env = "TEST_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432"
    )]
    server: String,
    /// `default`, `stylecast` or `magenta` (onnx.generator).
    #[arg(long, default_value = "default")]
    generator: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let generator = args.generator.clone();
    let app = BenchApp::start(&args.server, "gen", move |settings| settings.onnx.generator = generator).await?;
    app.add_influencers(&["noir_nadia", "neon_nova"]).await?;
    let (settings, client, base, key) = (
        app.settings.clone(),
        app.client.clone(),
        app.base.clone(),
        app.key.clone(),
    );
    let photo = std::fs::read(&args.photo)?;
    let (models, _) = load_models(&settings);
    let models = models.context("models unavailable")?;

    println!("generator: {}", models.backend.as_str());
    println!("| size | concurrency | requests | p50 ms | p99 ms | images/s | bare generator session ms | p50 / bare |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut request_number = 0usize;
    for &size in &args.sizes {
        let content = media::fit(&media::decode(&photo, &media::MediaLimits::default())?, size, 8);
        let code: Vec<f32> = (0..models.style_dim).map(|i| (i as f32 * 0.37).sin() * 0.5).collect();
        // the session alone: inputs prepared once (for Magenta: scaled and padded to 384²)
        let inputs = models.prepare(&content, &code)?.inputs;
        models.generator.run(inputs.clone()).await?;
        let bare_started = Instant::now();
        for _ in 0..args.requests {
            models.generator.run(inputs.clone()).await?;
        }
        let bare_ms = bare_started.elapsed().as_secs_f64() * 1000.0 / args.requests as f64;

        for &concurrency in &args.concurrency {
            let started = Instant::now();
            let mut tasks = Vec::new();
            let per_task = args.requests.div_ceil(concurrency);
            for _ in 0..concurrency {
                let (client, base, key, photo) = (client.clone(), base.clone(), key.clone(), photo.clone());
                let first = request_number;
                request_number += per_task;
                tasks.push(tokio::spawn(async move {
                    let mut latencies = Vec::new();
                    for n in 0..per_task {
                        // Bytes after the PNG's end make each photo distinct to the cache and
                        // change no pixel.
                        let mut distinct = photo.clone();
                        distinct.extend_from_slice(format!("{}", first + n).as_bytes());
                        let form = reqwest::multipart::Form::new()
                            .part("photo", reqwest::multipart::Part::bytes(distinct).file_name("p.png"))
                            .text("user", "bench")
                            .text("influencer", "noir_nadia")
                            .text("size", size.to_string());
                        let sent = Instant::now();
                        let response = client
                            .post(format!("{base}/v1/generate"))
                            .bearer_auth(&key)
                            .multipart(form)
                            .send()
                            .await?;
                        anyhow::ensure!(response.status().is_success(), "generate failed: {}", response.status());
                        anyhow::ensure!(response.headers()["x-cache"] == "miss", "cache hit in a benchmark");
                        response.bytes().await?;
                        latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
                    }
                    Ok::<_, anyhow::Error>(latencies)
                }));
            }
            let mut latencies = Vec::new();
            for task in tasks {
                latencies.extend(task.await??);
            }
            let wall = started.elapsed().as_secs_f64();
            latencies.sort_by(f64::total_cmp);
            let p50 = percentile(&latencies, 0.5);
            println!(
                "| {size}² | {concurrency} | {} | {p50:.0} | {:.0} | {:.2} | {bare_ms:.0} | {:.2} |",
                latencies.len(),
                percentile(&latencies, 0.99),
                latencies.len() as f64 / wall,
                p50 / bare_ms
            );
        }
    }
    app.stop().await
}
