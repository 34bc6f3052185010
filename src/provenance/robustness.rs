//! How well the watermark survives: random crops of real photos at random sizes and aspect
//! ratios, each stamped with a random id, then attacked (JPEG q75, a 0.5x resize, both) and
//! read back. Shared by the unit test (which asserts the rates) and `provenance-bench`
//! (which also times it).

use std::path::Path;
use std::time::{Duration, Instant};

use image::imageops::{self, FilterType};
use image::RgbImage;
use rand::{Rng, SeedableRng};

use super::watermark;

/// Reads back after each attack, out of `images`.
#[derive(Debug, Default, Clone)]
pub struct Report {
    pub images: usize,
    pub clean: usize,
    pub jpeg75: usize,
    pub half: usize,
    pub half_then_jpeg75: usize,
    /// Reads that passed the CRC with the wrong id (should be 0).
    pub wrong_ids: usize,
    /// Unwatermarked originals that read as watermarked (should be 0).
    pub false_positives: usize,
    pub psnr_mean: f64,
    pub psnr_min: f64,
    pub embed: Duration,
    pub detect: Duration,
}

/// Every JPEG and PNG under `dir`, one level of folders deep.
pub fn load_photos(dir: &Path) -> std::io::Result<Vec<RgbImage>> {
    let mut photos = Vec::new();
    let mut folders = vec![dir.to_path_buf()];
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            folders.push(path);
        }
    }
    folders.sort();
    for folder in folders {
        let mut files: Vec<_> = std::fs::read_dir(&folder)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "jpg" || x == "png"))
            .collect();
        files.sort();
        for file in files {
            if let Ok(image) = image::open(&file) {
                photos.push(image.to_rgb8());
            }
        }
    }
    Ok(photos)
}

/// A random crop of a random photo, `w`×`h` with each side in 128..=512.
fn test_image(photos: &[RgbImage], rng: &mut impl Rng) -> RgbImage {
    let photo = &photos[rng.random_range(0..photos.len())];
    let (w, h) = (rng.random_range(128..=512u32), rng.random_range(128..=512u32));
    let (pw, ph) = photo.dimensions();
    let scale = (f64::from(pw) / f64::from(w)).min(f64::from(ph) / f64::from(h)) * rng.random_range(0.5..=1.0);
    let (cw, ch) = (
        ((f64::from(w) * scale) as u32).clamp(1, pw),
        ((f64::from(h) * scale) as u32).clamp(1, ph),
    );
    let (x, y) = (rng.random_range(0..=pw - cw), rng.random_range(0..=ph - ch));
    let crop = imageops::crop_imm(photo, x, y, cw, ch).to_image();
    imageops::resize(&crop, w, h, FilterType::CatmullRom)
}

pub fn jpeg(image: &RgbImage, quality: u8) -> Result<RgbImage, image::ImageError> {
    let mut out = std::io::Cursor::new(Vec::new());
    image.write_with_encoder(image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality))?;
    Ok(image::load_from_memory(&out.into_inner())?.to_rgb8())
}

pub fn half(image: &RgbImage, filter: FilterType) -> RgbImage {
    imageops::resize(image, image.width() / 2, image.height() / 2, filter)
}

pub fn psnr(a: &RgbImage, b: &RgbImage) -> f64 {
    let squared: f64 = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2))
        .sum();
    let mse = squared / a.as_raw().len() as f64;
    10.0 * (255.0f64.powi(2) / mse.max(f64::MIN_POSITIVE)).log10()
}

/// Stamps and attacks `images` test images (seeded, so runs repeat); resizes alternate
/// between the triangle and Lanczos3 filters.
pub fn evaluate(photos: &[RgbImage], images: usize, seed: u64) -> Result<Report, image::ImageError> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut report = Report {
        images,
        psnr_min: f64::INFINITY,
        ..Report::default()
    };
    let mut psnr_sum = 0.0;
    for n in 0..images {
        let original = test_image(photos, &mut rng);
        let id = uuid::Builder::from_random_bytes(rng.random()).into_uuid();
        let started = Instant::now();
        let Ok(marked) = watermark::embed(&original, id) else {
            continue;
        };
        report.embed += started.elapsed();
        let psnr = psnr(&original, &marked);
        psnr_sum += psnr;
        report.psnr_min = report.psnr_min.min(psnr);
        let filter = if n % 2 == 0 {
            FilterType::Triangle
        } else {
            FilterType::Lanczos3
        };
        let mut read = |image: &RgbImage| -> usize {
            match watermark::detect(image) {
                Ok(Some(found)) if found.id == id => 1,
                Ok(Some(_)) => {
                    report.wrong_ids += 1;
                    0
                }
                _ => 0,
            }
        };
        let started = Instant::now();
        let clean = read(&marked);
        let detect_time = started.elapsed();
        let jpeg75 = read(&jpeg(&marked, 75)?);
        let halved = read(&half(&marked, filter));
        let both = read(&jpeg(&half(&marked, filter), 75)?);
        report.detect += detect_time;
        report.clean += clean;
        report.jpeg75 += jpeg75;
        report.half += halved;
        report.half_then_jpeg75 += both;
        if matches!(watermark::detect(&original), Ok(Some(_))) {
            report.false_positives += 1;
        }
    }
    report.psnr_mean = psnr_sum / images as f64;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    use crate::provenance::watermark::{detect, embed};

    fn photos() -> Vec<RgbImage> {
        let photos = load_photos(std::path::Path::new("onnx/styles")).expect("onnx/styles");
        assert!(photos.len() >= 20, "run onnx/check.sh first: {} photos", photos.len());
        photos
    }

    #[test]
    fn an_id_reads_back_and_an_unmarked_photo_reads_as_none() {
        let photo = image::imageops::resize(&photos()[0], 200, 150, image::imageops::FilterType::Triangle);
        let id = Uuid::new_v4();
        let marked = embed(&photo, id).expect("embed");
        assert_eq!(detect(&marked).expect("detect").map(|d| d.id), Some(id));
        assert_eq!(detect(&photo).expect("detect"), None);
        assert!(psnr(&photo, &marked) > 35.0);
    }

    /// Issue 7's bar: the id survives JPEG q75 and a 0.5x resize in at least 95% of 200 test
    /// images (crops of the demo photos, each side 128..=512). 200 take minutes in a debug
    /// build, so CI reads 40 (the same seed's first 40); `PROVENANCE_IMAGES=200` reads all,
    /// as does `provenance-bench`, which fails below 95% too.
    #[test]
    fn ids_survive_jpeg_q75_and_half_size_in_95_percent_of_the_test_images() {
        let images = std::env::var("PROVENANCE_IMAGES")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(40);
        let report = evaluate(&photos(), images, 7).expect("evaluate");
        println!("{report:?}");
        let rate = |n: usize| n as f64 / report.images as f64;
        assert_eq!(report.clean, report.images);
        assert!(rate(report.jpeg75) >= 0.95, "{report:?}");
        assert!(rate(report.half) >= 0.95, "{report:?}");
        assert!(rate(report.half_then_jpeg75) >= 0.95, "{report:?}");
        assert_eq!((report.wrong_ids, report.false_positives), (0, 0));
        assert!(report.psnr_min >= 35.0, "{report:?}");
    }
}
