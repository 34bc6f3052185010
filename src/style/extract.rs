//! One photo → its style code (encoder) and its VGG19 Gram matrices.

use image::RgbImage;
use ndarray::Array2;

use crate::generate::engine::{off_worker, EngineError};
use crate::generate::models::{Models, STYLE_SIDE};
use crate::media;
use crate::style::gram;
use crate::tensor::to_tensor;

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
