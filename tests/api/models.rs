//! The real ONNX models through ort: parity with PyTorch's golden outputs, dynamic
//! batching, overload, and Gram features that tell styles apart. Needs the files that
//! onnx/check.sh builds (vgg19_features.onnx, the demo style photos).

use std::path::Path;
use std::sync::Arc;

use ndarray::{ArrayD, IxDyn};
use ndarray_npy::read_npy;
use stylecast::generate::engine::{DevicePolicy, Engine, EngineConfig, EngineError};
use stylecast::generate::manifest::Manifest;
use stylecast::generate::models::Models;
use stylecast::generate::timing::StageTimes;
use stylecast::media;
use stylecast::style::gram;

fn runtime() -> &'static stylecast::onnx_runtime::OrtRuntime {
    let settings = stylecast::config::Settings::load(None).expect("settings");
    match stylecast::onnx_runtime::runtime(&settings.onnx.library_path) {
        Ok(runtime) => runtime,
        Err(status) => panic!("ONNX Runtime missing: {status:?}"),
    }
}

fn config(max_batch: usize, max_wait_ms: u64, queue_capacity: usize) -> EngineConfig {
    EngineConfig {
        sessions: 1,
        intra_threads: 2,
        max_batch,
        // The batcher is what these tests exercise; the service batches only on a GPU.
        dynamic_batching: DevicePolicy::Always,
        max_wait_ms,
        queue_capacity,
        memory_pattern: true,
        pad_batches: DevicePolicy::Never,
        square_frames: DevicePolicy::Never,
    }
}

fn engine(name: &str, config: &EngineConfig) -> Engine {
    let manifest = Manifest::load(Path::new("onnx")).expect("manifest");
    let (path, version) = manifest.verified_file(name).expect("model file");
    Engine::load(runtime(), name, version, &path, config).expect("load")
}

/// The demo influencers' codes as the exporter computed them, each [1, style_dim].
fn influencer_codes() -> Vec<ArrayD<f32>> {
    let text = std::fs::read_to_string("onnx/golden/influencer_codes.json").expect("influencer codes");
    let parsed: serde_json::Value = serde_json::from_str(&text).expect("json");
    let codes = parsed["codes"].as_object().expect("codes");
    codes
        .values()
        .map(|code| {
            let values: Vec<f32> = code
                .as_array()
                .expect("array")
                .iter()
                .map(|v| v.as_f64().expect("number") as f32)
                .collect();
            ArrayD::from_shape_vec(IxDyn(&[1, values.len()]), values).expect("shape")
        })
        .collect()
}

fn golden(name: &str) -> ArrayD<f32> {
    read_npy::<_, ArrayD<f32>>(format!("onnx/golden/{name}.npy")).expect("golden file")
}

/// max |a − b| / max |b|
fn relative_error(actual: &ArrayD<f32>, expected: &ArrayD<f32>) -> f32 {
    assert_eq!(actual.shape(), expected.shape());
    let worst = actual
        .iter()
        .zip(expected)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    worst / expected.iter().map(|v| v.abs()).fold(f32::MIN_POSITIVE, f32::max)
}

#[tokio::test]
async fn rust_ort_matches_the_pytorch_golden_outputs() {
    let encoder = engine("style_encoder", &config(1, 0, 4));
    let style = encoder.run(vec![golden("encoder_image")]).await.expect("encoder run");
    let error = relative_error(&style[0], &golden("encoder_style"));
    assert!(error <= 1e-4, "style encoder relative error {error}");

    let generator = engine("generator", &config(1, 0, 4));
    let image = generator
        .run(vec![golden("generator_content"), golden("generator_style")])
        .await
        .expect("generator run");
    let error = relative_error(&image[0], &golden("generator_image"));
    assert!(error <= 1e-4, "generator relative error {error}");
}

#[tokio::test]
async fn concurrent_requests_are_batched_and_each_gets_its_own_rows() {
    let recorder = stylecast::telemetry::prometheus().expect("recorder");
    let generator = Arc::new(engine("generator", &config(4, 20, 64)));
    let content = golden("generator_content");
    let styles = influencer_codes();
    assert_eq!(styles.len(), 8);
    let alone: Vec<ArrayD<f32>> = {
        let mut out = Vec::new();
        for style in &styles {
            out.push(generator.run(vec![content.clone(), style.clone()]).await.expect("run")[0].clone());
        }
        out
    };
    let together = futures_util::future::join_all(styles.iter().map(|style| {
        let generator = generator.clone();
        let inputs = vec![content.clone(), style.clone()];
        async move { generator.run(inputs).await }
    }))
    .await;
    for (n, result) in together.into_iter().enumerate() {
        let batched = &result.expect("batched run")[0];
        assert!(
            relative_error(batched, &alone[n]) <= 1e-4,
            "request {n} got another request's rows"
        );
    }
    // Only this test runs the generator with max_batch > 1: more rows than runs means
    // requests were served together.
    let rendered = recorder.render();
    let value = |metric: &str| -> f64 {
        rendered
            .lines()
            .find(|l| l.starts_with(&format!("{metric}{{model=\"generator\"}}")))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    let (rows, runs) = (
        value("stylecast_model_batch_size_sum"),
        value("stylecast_model_batch_size_count"),
    );
    assert!(rows > runs, "{rows} requests in {runs} runs: nothing was batched");
}

#[tokio::test]
async fn padded_batches_hand_back_only_the_requests_rows() {
    let plain = engine("generator", &config(1, 0, 4));
    let padded = engine(
        "generator",
        &EngineConfig {
            pad_batches: DevicePolicy::Always,
            ..config(4, 0, 4)
        },
    );
    let inputs = vec![golden("generator_content"), golden("generator_style")];
    let alone = plain.run(inputs.clone()).await.expect("run")[0].clone();
    let with_padding = padded.run(inputs).await.expect("padded run");
    assert_eq!(with_padding[0].shape(), alone.shape(), "the padding rows came back");
    let error = relative_error(&with_padding[0], &alone);
    assert!(error <= 1e-4, "padded output differs: {error}");
}

/// A square frame (the GPU default) keeps the photo's size and stays close to the unframed
/// output. Not identical: the instance norms take their statistics over the whole frame,
/// reflected border included, which shifts tones a little (measured: 0.032 mean absolute
/// difference on [0, 1], about 8 of 255 levels, for this photo).
#[tokio::test]
async fn square_frames_keep_the_photos_size_and_stay_close_to_the_unframed_output() {
    let settings = stylecast::config::Settings::load(None).expect("settings");
    let models = |square_frames| {
        let config = EngineConfig {
            square_frames,
            ..config(1, 0, 4)
        };
        Models::load(&settings.onnx.library_path, Path::new("onnx"), "stylecast", &config).expect("models")
    };
    let (plain, framed) = (models(DevicePolicy::Never), models(DevicePolicy::Always));
    let bytes = std::fs::read("onnx/styles/content_full/coffee.png").expect("coffee.png; run onnx/check.sh");
    let content = media::fit(
        &media::decode(&bytes, &media::MediaLimits::default()).expect("decode"),
        256,
        8,
    );
    assert_ne!(
        content.width(),
        content.height(),
        "the test needs a photo that is not square"
    );
    let code: Vec<f32> = golden("generator_style").iter().copied().collect();
    let mut times = StageTimes::default();
    let unframed = plain
        .stylize(content.clone(), code.clone(), &mut times)
        .await
        .expect("plain");
    let squared = framed.stylize(content.clone(), code, &mut times).await.expect("framed");
    let size = [1, 3, content.height() as usize, content.width() as usize];
    assert_eq!((unframed.shape(), squared.shape()), (&size[..], &size[..]));
    let mean_difference =
        unframed.iter().zip(&squared).map(|(a, b)| (a - b).abs()).sum::<f32>() / unframed.len() as f32;
    println!("mean |framed - unframed| = {mean_difference}");
    assert!(
        mean_difference < 0.05,
        "framed output differs by {mean_difference} on average"
    );
}

#[tokio::test]
async fn one_request_at_a_time_stays_on_the_session_that_ran_last() {
    let two_sessions = EngineConfig {
        sessions: 2,
        intra_threads: 1,
        ..config(1, 0, 8)
    };
    let generator = engine("generator", &two_sessions);
    // Both workers reach the idle stack; which of them is on top is a matter of thread start.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let inputs = vec![golden("generator_content"), golden("generator_style")];
    for _ in 0..6 {
        generator.run(inputs.clone()).await.expect("run");
    }
    let mut runs = generator.runs_per_session();
    runs.sort_unstable();
    // A plain shared channel wakes the worker idle longest, which alternates: [3, 3].
    assert_eq!(runs, vec![0, 6], "sequential runs were spread over the sessions");

    // Two at once still use both.
    let (a, b) = tokio::join!(generator.run(inputs.clone()), generator.run(inputs.clone()));
    a.expect("first");
    b.expect("second");
    assert!(
        generator.runs_per_session().iter().all(|&n| n > 0),
        "{:?}",
        generator.runs_per_session()
    );
}

#[tokio::test]
async fn a_job_behind_another_reports_its_wait_apart_from_its_run() {
    // One session, no batching: the second job waits for the first one's whole run.
    let generator = engine("generator", &config(1, 0, 8));
    let inputs = vec![golden("generator_content"), golden("generator_style")];
    generator.run(inputs.clone()).await.expect("warm-up");
    let (a, b) = tokio::join!(generator.run_timed(inputs.clone()), generator.run_timed(inputs.clone()));
    let (a, b) = (a.expect("first"), b.expect("second"));
    let (first, second) = if a.queued <= b.queued { (a, b) } else { (b, a) };
    assert_eq!((first.batch, second.batch), (1, 1));
    assert!(first.run > std::time::Duration::ZERO && second.run > std::time::Duration::ZERO);
    assert!(
        second.queued >= first.run / 2,
        "waited {:?} behind a run of {:?}",
        second.queued,
        first.run
    );
    assert_eq!(second.outputs[0].shape(), first.outputs[0].shape());
}

#[tokio::test]
async fn a_full_queue_answers_overloaded_at_once() {
    let generator = Arc::new(engine("generator", &config(1, 0, 1)));
    let content = ArrayD::<f32>::zeros(IxDyn(&[1, 3, 256, 256]));
    let style = influencer_codes().remove(0);
    let results = futures_util::future::join_all((0..12).map(|_| {
        let generator = generator.clone();
        let inputs = vec![content.clone(), style.clone()];
        async move { generator.run(inputs).await }
    }))
    .await;
    let overloaded = results
        .iter()
        .filter(|r| matches!(r, Err(EngineError::Overloaded)))
        .count();
    let served = results.iter().filter(|r| r.is_ok()).count();
    assert!(
        overloaded >= 1 && served >= 1,
        "overloaded {overloaded}, served {served}"
    );
    assert_eq!(overloaded + served, 12);
}

fn photo_tensor(path: &str, side: u32) -> ArrayD<f32> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}; run onnx/check.sh"));
    let image = media::square(
        &media::decode(&bytes, &media::MediaLimits::default()).expect("decode"),
        side,
    );
    ArrayD::from_shape_fn(IxDyn(&[1, 3, side as usize, side as usize]), |i| {
        f32::from(image.get_pixel(i[3] as u32, i[2] as u32)[i[1]]) / 255.0
    })
}

#[tokio::test]
async fn vgg_grams_tell_two_influencers_apart() {
    let vgg = engine("vgg19_features", &config(1, 0, 4));
    let grams = |tensor: ArrayD<f32>| {
        let vgg = &vgg;
        async move {
            let layers = vgg.run(vec![tensor]).await.expect("vgg run");
            let views: Vec<_> = layers.iter().map(|l| l.view()).collect();
            gram::grams_of(&views, 0)
        }
    };
    let noir = grams(photo_tensor("onnx/styles/noir_nadia/0.jpg", 128)).await;
    let noir_again = grams(photo_tensor("onnx/styles/noir_nadia/0.jpg", 120)).await;
    let neon = grams(photo_tensor("onnx/styles/neon_nova/0.jpg", 128)).await;
    assert_eq!(noir.len(), 4, "relu1_1..relu4_1");
    let same = gram::distance(&noir, &noir_again);
    let different = gram::distance(&noir, &neon);
    assert!(
        different > 5.0 * same,
        "same photo {same}, other influencer {different}"
    );
}
