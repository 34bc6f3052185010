//! Provenance benchmark: how often the watermark's id survives JPEG q75, a 0.5x resize and
//! both, on 200 crops of the demo photos (each side 128..=512); its PSNR; and the time it
//! adds per image (stamp, read) at 256² and 512².
//!
//!     cargo run --release --bin provenance-bench
//!
//! Needs the demo photos in onnx/styles (`bash onnx/check.sh`).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use image::imageops::FilterType;
use stylecast::provenance::{robustness, watermark};
use uuid::Uuid;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 200)]
    images: usize,
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Repetitions of each timing.
    #[arg(long, default_value_t = 50)]
    repeat: usize,
    #[arg(long, default_value = "onnx/styles")]
    photos: PathBuf,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let photos = robustness::load_photos(&args.photos).context("reading the photos")?;
    anyhow::ensure!(!photos.is_empty(), "no photos under {}", args.photos.display());
    let report = robustness::evaluate(&photos, args.images, args.seed)?;
    let pct = |n: usize| 100.0 * n as f64 / report.images as f64;
    println!("{} images (seed {}), ids read back:", report.images, args.seed);
    println!("  untouched           {:>5.1}%", pct(report.clean));
    println!("  JPEG q75            {:>5.1}%", pct(report.jpeg75));
    println!("  0.5x resize         {:>5.1}%", pct(report.half));
    println!("  0.5x then JPEG q75  {:>5.1}%", pct(report.half_then_jpeg75));
    println!(
        "  wrong ids {}, false positives on unmarked originals {}",
        report.wrong_ids, report.false_positives
    );
    println!(
        "PSNR watermarked vs original: mean {:.2} dB, min {:.2} dB",
        report.psnr_mean, report.psnr_min
    );
    for (attack, read) in [
        ("JPEG q75", report.jpeg75),
        ("0.5x resize", report.half),
        ("0.5x then JPEG q75", report.half_then_jpeg75),
    ] {
        anyhow::ensure!(pct(read) >= 95.0, "{attack}: {:.1}% is under 95%", pct(read));
    }
    for side in [256u32, 512] {
        let image = image::imageops::resize(&photos[0], side, side, FilterType::Triangle);
        let id = Uuid::new_v4();
        let started = Instant::now();
        let mut marked = image.clone();
        for _ in 0..args.repeat {
            marked = watermark::embed(&image, id)?;
        }
        let stamp = started.elapsed().as_secs_f64() * 1000.0 / args.repeat as f64;
        let started = Instant::now();
        for _ in 0..args.repeat {
            anyhow::ensure!(watermark::detect(&marked)?.map(|d| d.id) == Some(id), "read back");
        }
        let read = started.elapsed().as_secs_f64() * 1000.0 / args.repeat as f64;
        println!("{side}x{side}: stamp {stamp:.2} ms, read {read:.2} ms");
    }
    Ok(())
}
