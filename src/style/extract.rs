//! One photo → its style code (encoder) and its VGG19 Gram matrices.

use image::RgbImage;
use ndarray::{Array2, ArrayD, IxDyn};

use crate::generate::engine::EngineError;
use crate::generate::models::Models;
use crate::media;
use crate::style::gram;

/// Style photos are centre-cropped to a square of this side (the encoder's training size).
pub const STYLE_SIDE: u32 = 256;

pub struct PhotoStyle {
    pub code: Vec<f32>,
    pub grams: Vec<Array2<f32>>,
}

/// NCHW float tensor in [0, 1] of one RGB image.
pub fn to_tensor(image: &RgbImage) -> ArrayD<f32> {
    let (w, h) = image.dimensions();
    let plane = (w * h) as usize;
    let mut data = vec![0.0f32; 3 * plane];
    let (red, rest) = data.split_at_mut(plane);
    let (green, blue) = rest.split_at_mut(plane);
    for (i, pixel) in image.as_raw().chunks_exact(3).enumerate() {
        red[i] = f32::from(pixel[0]) / 255.0;
        green[i] = f32::from(pixel[1]) / 255.0;
        blue[i] = f32::from(pixel[2]) / 255.0;
    }
    ArrayD::from_shape_vec(IxDyn(&[1, 3, h as usize, w as usize]), data)
        .unwrap_or_else(|_| ArrayD::zeros(IxDyn(&[1, 3, 0, 0])))
}

/// RGB image of batch item 0 of an NCHW tensor in [0, 1].
pub fn from_tensor(tensor: &ArrayD<f32>) -> RgbImage {
    let shape = tensor.shape();
    let (h, w) = (shape[2], shape[3]);
    // + 0.5 then truncate: round() for values ≥ 0, without a libm call per sample.
    let byte = |v: f32| (v.clamp(0.0, 1.0) * 255.0 + 0.5) as u8;
    let item = tensor.index_axis(ndarray::Axis(0), 0);
    let mut raw = Vec::with_capacity(3 * w * h);
    match item.as_slice() {
        // The usual case, a standard-layout tensor: walk the three planes side by side.
        Some(planes) => {
            let plane = w * h;
            for i in 0..plane {
                raw.extend_from_slice(&[byte(planes[i]), byte(planes[plane + i]), byte(planes[2 * plane + i])]);
            }
        }
        None => {
            for y in 0..h {
                for x in 0..w {
                    raw.extend((0..3).map(|c| byte(item[[c, y, x]])));
                }
            }
        }
    }
    RgbImage::from_raw(w as u32, h as u32, raw).unwrap_or_else(|| RgbImage::new(w as u32, h as u32))
}

/// Takes the image by value: resizing a full-size upload and the Gram matrices (about a
/// GFLOP over relu1_1..relu4_1) run on the blocking pool, since on an async worker they
/// would stall every other request that worker serves.
pub async fn photo_style(models: &Models, image: RgbImage) -> Result<PhotoStyle, EngineError> {
    let square = off_worker(move || media::square(&image, STYLE_SIDE)).await?;
    let code = models.style_code(&square).await?;
    let layers = models.vgg.run(vec![to_tensor(&square)]).await?;
    let grams = off_worker(move || {
        let views: Vec<_> = layers.iter().map(|l| l.view()).collect();
        gram::grams_of(&views, 0)
    })
    .await?;
    Ok(PhotoStyle { code, grams })
}

pub(crate) async fn off_worker<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, EngineError> {
    tokio::task::spawn_blocking(work).await.map_err(|err| EngineError::Run {
        model: "style features".into(),
        message: err.to_string(),
    })
}

/// The style code of an arbitrary photo (the user's own, for strength interpolation).
pub async fn photo_code(models: &Models, image: &RgbImage) -> Result<Vec<f32>, EngineError> {
    models.style_code(&media::square(image, STYLE_SIDE)).await
}
