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
    let mut data = vec![0.0f32; 3 * (w * h) as usize];
    let plane = (w * h) as usize;
    for (x, y, pixel) in image.enumerate_pixels() {
        let at = (y * w + x) as usize;
        for channel in 0..3 {
            data[channel * plane + at] = f32::from(pixel[channel]) / 255.0;
        }
    }
    ArrayD::from_shape_vec(IxDyn(&[1, 3, h as usize, w as usize]), data)
        .unwrap_or_else(|_| ArrayD::zeros(IxDyn(&[1, 3, 0, 0])))
}

/// RGB image of batch item 0 of an NCHW tensor in [0, 1].
pub fn from_tensor(tensor: &ArrayD<f32>) -> RgbImage {
    let shape = tensor.shape();
    let (h, w) = (shape[2], shape[3]);
    RgbImage::from_fn(w as u32, h as u32, |x, y| {
        let value = |c: usize| (tensor[[0, c, y as usize, x as usize]].clamp(0.0, 1.0) * 255.0).round() as u8;
        image::Rgb([value(0), value(1), value(2)])
    })
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
