//! Generation benchmark: end-to-end POST /v1/generate latency and throughput at each size
//! and concurrency, next to the bare ONNX Runtime generator session on the same input.
//!
//!     cargo run --release --bin generate-bench -- --requests 24
//!
//! Needs Postgres (TEST_DATABASE_URL), the ONNX Runtime library and the models
//! (`bash onnx/check.sh` builds what is not committed). bench/reference_generate.py is
//! the Python reference doing the same decode → encode → generate → encode work.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use ndarray::ArrayD;
use stylecast::config::Settings;
use stylecast::generate::engine::{build_session, run_session, DevicePolicy};
use stylecast::generate::manifest::Manifest;
use stylecast::generate::models::Models;
use stylecast::generate::timing;
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
    /// Time the render path in process (decode, fit, serving engine, watermark, encode)
    /// without HTTP or a database: for a machine without Postgres (the GPU box).
    #[arg(long)]
    in_process: bool,
    /// Overrides generate.max_batch (the engine's largest dynamic batch).
    #[arg(long)]
    max_batch: Option<usize>,
    /// Overrides generate.memory_pattern (ONNX Runtime's memory-pattern planning).
    #[arg(long)]
    memory_pattern: Option<bool>,
    /// Overrides generate.square_frames: `never`, `always` or `gpu`.
    #[arg(long)]
    square_frames: Option<String>,
    /// JPEG photos whose decode to time whole and scaled for each size (the last table).
    #[arg(long, value_delimiter = ',')]
    jpegs: Vec<String>,
    /// Overrides generate.dynamic_batching: `never`, `always` or `gpu`.
    #[arg(long)]
    dynamic_batching: Option<String>,
    /// In process: every other request sends the photo turned 90° (portrait), so the
    /// generator sees two aspect ratios in turn.
    #[arg(long)]
    mixed_shapes: bool,
    /// Strengths to request over HTTP: below 1 is what feeds ask for most.
    #[arg(long, value_delimiter = ',', default_value = "1,0.6")]
    strengths: Vec<f32>,
    /// Upload formats over HTTP: `png` (the photo as given) and `jpeg` (it re-encoded at q90,
    /// as phones send).
    #[arg(long, value_delimiter = ',', default_value = "png,jpeg")]
    uploads: Vec<String>,
}

/// The photo as each upload format sends it, with its file name.
fn uploads(photo: &[u8], formats: &[String]) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    formats
        .iter()
        .map(|format| match format.as_str() {
            "png" => Ok(("p.png".to_string(), photo.to_vec())),
            "jpeg" => {
                let image = media::decode(photo, &media::MediaLimits::default())?;
                let mut out = std::io::Cursor::new(Vec::new());
                image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90).encode_image(&image)?;
                Ok(("p.jpg".to_string(), out.into_inner()))
            }
            other => anyhow::bail!("--uploads: {other:?} is not png or jpeg"),
        })
        .collect()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.in_process {
        return in_process(&args).await;
    }
    let mut overridden = Settings::load(None)?;
    apply_overrides(&mut overridden, &args)?;
    let app = BenchApp::start(&args.server, "gen", move |settings| {
        settings.onnx.generator = overridden.onnx.generator;
        settings.generate = overridden.generate;
        // One key drives the whole load: this measures throughput, not the per-key rate
        // limit (429).
        settings.auth.rate_limit_per_sec = 0;
    })
    .await?;
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

    println!("{}", describe(&settings, &models));
    println!("| size | upload | strength | concurrency | requests | p50 ms | p99 ms | images/s | bare generator session ms | p50 / bare | bare sessions at once, images/s | bare images/s / images/s |");
    println!("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let uploads = uploads(&photo, &args.uploads)?;
    let mut request_number = 0usize;
    let mut summaries = Vec::new();
    for &size in &args.sizes {
        let content = media::fit(
            &media::decode(&photo, &media::MediaLimits::default())?,
            size,
            models.hw_multiple(),
        );
        let code = models.style_code(&media::square(&content, 256)).await?;
        // The session alone, called directly (no queue, no batching wait), built as the
        // service builds each of its sessions; inputs prepared once (for Magenta: scaled and
        // padded to 384²).
        let inputs = models.prepare(&content, &code)?.inputs;
        let bare_ms = bare_session_ms(&settings, &models, &inputs, args.requests)?;
        let pool_rate = bare_pool_rate(&settings, &models, &inputs, args.requests.div_ceil(2))?;
        let mut paired = bare_session(&settings, &models, std::slice::from_ref(&inputs))?;

        let runs = uploads
            .iter()
            .flat_map(|upload| args.strengths.iter().map(move |&strength| (upload, strength)))
            .flat_map(|run| {
                args.concurrency
                    .iter()
                    .map(move |&concurrency| (run.0, run.1, concurrency))
            });
        for ((file_name, photo), strength, concurrency) in runs {
            let first = request_number;
            request_number += args.requests.div_ceil(concurrency) * concurrency;
            let (client, base, key, photo) = (client.clone(), base.clone(), key.clone(), photo.clone());
            let upload_name = file_name.clone();
            let bare = BareRun {
                session: &mut paired,
                models: &models,
                inputs: &inputs,
                fallback_ms: bare_ms,
            };
            let phase = load_phase(concurrency, args.requests, bare, move |n| {
                // Bytes after the PNG's end make each photo distinct to the cache and change no
                // pixel.
                let mut distinct = photo.clone();
                distinct.extend_from_slice(format!("{}", first + n).as_bytes());
                let form = reqwest::multipart::Form::new()
                    .part(
                        "photo",
                        reqwest::multipart::Part::bytes(distinct).file_name(upload_name.clone()),
                    )
                    .text("user", "bench")
                    .text("influencer", "noir_nadia")
                    .text("strength", strength.to_string())
                    .text("size", size.to_string());
                let request = client
                    .post(format!("{base}/v1/generate"))
                    .bearer_auth(&key)
                    .multipart(form);
                async move {
                    let response = request.send().await?;
                    anyhow::ensure!(response.status().is_success(), "generate failed: {}", response.status());
                    anyhow::ensure!(response.headers()["x-cache"] == "miss", "cache hit in a benchmark");
                    let stages = response
                        .headers()
                        .get("server-timing")
                        .and_then(|value| value.to_str().ok())
                        .map(timing::parse_header)
                        .unwrap_or_default();
                    response.bytes().await?;
                    Ok(stages)
                }
            })
            .await?;
            let (latencies, rate, bare_ms) = (&phase.latencies, phase.rate, phase.bare_ms);
            let p50 = percentile(latencies, 0.5);
            println!(
                "| {size}² | {} | {strength} | {concurrency} | {} | {p50:.1} | {:.1} | {rate:.2} | {bare_ms:.1} | {:.2} | {pool_rate:.1} | {:.2} |",
                file_name.rsplit('.').next().unwrap_or_default(),
                latencies.len(),
                percentile(latencies, 0.99),
                p50 / bare_ms,
                pool_rate / rate
            );
            summaries.push(format!(
                "{size}², {file_name}, strength {strength}, concurrency {concurrency}: {}",
                phase.stage_summary()
            ));
        }
    }
    print_summaries(&summaries);
    hit_path(&client, &base, &key, &photo, args.requests).await?;
    stage_table(&photo, &args.sizes, models.hw_multiple())?;
    jpeg_table(&args.jpegs, &args.sizes, models.hw_multiple())?;
    app.stop().await
}

/// Each phase's stage medians (from `Server-Timing`, or the in-process render's own times).
fn print_summaries(summaries: &[String]) {
    println!();
    println!("Stage medians, ms:");
    for summary in summaries {
        println!("- {summary}");
    }
}

/// Mean milliseconds of one generator session run on `inputs`, after a warm-up run.
fn bare_session_ms(settings: &Settings, models: &Models, inputs: &[ArrayD<f32>], runs: usize) -> anyhow::Result<f64> {
    Ok(bare_runs(settings, models, &[inputs.to_vec()], runs)? * 1000.0 / runs as f64)
}

/// Seconds for `runs` runs of one generator session (built as the engine builds them), taking
/// the input sets in turn, after one warm-up run of each.
fn bare_runs(settings: &Settings, models: &Models, sets: &[Vec<ArrayD<f32>>], runs: usize) -> anyhow::Result<f64> {
    let mut session = bare_session(settings, models, sets)?;
    let started = Instant::now();
    run_sets(&mut session, models, sets, runs)?;
    Ok(started.elapsed().as_secs_f64())
}

/// Images/s of as many bare sessions as the engine runs (`generate.sessions`), all at once,
/// each on its own thread doing `runs` batch-1 runs: the throughput the render path would have
/// if nothing but the sessions used the CPU. The concurrent figures are compared with it.
fn bare_pool_rate(settings: &Settings, models: &Models, inputs: &[ArrayD<f32>], runs: usize) -> anyhow::Result<f64> {
    let sets = [inputs.to_vec()];
    let sessions = (0..settings.generate.sessions.max(1))
        .map(|_| bare_session(settings, models, &sets))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let count = sessions.len();
    let started = Instant::now();
    std::thread::scope(|scope| {
        let threads: Vec<_> = sessions
            .into_iter()
            .map(|mut session| {
                let sets = &sets;
                scope.spawn(move || run_sets(&mut session, models, sets, runs))
            })
            .collect();
        threads
            .into_iter()
            .try_for_each(|thread| thread.join().map_err(|_| anyhow::anyhow!("a bare session panicked"))?)
    })?;
    Ok((count * runs) as f64 / started.elapsed().as_secs_f64())
}

/// One generator session built as the engine builds them, warmed up with one run of each set.
fn bare_session(
    settings: &Settings,
    models: &Models,
    sets: &[Vec<ArrayD<f32>>],
) -> anyhow::Result<ort::session::Session> {
    let runtime = stylecast::onnx_runtime::runtime(&settings.onnx.library_path)
        .map_err(|status| anyhow::anyhow!("ONNX Runtime: {status:?}"))?;
    let manifest = Manifest::load(&settings.onnx.model_dir)?;
    let (path, _) = manifest.verified_file(&models.generator.name)?;
    let (mut session, _) =
        build_session(runtime, &path, &settings.generate.engine_config()).map_err(|e| anyhow::anyhow!(e))?;
    run_sets(&mut session, models, sets, sets.len())?;
    Ok(session)
}

/// `runs` runs of `session`, taking the input sets in turn.
fn run_sets(
    session: &mut ort::session::Session,
    models: &Models,
    sets: &[Vec<ArrayD<f32>>],
    runs: usize,
) -> anyhow::Result<()> {
    let outputs = &models.generator.output_names;
    for inputs in sets.iter().cycle().take(runs) {
        run_session(session, outputs, inputs.clone()).map_err(|e| anyhow::anyhow!(e))?;
    }
    Ok(())
}

/// Each input repeated `rows` times along the batch axis.
fn batch_of(inputs: &[ArrayD<f32>], rows: usize) -> anyhow::Result<Vec<ArrayD<f32>>> {
    inputs
        .iter()
        .map(|input| {
            let views = vec![input.view(); rows];
            ndarray::concatenate(ndarray::Axis(0), &views).map_err(anyhow::Error::from)
        })
        .collect()
}

/// Median milliseconds of each CPU stage of a request besides the session, on the same photo
/// (what the end-to-end figure adds to the bare session, apart from HTTP and the database).
fn stage_table(photo: &[u8], sizes: &[u32], multiple: u32) -> anyhow::Result<()> {
    use sha2::{Digest, Sha256};
    use stylecast::provenance::{self, xmp};
    use stylecast::tensor::{from_tensor, to_tensor};

    println!();
    println!(
        "| size | sha256 in | decode | fit | to tensor | from tensor | watermark | PNG encode | XMP | sha256 out |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for &size in sizes {
        let limits = media::MediaLimits::default();
        let decoded = media::decode(photo, &limits)?;
        let content = media::fit(&decoded, size, multiple);
        let tensor = to_tensor(&content);
        let id = uuid::Uuid::new_v4();
        let stamped = provenance::stamp(&content, id);
        let png = media::encode(&stamped, media::OutputFormat::Png)?;
        let packet = xmp::packet(id, "bench");
        let marked = xmp::insert(png.clone(), media::OutputFormat::Png, stamped.dimensions(), &packet)?;
        let row = [
            median_ms(|| Sha256::digest(photo)),
            median_ms(|| media::decode_for_size(photo, &limits, size)),
            median_ms(|| media::fit(&decoded, size, multiple)),
            median_ms(|| to_tensor(&content)),
            median_ms(|| from_tensor(&tensor)),
            median_ms(|| provenance::stamp(&content, id)),
            median_ms(|| media::encode(&stamped, media::OutputFormat::Png)),
            median_ms(|| xmp::insert(png.clone(), media::OutputFormat::Png, stamped.dimensions(), &packet)),
            median_ms(|| Sha256::digest(&marked)),
        ];
        let cells: Vec<String> = row.iter().map(|ms| format!("{ms:.2}")).collect();
        println!("| {size} | {} |", cells.join(" | "));
    }
    Ok(())
}

/// Each JPEG decoded whole (then fitted) against decoded at the DCT scale the size allows
/// (then fitted): what `media::decode_for_size` saves on a large upload.
fn jpeg_table(jpegs: &[String], sizes: &[u32], multiple: u32) -> anyhow::Result<()> {
    if jpegs.is_empty() {
        return Ok(());
    }
    println!("| JPEG | pixels | size | decoded for size | whole + fit ms | for size + fit ms | whole / for size |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let limits = media::MediaLimits::default();
    for path in jpegs {
        let bytes = std::fs::read(path).with_context(|| format!("reading {path}"))?;
        let (width, height) = media::decode(&bytes, &limits)?.dimensions();
        let name = std::path::Path::new(path)
            .file_name()
            .map_or(path.clone(), |n| n.to_string_lossy().into_owned());
        for &size in sizes {
            let (sw, sh) = media::decode_for_size(&bytes, &limits, size)?.dimensions();
            let whole = median_ms(|| media::decode(&bytes, &limits).map(|i| media::fit(&i, size, multiple)));
            let scaled =
                median_ms(|| media::decode_for_size(&bytes, &limits, size).map(|i| media::fit(&i, size, multiple)));
            println!(
                "| {name} | {width}×{height} | {size} | {sw}×{sh} | {whole:.2} | {scaled:.2} | {:.2} |",
                whole / scaled
            );
        }
    }
    Ok(())
}

/// Median milliseconds of 40 calls.
fn median_ms<T>(mut work: impl FnMut() -> T) -> f64 {
    let mut times: Vec<f64> = (0..40)
        .map(|_| {
            let started = Instant::now();
            std::hint::black_box(work());
            started.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    times.sort_by(f64::total_cmp);
    percentile(&times, 0.5)
}

/// p50 of requests the cache answers: HTTP, auth, the styles query, hashing, the cache read
/// and the generation record, without decoding or rendering.
async fn hit_path(
    client: &reqwest::Client,
    base: &str,
    key: &str,
    photo: &[u8],
    requests: usize,
) -> anyhow::Result<()> {
    let mut latencies = Vec::new();
    for n in 0..=requests {
        let form = reqwest::multipart::Form::new()
            .part(
                "photo",
                reqwest::multipart::Part::bytes(photo.to_vec()).file_name("p.png"),
            )
            .text("user", "bench")
            .text("influencer", "noir_nadia");
        let sent = Instant::now();
        let response = client
            .post(format!("{base}/v1/generate"))
            .bearer_auth(key)
            .multipart(form)
            .send()
            .await?;
        anyhow::ensure!(response.status().is_success(), "generate failed: {}", response.status());
        let hit = response.headers()["x-cache"] == "hit";
        response.bytes().await?;
        if n > 0 {
            anyhow::ensure!(hit, "expected a cache hit");
            latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
        }
    }
    latencies.sort_by(f64::total_cmp);
    println!(
        "\ncache hits (256², concurrency 1, {} requests): p50 {:.2} ms, p99 {:.2} ms",
        latencies.len(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99)
    );
    Ok(())
}

/// The command line's generator and engine settings; and a queue every concurrent request
/// fits, since this measures throughput, not overload (429).
fn apply_overrides(settings: &mut Settings, args: &Args) -> anyhow::Result<()> {
    settings.onnx.generator = args.generator.clone();
    if let Some(max_batch) = args.max_batch {
        settings.generate.max_batch = max_batch;
    }
    if let Some(memory_pattern) = args.memory_pattern {
        settings.generate.memory_pattern = memory_pattern;
    }
    if let Some(policy) = &args.square_frames {
        settings.generate.square_frames = device_policy("--square-frames", policy)?;
    }
    if let Some(policy) = &args.dynamic_batching {
        settings.generate.dynamic_batching = device_policy("--dynamic-batching", policy)?;
    }
    let most = args.concurrency.iter().copied().max().unwrap_or(1);
    settings.generate.queue_capacity = settings.generate.queue_capacity.max(most);
    Ok(())
}

/// The generator and the serving settings a run used.
fn describe(settings: &Settings, models: &Models) -> String {
    let generate = &settings.generate;
    format!(
        "generator: {}, provider: {}, sessions {} x {} threads, max batch {}, dynamic batching {:?}, memory pattern {}, square frames {:?}",
        models.backend.as_str(),
        models.generator.provider,
        generate.sessions,
        generate.intra_threads,
        generate.max_batch,
        generate.dynamic_batching,
        generate.memory_pattern,
        generate.square_frames,
    )
}

fn device_policy(flag: &str, policy: &str) -> anyhow::Result<DevicePolicy> {
    serde_json::from_value(serde_json::json!(policy))
        .with_context(|| format!("{flag} {policy}: use never, always or gpu"))
}

/// The render path alone, at each size and concurrency, next to the bare session at batch 1
/// and at batch 8 (what a GPU gains from batching).
async fn in_process(args: &Args) -> anyhow::Result<()> {
    let mut settings = Settings::load(None)?;
    apply_overrides(&mut settings, args)?;
    let photo = bytes::Bytes::from(std::fs::read(&args.photo)?);
    let photos: Vec<bytes::Bytes> = if args.mixed_shapes {
        let turned = image::imageops::rotate90(&media::decode(&photo, &media::MediaLimits::default())?);
        vec![photo.clone(), media::encode(&turned, media::OutputFormat::Png)?.into()]
    } else {
        vec![photo.clone()]
    };
    let (models, status) = load_models(&settings);
    let models = models.with_context(|| format!("models unavailable: {status:?}"))?;
    println!("{}, photo shapes {}", describe(&settings, &models), photos.len());
    println!("| size | concurrency | requests | p50 ms | p99 ms | images/s | bare ms, batch 1 | bare images/s, batch 8 | bare images/s, batches 1-4 in turn | p50 / bare | bare sessions at once, images/s | bare images/s / images/s |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut summaries = Vec::new();
    for &size in &args.sizes {
        let content = media::fit(
            &media::decode(&photo, &media::MediaLimits::default())?,
            size,
            models.hw_multiple(),
        );
        let code = models.style_code(&media::square(&content, 256)).await?;
        let inputs = models.prepare(&content, &code)?.inputs;
        let bare_ms = bare_session_ms(&settings, &models, &inputs, args.requests)?;
        let batch8_ms = bare_session_ms(
            &settings,
            &models,
            &batch_of(&inputs, 8)?,
            args.requests.div_ceil(8).max(3),
        )?;
        // Batch sizes 1, 2, 3, 4 in turn: what dynamic batching asks of a session.
        let mixed: Vec<Vec<ArrayD<f32>>> = (1..=4)
            .map(|rows| batch_of(&inputs, rows))
            .collect::<anyhow::Result<_>>()?;
        let mixed_runs = args.requests.div_ceil(10).max(4) * 4;
        let mixed_rate = (mixed_runs / 4 * 10) as f64 / bare_runs(&settings, &models, &mixed, mixed_runs)?;
        let pool_rate = bare_pool_rate(&settings, &models, &inputs, args.requests.div_ceil(2))?;
        // Warm-up: the first run at a size sets up kernels (on a GPU, picks cuDNN algorithms).
        let most = args.concurrency.iter().copied().max().unwrap_or(1);
        let warm_up =
            (0..most.max(2)).map(|n| render_once(models.clone(), photos[n % photos.len()].clone(), code.clone(), size));
        for result in futures_util::future::join_all(warm_up).await {
            result?;
        }
        let mut paired = bare_session(&settings, &models, std::slice::from_ref(&inputs))?;
        for &concurrency in &args.concurrency {
            let bare = BareRun {
                session: &mut paired,
                models: &models,
                inputs: &inputs,
                fallback_ms: bare_ms,
            };
            let (models, photos, code) = (models.clone(), photos.clone(), code.clone());
            let phase = load_phase(concurrency, args.requests, bare, move |n| {
                render_once(models.clone(), photos[n % photos.len()].clone(), code.clone(), size)
            })
            .await?;
            let (latencies, rate, bare_ms) = (&phase.latencies, phase.rate, phase.bare_ms);
            let p50 = percentile(latencies, 0.5);
            println!(
                "| {size}² | {concurrency} | {} | {p50:.1} | {:.1} | {rate:.1} | {bare_ms:.2} | {:.0} | {mixed_rate:.0} | {:.2} | {pool_rate:.1} | {:.2} |",
                latencies.len(),
                percentile(latencies, 0.99),
                8000.0 / batch8_ms,
                p50 / bare_ms,
                pool_rate / rate
            );
            summaries.push(format!("{size}², concurrency {concurrency}: {}", phase.stage_summary()));
        }
    }
    print_summaries(&summaries);
    stage_table(&photo, &args.sizes, models.hw_multiple())?;
    jpeg_table(&args.jpegs, &args.sizes, models.hw_multiple())
}

/// A bare session kept beside a load phase, to be timed between its requests.
struct BareRun<'a> {
    session: &'a mut ort::session::Session,
    models: &'a Models,
    inputs: &'a [ArrayD<f32>],
    /// The bare figure for concurrent phases, measured before them.
    fallback_ms: f64,
}

struct Phase {
    /// Sorted, ms.
    latencies: Vec<f64>,
    rate: f64,
    bare_ms: f64,
    samples: Vec<Sample>,
}

/// Stage → ms, as the service's `Server-Timing` header gives them (or the in-process render's
/// own stage times).
type Stages = Vec<(String, f64)>;

/// One request: its latency as the client saw it, and the stages inside.
struct Sample {
    latency_ms: f64,
    stages: Stages,
}

impl Phase {
    fn new(samples: Vec<Sample>, rate: f64, bare_ms: f64) -> Self {
        let mut latencies: Vec<f64> = samples.iter().map(|s| s.latency_ms).collect();
        latencies.sort_by(f64::total_cmp);
        Self {
            latencies,
            rate,
            bare_ms,
            samples,
        }
    }

    /// Median ms of each stage, the median of latency minus the service's total (HTTP and the
    /// client), and the median over requests of latency ÷ that request's own session run: the
    /// overhead ratio paired within each request, which no drift of the machine can skew.
    fn stage_summary(&self) -> String {
        let median_of = |values: Vec<f64>| {
            let mut values = values;
            values.sort_by(f64::total_cmp);
            percentile(&values, 0.5)
        };
        let mut names: Vec<&str> = Vec::new();
        for (name, _) in self.samples.iter().flat_map(|s| &s.stages) {
            if !names.contains(&name.as_str()) {
                names.push(name);
            }
        }
        let mut cells: Vec<String> = names
            .iter()
            .map(|name| {
                let ms = median_of(self.samples.iter().filter_map(|s| stage_ms(s, name)).collect());
                format!("{name} {ms:.2}")
            })
            .collect();
        // Per request, then the median: these pair values within one request.
        let derived: [(&str, PerRequest); 3] = [
            ("latency − total", |s| {
                stage_ms(s, "total").map(|total| s.latency_ms - total)
            }),
            ("total − stages", |s| {
                let staged: f64 = s.stages.iter().filter(|(n, _)| n != "total").map(|(_, ms)| ms).sum();
                stage_ms(s, "total").map(|total| total - staged)
            }),
            ("latency / own session run", |s| {
                stage_ms(s, "model").map(|model| s.latency_ms / model)
            }),
        ];
        for (label, measure) in derived {
            let values: Vec<f64> = self.samples.iter().filter_map(measure).collect();
            if !values.is_empty() {
                cells.push(format!("{label} {:.3}", median_of(values)));
            }
        }
        cells.join(" · ")
    }
}

/// A figure of one request, where it has one.
type PerRequest = fn(&Sample) -> Option<f64>;

fn stage_ms(sample: &Sample, name: &str) -> Option<f64> {
    sample.stages.iter().find(|(n, _)| n == name).map(|(_, ms)| *ms)
}

/// One load phase. At concurrency 1 each request follows one bare session run on the same
/// input, and the bare figure is those runs' median: both are timed on the same machine
/// state, because this VM's speed drifts by up to a third over minutes, which separate phases
/// would turn into a false ratio. Under concurrency the bare figure is `fallback_ms`.
async fn load_phase<F, Fut>(concurrency: usize, requests: usize, bare: BareRun<'_>, call: F) -> anyhow::Result<Phase>
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<Stages>> + Send,
{
    if concurrency > 1 {
        let (samples, wall) = drive(concurrency, requests, call).await?;
        let rate = samples.len() as f64 / wall;
        return Ok(Phase::new(samples, rate, bare.fallback_ms));
    }
    let sets = [bare.inputs.to_vec()];
    let (mut samples, mut bare_runs) = (Vec::with_capacity(requests), Vec::with_capacity(requests));
    for n in 0..requests {
        let started = Instant::now();
        tokio::task::block_in_place(|| run_sets(bare.session, bare.models, &sets, 1))?;
        bare_runs.push(started.elapsed().as_secs_f64() * 1000.0);
        let sent = Instant::now();
        let stages = call(n).await?;
        samples.push(Sample {
            latency_ms: sent.elapsed().as_secs_f64() * 1000.0,
            stages,
        });
    }
    let rate = samples.len() as f64 * 1000.0 / samples.iter().map(|s| s.latency_ms).sum::<f64>();
    bare_runs.sort_by(f64::total_cmp);
    Ok(Phase::new(samples, rate, percentile(&bare_runs, 0.5)))
}

/// `requests` calls (numbered from 0) from `concurrency` tasks, each timed from its start;
/// returns them and the wall time in seconds.
async fn drive<F, Fut>(concurrency: usize, requests: usize, call: F) -> anyhow::Result<(Vec<Sample>, f64)>
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<Stages>> + Send,
{
    let started = Instant::now();
    let per_task = requests.div_ceil(concurrency);
    let mut tasks = Vec::new();
    for task in 0..concurrency {
        let call = call.clone();
        tasks.push(tokio::spawn(async move {
            let mut samples = Vec::with_capacity(per_task);
            for n in 0..per_task {
                let sent = Instant::now();
                let stages = call(task * per_task + n).await?;
                samples.push(Sample {
                    latency_ms: sent.elapsed().as_secs_f64() * 1000.0,
                    stages,
                });
            }
            Ok::<_, anyhow::Error>(samples)
        }));
    }
    let mut samples = Vec::new();
    for task in tasks {
        samples.extend(task.await??);
    }
    Ok((samples, started.elapsed().as_secs_f64()))
}

/// One render of `photo` in process (the pipeline's render path, strength 1, PNG out).
async fn render_once(models: Arc<Models>, photo: bytes::Bytes, code: Vec<f32>, size: u32) -> anyhow::Result<Stages> {
    use stylecast::generate::pipeline::{render, Photo, Styling};
    use stylecast::provenance::Mark;
    use timing::StageTimes;

    let upload = Photo {
        bytes: photo,
        limits: media::MediaLimits::default(),
        size,
    };
    let mark = Mark {
        generation_id: uuid::Uuid::new_v4(),
        model_version: models.version(),
    };
    let style = Styling {
        target: code,
        strength: 1.0,
    };
    let mut times = StageTimes::default();
    render(&models, upload, style, media::OutputFormat::Png, mark, &mut times)
        .await
        .map_err(|e| anyhow::anyhow!("render: {e}"))?;
    Ok(times.milliseconds())
}
