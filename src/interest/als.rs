//! Implicit-feedback matrix factorisation: ALS with confidence c = 1 + α·r
//! (Hu, Koren, Volinsky 2008), each least-squares step solved by a few conjugate-gradient
//! iterations warm-started from the previous factors (Takács, Pilászy, Tikk 2011).
//!
//! A user's vector minimises Σ_i c_ui (p_ui − xᵀy_i)² + λ‖x‖² with p_ui = 1 where r_ui > 0,
//! i.e. (YᵀY + λI + Σ_{i∈u} (c_ui − 1) y_i y_iᵀ) x = Σ_{i∈u} c_ui y_i; items likewise.

use ndarray::{Array2, ArrayView1, ArrayView2};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AlsParams {
    pub factors: usize,
    pub regularization: f32,
    /// Confidence slope: c = 1 + alpha · r.
    pub alpha: f32,
    pub iterations: usize,
    /// Conjugate-gradient steps per least-squares solve.
    pub cg_steps: usize,
    pub seed: u64,
}

impl Default for AlsParams {
    fn default() -> Self {
        Self {
            factors: 64,
            regularization: 0.05,
            alpha: 10.0,
            iterations: 15,
            cg_steps: 3,
            seed: 42,
        }
    }
}

/// A sparse rows × cols matrix of confidences (CSR).
#[derive(Debug, Clone, Default)]
pub struct Confidences {
    pub rows: usize,
    pub cols: usize,
    indptr: Vec<usize>,
    indices: Vec<u32>,
    values: Vec<f32>,
}

impl Confidences {
    /// From (row, col, r) triples with r > 0 (others are dropped); repeated cells add up.
    /// Takes the triples by value and sorts them in place: at 10M cells a copy is 120 MB.
    pub fn from_triples(rows: usize, cols: usize, mut triples: Vec<(u32, u32, f32)>, alpha: f32) -> Self {
        triples.retain(|t| t.2 > 0.0 && t.2.is_finite());
        triples.sort_unstable_by_key(|t| (t.0, t.1));
        let mut merged = triples;
        merged.dedup_by(|next, kept| {
            let same = next.0 == kept.0 && next.1 == kept.1;
            if same {
                kept.2 += next.2;
            }
            same
        });
        let mut indptr = vec![0usize; rows + 1];
        for t in &merged {
            indptr[t.0 as usize + 1] += 1;
        }
        for i in 0..rows {
            indptr[i + 1] += indptr[i];
        }
        Self {
            rows,
            cols,
            indptr,
            indices: merged.iter().map(|t| t.1).collect(),
            values: merged.iter().map(|t| 1.0 + alpha * t.2).collect(),
        }
    }

    pub fn nnz(&self) -> usize {
        self.indices.len()
    }

    pub fn row(&self, row: usize) -> (&[u32], &[f32]) {
        let (start, end) = (self.indptr[row], self.indptr[row + 1]);
        (&self.indices[start..end], &self.values[start..end])
    }

    pub fn transpose(&self) -> Self {
        let mut triples = Vec::with_capacity(self.nnz());
        for row in 0..self.rows {
            let (cols, values) = self.row(row);
            for (&col, &value) in cols.iter().zip(values) {
                triples.push((col, row as u32, value));
            }
        }
        triples.sort_by_key(|t| (t.0, t.1));
        let mut indptr = vec![0usize; self.cols + 1];
        for t in &triples {
            indptr[t.0 as usize + 1] += 1;
        }
        for i in 0..self.cols {
            indptr[i + 1] += indptr[i];
        }
        Self {
            rows: self.cols,
            cols: self.rows,
            indptr,
            indices: triples.iter().map(|t| t.1).collect(),
            values: triples.iter().map(|t| t.2).collect(),
        }
    }
}

/// Trained factors: one row per user and per item.
#[derive(Debug, Clone)]
pub struct AlsModel {
    pub params: AlsParams,
    pub user_factors: Array2<f32>,
    pub item_factors: Array2<f32>,
}

/// Trains on user × item confidences; `on_iteration` is called after each full sweep.
pub fn train(user_items: &Confidences, params: &AlsParams, mut on_iteration: impl FnMut(usize)) -> AlsModel {
    let item_users = user_items.transpose();
    let mut rng = StdRng::seed_from_u64(params.seed);
    let mut init = |rows: usize| Array2::from_shape_fn((rows, params.factors), |_| rng.random::<f32>() * 0.01);
    let mut users = init(user_items.rows);
    let mut items = init(user_items.cols);
    for iteration in 0..params.iterations {
        solve_all(&mut users, &items.view(), user_items, params, params.cg_steps);
        solve_all(&mut items, &users.view(), &item_users, params, params.cg_steps);
        on_iteration(iteration + 1);
    }
    // A last user step against the final items: stored user vectors then equal what
    // fold_in gives for the same interactions.
    solve_all(&mut users, &items.view(), user_items, params, params.cg_steps);
    AlsModel {
        params: *params,
        user_factors: users,
        item_factors: items,
    }
}

/// YᵀY + λI for the fixed side.
pub fn gramian(fixed: &ArrayView2<'_, f32>, regularization: f32) -> Array2<f32> {
    let mut yty = fixed.t().dot(fixed);
    for d in 0..yty.nrows() {
        yty[[d, d]] += regularization;
    }
    yty
}

fn solve_all(
    solving: &mut Array2<f32>,
    fixed: &ArrayView2<'_, f32>,
    confidences: &Confidences,
    params: &AlsParams,
    steps: usize,
) {
    let yty = gramian(fixed, params.regularization);
    let factors = params.factors;
    let fixed_rows = fixed.as_standard_layout();
    let fixed_slice = fixed_rows.as_slice().unwrap_or(&[]);
    let yty_slice = yty.as_slice().unwrap_or(&[]);
    if let Some(rows) = solving.as_slice_mut() {
        // One scratch per rayon task rather than four allocations per row: a million users
        // are 64M allocations over a 15-iteration build.
        rows.par_chunks_mut(factors).enumerate().for_each_init(
            || Scratch::new(factors),
            |scratch, (row, x)| {
                let (cols, values) = confidences.row(row);
                conjugate_gradient(x, yty_slice, fixed_slice, factors, cols, values, steps, scratch);
            },
        );
    }
}

/// The vector of one new or changed row against fixed factors (request-time fold-in).
/// Runs CG to convergence, starting from zero.
pub fn fold_in(fixed: &ArrayView2<'_, f32>, yty: &Array2<f32>, cols: &[u32], confidences: &[f32]) -> Vec<f32> {
    let factors = fixed.ncols();
    let fixed_rows = fixed.as_standard_layout();
    let mut x = vec![0.0f32; factors];
    conjugate_gradient(
        &mut x,
        yty.as_slice().unwrap_or(&[]),
        fixed_rows.as_slice().unwrap_or(&[]),
        factors,
        cols,
        confidences,
        factors,
        &mut Scratch::new(factors),
    );
    x
}

/// ndarray's dot: unrolled over eight accumulators, so it vectorises, where a plain
/// iterator sum of f32 must keep its order and runs one lane at a time.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    ArrayView1::from(a).dot(&ArrayView1::from(b))
}

/// A·v = YtY·v + Σ (c − 1)(y_i·v) y_i, written into `out`.
fn apply(out: &mut [f32], v: &[f32], yty: &[f32], fixed: &[f32], f: usize, cols: &[u32], conf: &[f32]) {
    for (d, o) in out.iter_mut().enumerate() {
        *o = dot(&yty[d * f..(d + 1) * f], v);
    }
    for (&col, &c) in cols.iter().zip(conf) {
        let y = &fixed[col as usize * f..(col as usize + 1) * f];
        let scale = (c - 1.0) * dot(y, v);
        for (o, yv) in out.iter_mut().zip(y) {
            *o += scale * yv;
        }
    }
}

/// The CG vectors of one solve: residual, search direction and A times each.
struct Scratch {
    ax: Vec<f32>,
    r: Vec<f32>,
    p: Vec<f32>,
    ap: Vec<f32>,
}

impl Scratch {
    fn new(factors: usize) -> Self {
        Self {
            ax: vec![0.0; factors],
            r: vec![0.0; factors],
            p: vec![0.0; factors],
            ap: vec![0.0; factors],
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn conjugate_gradient(
    x: &mut [f32],
    yty: &[f32],
    fixed: &[f32],
    f: usize,
    cols: &[u32],
    conf: &[f32],
    steps: usize,
    scratch: &mut Scratch,
) {
    let Scratch { ax, r, p, ap } = scratch;
    apply(ax, x, yty, fixed, f, cols, conf);
    // r = b − A·x with b = Σ c y_i.
    for (ri, v) in r.iter_mut().zip(ax.iter()) {
        *ri = -v;
    }
    for (&col, &c) in cols.iter().zip(conf) {
        let y = &fixed[col as usize * f..(col as usize + 1) * f];
        for (ri, yv) in r.iter_mut().zip(y) {
            *ri += c * yv;
        }
    }
    p.copy_from_slice(r);
    let mut rs_old = dot(r, r);
    for _ in 0..steps {
        if rs_old < 1e-20 {
            break;
        }
        apply(ap, p, yty, fixed, f, cols, conf);
        let denominator = dot(p, ap);
        if denominator <= 0.0 || !denominator.is_finite() {
            break;
        }
        let step = rs_old / denominator;
        for d in 0..f {
            x[d] += step * p[d];
            r[d] -= step * ap[d];
        }
        let rs_new = dot(r, r);
        for d in 0..f {
            p[d] = r[d] + (rs_new / rs_old) * p[d];
        }
        rs_old = rs_new;
    }
}

/// Scores of every item for one user vector: Y·x.
pub fn scores(items: &ArrayView2<'_, f32>, user: &[f32]) -> Vec<f32> {
    items.dot(&ArrayView1::from(user)).into_raw_vec_and_offset().0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two taste groups: users 0..20 like items 0..10, users 20..40 like items 10..20.
    fn two_groups() -> Confidences {
        let mut triples = Vec::new();
        for user in 0..40u32 {
            let base = if user < 20 { 0 } else { 10 };
            for item in (base..base + 10).filter(|i| (i + user) % 3 != 0) {
                triples.push((user, item, 1.0));
            }
        }
        Confidences::from_triples(40, 20, triples, 10.0)
    }

    fn params() -> AlsParams {
        AlsParams {
            factors: 8,
            regularization: 0.1,
            alpha: 10.0,
            iterations: 10,
            cg_steps: 3,
            seed: 7,
        }
    }

    #[test]
    fn users_score_their_groups_unseen_items_above_the_other_group() {
        let data = two_groups();
        let model = train(&data, &params(), |_| {});
        for user in [0usize, 5, 25, 39] {
            let s = scores(
                &model.item_factors.view(),
                model.user_factors.row(user).as_slice().expect("row"),
            );
            let own: f32 = if user < 20 {
                s[..10].iter().sum()
            } else {
                s[10..].iter().sum()
            };
            let other: f32 = if user < 20 {
                s[10..].iter().sum()
            } else {
                s[..10].iter().sum()
            };
            assert!(own > other + 1.0, "user {user}: own {own}, other {other}");
        }
    }

    #[test]
    fn fold_in_reproduces_the_trained_user_vector() {
        let data = two_groups();
        let model = train(
            &data,
            &AlsParams {
                cg_steps: 8,
                ..params()
            },
            |_| {},
        );
        let yty = gramian(&model.item_factors.view(), 0.1);
        let (cols, conf) = data.row(3);
        let folded = fold_in(&model.item_factors.view(), &yty, cols, conf);
        let trained = model.user_factors.row(3);
        let error: f32 = folded
            .iter()
            .zip(trained.iter())
            .map(|(a, b)| (a - b).powi(2))
            .sum::<f32>()
            .sqrt();
        let norm: f32 = trained.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!(error / norm < 1e-2, "relative error {}", error / norm);
    }

    #[test]
    fn confidences_merge_repeats_and_transpose() {
        let data = Confidences::from_triples(2, 3, vec![(0, 2, 1.0), (0, 2, 1.0), (1, 0, 0.5), (1, 1, -1.0)], 2.0);
        assert_eq!(data.nnz(), 2);
        assert_eq!(data.row(0), (&[2u32][..], &[5.0f32][..]));
        let t = data.transpose();
        assert_eq!(t.row(2), (&[0u32][..], &[5.0f32][..]));
        assert_eq!(t.row(0), (&[1u32][..], &[2.0f32][..]));
    }
}
