//! The image front door: size and pixel-area limits checked from the header before the
//! full decode, EXIF orientation applied, everything normalised to RGB8; and encoding.

use std::io::Cursor;

use fast_image_resize::images::{Image, ImageRef};
pub use fast_image_resize::FilterType;
use fast_image_resize::{PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits, RgbImage};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Deserialize)]
pub struct MediaLimits {
    pub max_bytes: usize,
    pub max_side: u32,
    pub max_pixels: u64,
}

impl Default for MediaLimits {
    fn default() -> Self {
        Self {
            max_bytes: 10 * 1024 * 1024,
            max_side: 8192,
            max_pixels: 25_000_000,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MediaError {
    #[error("image is empty")]
    Empty,
    #[error("image is {actual} bytes; the limit is {limit}")]
    TooLarge { actual: usize, limit: usize },
    #[error("not a JPEG, PNG or WebP image")]
    UnsupportedFormat,
    #[error(
        "image is {width}x{height}; each side must be at most {max_side} and the area at most {max_pixels} pixels"
    )]
    TooManyPixels {
        width: u32,
        height: u32,
        max_side: u32,
        max_pixels: u64,
    },
    #[error("image has a zero side")]
    ZeroSized,
    #[error("image is truncated: {0}; send the whole file")]
    Truncated(&'static str),
    #[error("image could not be decoded: {0}")]
    Corrupt(String),
}

impl MediaError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Empty => "empty_image",
            Self::TooLarge { .. } => "image_too_large",
            Self::UnsupportedFormat => "unsupported_image_format",
            Self::TooManyPixels { .. } => "image_too_many_pixels",
            Self::ZeroSized => "image_zero_sized",
            Self::Truncated(_) => "truncated_image",
            Self::Corrupt(_) => "corrupt_image",
        }
    }
}

/// Decodes an upload into RGB8 with its EXIF orientation applied.
pub fn decode(bytes: &[u8], limits: &MediaLimits) -> Result<RgbImage, MediaError> {
    let format = accepted_format(bytes, limits)?;
    decode_whole(bytes, format, limits)
}

/// Decodes an upload that will be scaled to a longest side of `longest`. A JPEG at least
/// twice that size is decoded at 1/2, 1/4 or 1/8 scale straight from its DCT coefficients
/// (libjpeg's scaled decode), which skips most of the inverse DCT, upsampling and colour
/// conversion: the longest side still comes out at `longest` or more, so `fit` has the
/// pixels it needs. A 1411² photo for a 256 output decodes about 5× faster (BENCHMARKS.md).
/// Every other upload decodes whole, as `decode` does.
pub fn decode_for_size(bytes: &[u8], limits: &MediaLimits, longest: u32) -> Result<RgbImage, MediaError> {
    let format = accepted_format(bytes, limits)?;
    if format == ImageFormat::Jpeg {
        // A panic in the second decoder on a hostile file must not become a 500: the whole
        // decode then judges the file.
        let scaled = std::panic::catch_unwind(|| decode_jpeg_scaled(bytes, limits, longest)).unwrap_or(Ok(None));
        if let Some(image) = scaled? {
            return Ok(image);
        }
    }
    decode_whole(bytes, format, limits)
}

/// The JPEG decoded at the smallest DCT scale whose longest side is still at least
/// `longest`. `None` where that scale is 1, where the colour model is not RGB or grey (CMYK,
/// 16-bit lossless), or where this decoder fails: the whole decode then handles the file and
/// names any fault, so a bad upload gets the same answer either way.
fn decode_jpeg_scaled(bytes: &[u8], limits: &MediaLimits, longest: u32) -> Result<Option<RgbImage>, MediaError> {
    let mut decoder = jpeg_decoder::Decoder::new(bytes);
    let Some(info) = decoder.read_info().ok().and_then(|()| decoder.info()) else {
        return Ok(None);
    };
    check_dimensions(u32::from(info.width), u32::from(info.height), limits)?;
    if u32::from(info.width.max(info.height)) < longest.saturating_mul(2) {
        return Ok(None);
    }
    let pixel_format = info.pixel_format;
    if !matches!(
        pixel_format,
        jpeg_decoder::PixelFormat::RGB24 | jpeg_decoder::PixelFormat::L8
    ) {
        return Ok(None);
    }
    let request = u16::try_from(longest).unwrap_or(u16::MAX);
    let Ok((width, height)) = decoder.scale(request, request) else {
        return Ok(None);
    };
    let Ok(pixels) = decoder.decode() else {
        return Ok(None);
    };
    let (width, height) = (u32::from(width), u32::from(height));
    let image = match pixel_format {
        jpeg_decoder::PixelFormat::L8 => {
            image::GrayImage::from_raw(width, height, pixels).map(DynamicImage::ImageLuma8)
        }
        _ => RgbImage::from_raw(width, height, pixels).map(DynamicImage::ImageRgb8),
    };
    let Some(mut image) = image else {
        return Ok(None);
    };
    let orientation = decoder
        .exif_data()
        .and_then(image::metadata::Orientation::from_exif_chunk)
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    image.apply_orientation(orientation);
    Ok(Some(image.to_rgb8()))
}

/// The upload's format, once its size and magic bytes pass.
fn accepted_format(bytes: &[u8], limits: &MediaLimits) -> Result<ImageFormat, MediaError> {
    if bytes.is_empty() {
        return Err(MediaError::Empty);
    }
    if bytes.len() > limits.max_bytes {
        return Err(MediaError::TooLarge {
            actual: bytes.len(),
            limit: limits.max_bytes,
        });
    }
    let format = image::guess_format(bytes).map_err(|_| MediaError::UnsupportedFormat)?;
    if !matches!(format, ImageFormat::Jpeg | ImageFormat::Png | ImageFormat::WebP) {
        return Err(MediaError::UnsupportedFormat);
    }
    check_complete(bytes, format)?;
    Ok(format)
}

/// Whether the file ends where its own structure says it does. Decoders are lenient by
/// design: a JPEG cut anywhere after its first scan decodes "fine", grey where the data
/// stopped, and a PNG cut inside its last rows can too. Only the container tells: a JPEG's
/// end-of-image marker after its first scan, a PNG's chunks up to IEND, a WebP's RIFF size.
/// All three read headers only, never the pixels.
pub fn check_complete(bytes: &[u8], format: ImageFormat) -> Result<(), MediaError> {
    match format {
        ImageFormat::Jpeg => jpeg_complete(bytes),
        ImageFormat::Png => png_complete(bytes),
        ImageFormat::WebP => webp_complete(bytes),
        _ => Ok(()),
    }
}

/// Walks the marker segments to the first start-of-scan, then looks for an end-of-image
/// marker after it. Inside entropy-coded data a 0xFF byte is always followed by 0x00 or a
/// restart marker (0xD0–0xD7), so 0xFF 0xD9 there can only be the real end; an EXIF
/// thumbnail's own end marker sits before the first scan and does not count.
fn jpeg_complete(bytes: &[u8]) -> Result<(), MediaError> {
    const CUT: MediaError = MediaError::Truncated("the JPEG has no end-of-image marker after its scan data");
    let mut at = 2;
    let scan_start = loop {
        let (Some(&prefix), Some(&marker)) = (bytes.get(at), bytes.get(at + 1)) else {
            return Err(CUT);
        };
        if prefix != 0xFF {
            return Err(MediaError::Corrupt(format!("the JPEG has no marker at byte {at}")));
        }
        match marker {
            // Fill bytes before a marker.
            0xFF => at += 1,
            0xDA => break at,
            0xD9 => return Err(MediaError::Corrupt("the JPEG ends before its first scan".into())),
            // Markers without a length.
            0x01 | 0xD0..=0xD7 => at += 2,
            _ => {
                let length = bytes.get(at + 2..at + 4).ok_or(CUT)?;
                at += 2 + usize::from(u16::from_be_bytes([length[0], length[1]]));
            }
        }
    };
    let has_end = bytes[scan_start..].windows(2).rev().any(|pair| pair == [0xFF, 0xD9]);
    if has_end {
        Ok(())
    } else {
        Err(CUT)
    }
}

/// Walks the chunks (length, type, data, CRC) from the signature to IEND.
fn png_complete(bytes: &[u8]) -> Result<(), MediaError> {
    const CUT: MediaError = MediaError::Truncated("the PNG ends before its IEND chunk");
    let mut at: usize = 8;
    loop {
        let header = bytes.get(at..at + 8).ok_or(CUT)?;
        let length = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let end = at.checked_add(12).and_then(|n| n.checked_add(length)).ok_or(CUT)?;
        if end > bytes.len() {
            return Err(CUT);
        }
        if &header[4..8] == b"IEND" {
            return Ok(());
        }
        at = end;
    }
}

/// The RIFF header states the file's size.
fn webp_complete(bytes: &[u8]) -> Result<(), MediaError> {
    const CUT: MediaError = MediaError::Truncated("the WebP is shorter than its RIFF header says");
    let size = bytes.get(4..8).ok_or(CUT)?;
    let stated = u64::from(u32::from_le_bytes([size[0], size[1], size[2], size[3]])) + 8;
    if (bytes.len() as u64) < stated {
        return Err(CUT);
    }
    Ok(())
}

/// The header alone decides whether the pixels may be decoded (decompression bombs stop here).
fn check_dimensions(width: u32, height: u32, limits: &MediaLimits) -> Result<(), MediaError> {
    if width == 0 || height == 0 {
        return Err(MediaError::ZeroSized);
    }
    if width > limits.max_side || height > limits.max_side || u64::from(width) * u64::from(height) > limits.max_pixels {
        return Err(MediaError::TooManyPixels {
            width,
            height,
            max_side: limits.max_side,
            max_pixels: limits.max_pixels,
        });
    }
    Ok(())
}

fn decode_whole(bytes: &[u8], format: ImageFormat, limits: &MediaLimits) -> Result<RgbImage, MediaError> {
    // The header's dimensions first, without decoder limits, so an over-size image is refused
    // with its real size (the decoder's own limit error carries no numbers).
    let (width, height) = ImageReader::with_format(Cursor::new(bytes), format)
        .into_dimensions()
        .map_err(corrupt_or_limit)?;
    check_dimensions(width, height, limits)?;
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut decoder_limits = Limits::default();
    decoder_limits.max_image_width = Some(limits.max_side);
    decoder_limits.max_image_height = Some(limits.max_side);
    decoder_limits.max_alloc = Some(limits.max_pixels * 8);
    reader.limits(decoder_limits);
    let mut decoder = reader.into_decoder().map_err(corrupt_or_limit)?;
    let (width, height) = decoder.dimensions();
    check_dimensions(width, height, limits)?;
    let orientation = decoder.orientation().map_err(corrupt_or_limit)?;
    let mut image = DynamicImage::from_decoder(decoder).map_err(corrupt_or_limit)?;
    image.apply_orientation(orientation);
    Ok(image.to_rgb8())
}

fn corrupt_or_limit(err: image::ImageError) -> MediaError {
    match err {
        image::ImageError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            MediaError::Truncated("the data ends inside the image")
        }
        image::ImageError::Limits(_) => MediaError::TooManyPixels {
            width: 0,
            height: 0,
            max_side: 0,
            max_pixels: 0,
        },
        other => MediaError::Corrupt(other.to_string()),
    }
}

/// Scales so the longest side is `longest` (never up), then crops each side down to a
/// multiple of `multiple` (the generator's stride), keeping the centre.
pub fn fit(image: &RgbImage, longest: u32, multiple: u32) -> RgbImage {
    let (w, h) = image.dimensions();
    let scale = (f64::from(longest) / f64::from(w.max(h))).min(1.0);
    let (sw, sh) = (
        ((f64::from(w) * scale).round() as u32).max(multiple),
        ((f64::from(h) * scale).round() as u32).max(multiple),
    );
    let scaled = if (sw, sh) == (w, h) {
        image.clone()
    } else {
        resize(image, sw, sh, FilterType::CatmullRom)
    };
    let (cw, ch) = (sw / multiple * multiple, sh / multiple * multiple);
    image::imageops::crop_imm(&scaled, (sw - cw) / 2, (sh - ch) / 2, cw, ch).to_image()
}

/// Centre square crop resized to `side` (how style photos are fed to the encoder).
pub fn square(image: &RgbImage, side: u32) -> RgbImage {
    let (w, h) = image.dimensions();
    let s = w.min(h);
    let cropped = image::imageops::crop_imm(image, (w - s) / 2, (h - s) / 2, s, s).to_image();
    resize(&cropped, side, side, FilterType::Bilinear)
}

/// `image` resampled to `width`×`height` with `filter` (fast_image_resize's SIMD kernels):
/// the one resize the service's own image work goes through.
pub fn resize(image: &RgbImage, width: u32, height: u32, filter: FilterType) -> RgbImage {
    let (w, h) = image.dimensions();
    let mut out = vec![0u8; width as usize * height as usize * 3];
    if resample(
        image.as_raw(),
        (w, h),
        &mut out,
        (width, height),
        PixelType::U8x3,
        filter,
    )
    .is_err()
    {
        // Only an empty side gets here; an empty image is the right answer for it.
        out.fill(0);
    }
    RgbImage::from_raw(width, height, out).unwrap_or_else(|| RgbImage::new(width, height))
}

/// One f32 channel (`width`×`height`, row-major) resampled with `filter`, values unclamped.
pub fn resize_plane(plane: &[f32], (w, h): (u32, u32), (width, height): (u32, u32), filter: FilterType) -> Vec<f32> {
    let mut out = vec![0.0f32; width as usize * height as usize];
    let src: &[u8] = bytemuck::cast_slice(plane);
    if resample(
        src,
        (w, h),
        bytemuck::cast_slice_mut(&mut out),
        (width, height),
        PixelType::F32,
        filter,
    )
    .is_err()
    {
        out.fill(0.0);
    }
    out
}

fn resample(
    src: &[u8],
    (w, h): (u32, u32),
    dst: &mut [u8],
    (width, height): (u32, u32),
    pixel: PixelType,
    filter: FilterType,
) -> Result<(), String> {
    if w == 0 || h == 0 || width == 0 || height == 0 {
        return Err("empty image".into());
    }
    let src = ImageRef::new(w, h, src, pixel).map_err(|e| e.to_string())?;
    let mut dst = Image::from_slice_u8(width, height, dst, pixel).map_err(|e| e.to_string())?;
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(filter));
    Resizer::new()
        .resize(&src, &mut dst, &options)
        .map_err(|e| e.to_string())
}

/// Output encodings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    #[default]
    Png,
    Jpeg,
    Webp,
}

impl OutputFormat {
    pub fn parse(value: &str) -> Option<Self> {
        match value.to_ascii_lowercase().as_str() {
            "png" => Some(Self::Png),
            "jpeg" | "jpg" => Some(Self::Jpeg),
            "webp" => Some(Self::Webp),
            _ => None,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Png => "image/png",
            Self::Jpeg => "image/jpeg",
            Self::Webp => "image/webp",
        }
    }
}

/// Encodes deterministically (same pixels → same bytes).
pub fn encode(image: &RgbImage, format: OutputFormat) -> Result<Vec<u8>, image::ImageError> {
    let mut out = Cursor::new(Vec::new());
    match format {
        OutputFormat::Png => image.write_to(&mut out, ImageFormat::Png)?,
        OutputFormat::Jpeg => {
            let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90);
            image.write_with_encoder(encoder)?;
        }
        OutputFormat::Webp => image.write_to(&mut out, ImageFormat::WebP)?,
    }
    Ok(out.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(width: u32, height: u32) -> Vec<u8> {
        let image = RgbImage::from_fn(width, height, |x, y| image::Rgb([(x % 256) as u8, (y % 256) as u8, 7]));
        encode(&image, OutputFormat::Png).expect("encode")
    }

    #[test]
    fn a_valid_png_decodes_to_its_size() {
        let decoded = decode(&png(40, 30), &MediaLimits::default()).expect("decodes");
        assert_eq!(decoded.dimensions(), (40, 30));
    }

    #[test]
    fn bad_inputs_get_their_own_codes() {
        let limits = MediaLimits {
            max_bytes: 1_000_000,
            max_side: 100,
            max_pixels: 5_000,
        };
        assert_eq!(decode(b"", &limits).err().map(|e| e.code()), Some("empty_image"));
        assert_eq!(
            decode(b"hello world", &limits).err().map(|e| e.code()),
            Some("unsupported_image_format")
        );
        assert_eq!(
            decode(&png(200, 10), &limits).err().map(|e| e.code()),
            Some("image_too_many_pixels")
        );
        assert_eq!(
            decode(&png(80, 80), &limits).err().map(|e| e.code()),
            Some("image_too_many_pixels")
        );
        let truncated = &png(50, 50)[..60];
        assert_eq!(
            decode(truncated, &limits).err().map(|e| e.code()),
            Some("truncated_image")
        );
        let big = MediaLimits {
            max_bytes: 10,
            ..limits
        };
        assert_eq!(
            decode(&png(5, 5), &big).err().map(|e| e.code()),
            Some("image_too_large")
        );
    }

    /// A photo-like image (smooth, with edges) in each upload format.
    fn photo_like(format: OutputFormat) -> Vec<u8> {
        let image = RgbImage::from_fn(320, 240, |x, y| {
            let stripe = if (x / 20 + y / 30) % 2 == 0 { 60 } else { 0 };
            image::Rgb([(x * 255 / 320) as u8, (y * 255 / 240) as u8, 90 + stripe])
        });
        encode(&image, format).expect("encode")
    }

    #[test]
    fn uploads_cut_anywhere_are_truncated_not_decoded() {
        for format in [OutputFormat::Jpeg, OutputFormat::Png, OutputFormat::Webp] {
            let whole = photo_like(format);
            assert!(decode(&whole, &MediaLimits::default()).is_ok(), "{format:?} whole");
            for keep in [0.33, 0.5, 0.67, 0.9, 0.97, 0.995] {
                let cut = &whole[..(whole.len() as f64 * keep) as usize];
                for decoded in [
                    decode(cut, &MediaLimits::default()),
                    decode_for_size(cut, &MediaLimits::default(), 64),
                ] {
                    assert_eq!(
                        decoded.err().map(|e| e.code()),
                        Some("truncated_image"),
                        "{format:?} cut to {keep} of {} bytes",
                        whole.len()
                    );
                }
            }
            // The last byte alone: a JPEG loses half its end marker, a PNG its IEND's CRC.
            let short = &whole[..whole.len() - 1];
            assert_eq!(
                decode(short, &MediaLimits::default()).err().map(|e| e.code()),
                Some("truncated_image"),
                "{format:?} less its last byte"
            );
        }
    }

    #[test]
    fn bytes_after_the_end_and_an_exif_thumbnail_do_not_count_as_truncation() {
        let mut padded = photo_like(OutputFormat::Jpeg);
        padded.extend_from_slice(&[0u8; 64]);
        assert!(decode(&padded, &MediaLimits::default()).is_ok());
        // An APP1 segment whose payload holds its own end marker (as an EXIF thumbnail does),
        // before a main image that is cut.
        let whole = photo_like(OutputFormat::Jpeg);
        let mut with_thumbnail = whole[..2].to_vec();
        let payload = [b"Exif\0\0".as_slice(), &[0xFF, 0xD8, 0x00, 0xFF, 0xD9]].concat();
        with_thumbnail.extend_from_slice(&[0xFF, 0xE1]);
        with_thumbnail.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
        with_thumbnail.extend_from_slice(&payload);
        with_thumbnail.extend_from_slice(&whole[2..]);
        assert!(decode(&with_thumbnail, &MediaLimits::default()).is_ok());
        let cut = &with_thumbnail[..with_thumbnail.len() / 2];
        assert_eq!(
            decode(cut, &MediaLimits::default()).err().map(|e| e.code()),
            Some("truncated_image")
        );
    }

    #[test]
    fn an_over_size_png_is_refused_with_its_real_size() {
        let limits = MediaLimits {
            max_side: 100,
            ..MediaLimits::default()
        };
        let err = decode(&png(101, 10), &limits).expect_err("refused");
        assert_eq!(err.code(), "image_too_many_pixels");
        assert!(err.to_string().contains("101x10"), "{err}");
        assert!(err.to_string().contains("at most 100"), "{err}");
    }

    #[test]
    fn a_decompression_bomb_is_refused_from_its_header() {
        // A 20000x20000 all-black PNG compresses to a few hundred KB: the header says so first.
        let bomb = {
            let mut out = Cursor::new(Vec::new());
            let encoder = image::codecs::png::PngEncoder::new(&mut out);
            let row = vec![0u8; 20_000];
            let mut data = Vec::with_capacity(20_000 * 2_000);
            for _ in 0..2_000 {
                data.extend_from_slice(&row);
            }
            image::ImageEncoder::write_image(encoder, &data, 20_000, 2_000, image::ExtendedColorType::L8)
                .expect("encode");
            out.into_inner()
        };
        let err = decode(&bomb, &MediaLimits::default()).err();
        assert_eq!(err.map(|e| e.code()), Some("image_too_many_pixels"));
    }

    #[test]
    fn fit_scales_the_longest_side_and_rounds_to_the_stride() {
        let image = RgbImage::new(1000, 750);
        assert_eq!(fit(&image, 256, 8).dimensions(), (256, 192));
        assert_eq!(fit(&RgbImage::new(100, 61), 256, 8).dimensions(), (96, 56));
        assert_eq!(square(&image, 64).dimensions(), (64, 64));
    }

    #[test]
    fn with_a_stride_of_one_the_longest_side_is_exactly_the_size_and_photos_are_never_scaled_up() {
        // The cases of issue 24 item 8 (they were 96x64, 32x16 and 8x8 under a stride of 8).
        let photo = RgbImage::new(600, 400);
        assert_eq!(fit(&photo, 100, 1).dimensions(), (100, 67));
        assert_eq!(fit(&photo, 33, 1).dimensions(), (33, 22));
        assert_eq!(fit(&RgbImage::new(1, 1), 256, 1).dimensions(), (1, 1));
        assert_eq!(fit(&RgbImage::new(400, 600), 2048, 1).dimensions(), (400, 600));
    }

    #[test]
    fn encoding_is_deterministic() {
        let image = decode(&png(32, 32), &MediaLimits::default()).expect("decodes");
        for format in [OutputFormat::Png, OutputFormat::Jpeg, OutputFormat::Webp] {
            assert_eq!(
                encode(&image, format).expect("encode"),
                encode(&image, format).expect("encode")
            );
        }
    }

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!("tests/fixtures/media/{name}")).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    fn is_near(pixel: image::Rgb<u8>, rgb: [u8; 3]) -> bool {
        pixel.0.iter().zip(rgb).all(|(a, b)| a.abs_diff(b) <= 40)
    }

    fn assert_near(image: &RgbImage, (x, y): (u32, u32), rgb: [u8; 3]) {
        let pixel = *image.get_pixel(x, y);
        assert!(is_near(pixel, rgb), "pixel ({x}, {y}) is {pixel:?}, not near {rgb:?}");
    }

    #[test]
    fn a_cmyk_jpeg_decodes_to_the_right_colours() {
        // Made by Pillow: left half CMYK (0, 255, 255, 0) = red, right half (255, 255, 0, 0) = blue.
        let image = decode(&fixture("cmyk.jpg"), &MediaLimits::default()).expect("decodes");
        assert_eq!(image.dimensions(), (48, 32));
        assert_near(&image, (6, 16), [255, 0, 0]);
        assert_near(&image, (42, 16), [0, 0, 255]);
    }

    #[test]
    fn a_16_bit_png_is_scaled_to_8_bits() {
        let wide: image::ImageBuffer<image::Rgb<u16>, Vec<u16>> =
            image::ImageBuffer::from_pixel(30, 20, image::Rgb([65535, 0, 32896]));
        let mut png = Cursor::new(Vec::new());
        wide.write_to(&mut png, ImageFormat::Png).expect("encode 16-bit");
        let image = decode(png.get_ref(), &MediaLimits::default()).expect("decodes");
        assert_eq!(image.dimensions(), (30, 20));
        assert_eq!(image.get_pixel(3, 3).0, [255, 0, 128]);
    }

    #[test]
    fn animated_png_and_webp_decode_their_first_frame() {
        // Two frames made by Pillow: green, then magenta.
        for name in ["animated.png", "animated.webp"] {
            let image = decode(&fixture(name), &MediaLimits::default()).expect(name);
            assert_eq!(image.dimensions(), (40, 30), "{name}");
            assert!(
                is_near(*image.get_pixel(20, 15), [0, 200, 0]),
                "{name}: {:?}",
                image.get_pixel(20, 15)
            );
        }
    }

    #[test]
    fn a_large_jpeg_decodes_scaled_with_its_orientation() {
        // 40x20 stored, orientation 6: for a longest side of 16 it decodes at 1/2 (20x10) and
        // turns upright (10x20), the red band still on the right.
        let image = decode_for_size(&fixture("exif_orientation_6.jpg"), &MediaLimits::default(), 16).expect("decodes");
        assert_eq!(image.dimensions(), (10, 20));
        assert_near(&image, (9, 10), [255, 0, 0]);
        assert_near(&image, (0, 10), [0, 0, 255]);
    }

    #[test]
    fn a_scaled_jpeg_decode_fits_to_what_the_whole_decode_fits_to() {
        let photo = RgbImage::from_fn(1200, 800, |x, y| {
            let wave = ((f64::from(x) / 37.0).sin() * 60.0 + (f64::from(y) / 23.0).cos() * 60.0) as i32;
            image::Rgb([(x / 5) as u8, (y / 4) as u8, (128 + wave).clamp(0, 255) as u8])
        });
        let jpeg = encode(&photo, OutputFormat::Jpeg).expect("encode");
        let limits = MediaLimits::default();
        let scaled = fit(&decode_for_size(&jpeg, &limits, 256).expect("scaled"), 256, 8);
        let whole = fit(&decode(&jpeg, &limits).expect("whole"), 256, 8);
        assert_eq!(scaled.dimensions(), whole.dimensions());
        let mean_abs_diff = scaled
            .as_raw()
            .iter()
            .zip(whole.as_raw())
            .map(|(a, b)| f64::from(a.abs_diff(*b)))
            .sum::<f64>()
            / scaled.as_raw().len() as f64;
        assert!(mean_abs_diff < 2.0, "mean abs difference {mean_abs_diff}");
    }

    #[test]
    fn a_jpeg_the_scaled_decoder_skips_still_decodes_whole() {
        // CMYK goes to the whole decode; so does a JPEG under twice the size.
        let limits = MediaLimits::default();
        let cmyk = decode_for_size(&fixture("cmyk.jpg"), &limits, 8).expect("cmyk");
        assert_eq!(cmyk.dimensions(), (48, 32));
        assert_near(&cmyk, (6, 16), [255, 0, 0]);
        let small = decode_for_size(&fixture("exif_orientation_6.jpg"), &limits, 21).expect("small");
        assert_eq!(small.dimensions(), (20, 40));
    }

    #[test]
    fn a_scaled_decode_keeps_the_limits_and_error_codes() {
        let limits = MediaLimits {
            max_pixels: 100,
            ..MediaLimits::default()
        };
        let refused = decode_for_size(&fixture("exif_orientation_6.jpg"), &limits, 8);
        assert!(
            matches!(
                refused,
                Err(MediaError::TooManyPixels {
                    width: 40,
                    height: 20,
                    ..
                })
            ),
            "{refused:?}"
        );
        let jpeg = fixture("exif_orientation_6.jpg");
        let truncated = decode_for_size(&jpeg[..jpeg.len() / 2], &MediaLimits::default(), 8);
        assert_eq!(
            truncated.map(|i| i.dimensions()),
            decode(&jpeg[..jpeg.len() / 2], &MediaLimits::default()).map(|i| i.dimensions())
        );
    }

    #[test]
    fn exif_orientation_is_applied() {
        // Stored 40x20 with a red top band and EXIF orientation 6 (rotate 90° clockwise):
        // upright it is 20x40 with the band on the right.
        let image = decode(&fixture("exif_orientation_6.jpg"), &MediaLimits::default()).expect("decodes");
        assert_eq!(image.dimensions(), (20, 40));
        assert_near(&image, (18, 20), [255, 0, 0]);
        assert_near(&image, (2, 20), [0, 0, 255]);
    }
}
