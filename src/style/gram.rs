//! Gram matrices G = F·Fᵀ / (C·H·W) of CNN feature maps (Gatys et al.; the seed's formula).

use ndarray::{Array2, ArrayView3, ArrayViewD, Axis, Ix3};
use serde::Serialize;

/// The Gram matrix of one feature map [C, H, W].
pub fn gram(features: &ArrayView3<'_, f32>) -> Array2<f32> {
    let (c, h, w) = features.dim();
    let flat = features
        .to_shape((c, h * w))
        .map(|f| f.to_owned())
        .unwrap_or_else(|_| Array2::zeros((c, h * w)));
    let mut g = flat.dot(&flat.t());
    g /= (c * h * w) as f32;
    g
}

/// Grams of each layer of one image (batch item `index` of each output [N, C, H, W]).
pub fn grams_of(layers: &[ArrayViewD<'_, f32>], index: usize) -> Vec<Array2<f32>> {
    layers
        .iter()
        .filter_map(|layer| {
            layer
                .index_axis(Axis(0), index)
                .into_dimensionality::<Ix3>()
                .ok()
                .map(|f| gram(&f))
        })
        .collect()
}

/// Mean squared difference of two images' Grams, averaged over layers.
pub fn distance(a: &[Array2<f32>], b: &[Array2<f32>]) -> f32 {
    let per_layer: Vec<f32> = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).mapv(|d| d * d).mean().unwrap_or(0.0))
        .collect();
    per_layer.iter().sum::<f32>() / per_layer.len().max(1) as f32
}

/// Element-wise mean of several images' Grams (an influencer's style target).
pub fn mean(sets: &[Vec<Array2<f32>>]) -> Vec<Array2<f32>> {
    let Some(first) = sets.first() else { return Vec::new() };
    first
        .iter()
        .enumerate()
        .map(|(layer, g)| {
            let mut sum = Array2::zeros(g.raw_dim());
            for set in sets {
                sum += &set[layer];
            }
            sum / sets.len() as f32
        })
        .collect()
}

/// A small readable summary of a style's Grams, per layer.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, utoipa::ToSchema)]
pub struct GramSummary {
    pub channels: usize,
    /// Mean of the diagonal: average channel energy.
    pub mean_energy: f32,
    /// Frobenius norm of the whole matrix.
    pub norm: f32,
    /// Share of the norm off the diagonal: how much channels co-activate (texture).
    pub off_diagonal_share: f32,
}

pub fn summarize(grams: &[Array2<f32>]) -> Vec<GramSummary> {
    grams
        .iter()
        .map(|g| {
            let diagonal: f32 = g.diag().iter().map(|v| v * v).sum();
            let total: f32 = g.iter().map(|v| v * v).sum();
            GramSummary {
                channels: g.nrows(),
                mean_energy: g.diag().mean().unwrap_or(0.0),
                norm: total.sqrt(),
                off_diagonal_share: if total > 0.0 {
                    ((total - diagonal) / total).sqrt()
                } else {
                    0.0
                },
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array3;

    #[test]
    fn gram_follows_the_formula() {
        // Two channels over 2x1 positions: F = [[1, 2], [3, 4]].
        let f = Array3::from_shape_vec((2, 2, 1), vec![1.0, 2.0, 3.0, 4.0]).expect("shape");
        let g = gram(&f.view());
        let expected = [[5.0 / 4.0, 11.0 / 4.0], [11.0 / 4.0, 25.0 / 4.0]];
        for r in 0..2 {
            for c in 0..2 {
                assert!((g[[r, c]] - expected[r][c]).abs() < 1e-6);
            }
        }
    }

    #[test]
    fn distance_is_zero_to_itself_and_mean_is_between() {
        let a = vec![Array2::from_elem((2, 2), 1.0f32)];
        let b = vec![Array2::from_elem((2, 2), 3.0f32)];
        assert_eq!(distance(&a, &a), 0.0);
        assert_eq!(distance(&a, &b), 4.0);
        let m = mean(&[a.clone(), b.clone()]);
        assert_eq!(distance(&m, &a), distance(&m, &b));
        assert_eq!(summarize(&a)[0].channels, 2);
    }
}
