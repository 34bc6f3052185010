//! One photo → its style code (encoder) and its VGG19 Gram matrices.

use image::RgbImage;
use ndarray::Array2;

use crate::generate::engine::{off_worker, EngineError};
use crate::generate::models::Models;
use crate::media;
use crate::style::gram;
use crate::tensor::to_tensor;

/// Style photos are centre-cropped to a square of this side (the encoder's training size).
pub const STYLE_SIDE: u32 = 256;

pub struct PhotoStyle {
    pub code: Vec<f32>,
    pub grams: Vec<Array2<f32>>,
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

/// The style code of an arbitrary photo (the user's own, for strength interpolation).
pub async fn photo_code(models: &Models, image: &RgbImage) -> Result<Vec<f32>, EngineError> {
    models.style_code(&media::square(image, STYLE_SIDE)).await
}
