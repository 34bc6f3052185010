//! Implicit-feedback matrix factorisation: ALS with confidence c = 1 + α·r
//! (Hu, Koren, Volinsky 2008), each least-squares step solved by a few conjugate-gradient
//! iterations warm-started from the previous factors (Takács, Pilászy, Tikk 2011).
//!
//! A user's vector minimises Σ_i c_ui (p_ui − xᵀy_i)² + λ‖x‖² with p_ui = 1 where r_ui > 0,
//! i.e. (YᵀY + λI + Σ_{i∈u} (c_ui − 1) y_i y_iᵀ) x = Σ_{i∈u} c_ui y_i; items likewise.

use ndarray::{Array2, ArrayView1, ArrayView2, CowArray, Ix2};
use pulp::{Arch, Simd, WithSimd};
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

    /// The transpose by a counting pass: rows are visited in order, so each column's
    /// entries come out sorted by row without a sort of all cells.
    pub fn transpose(&self) -> Self {
        let mut indptr = vec![0usize; self.cols + 1];
        for &col in &self.indices {
            indptr[col as usize + 1] += 1;
        }
        for i in 0..self.cols {
            indptr[i + 1] += indptr[i];
        }
        let mut next = indptr.clone();
        let mut indices = vec![0u32; self.nnz()];
        let mut values = vec![0f32; self.nnz()];
        for row in 0..self.rows {
            let (cols, row_values) = self.row(row);
            for (&col, &value) in cols.iter().zip(row_values) {
                let at = next[col as usize];
                indices[at] = row as u32;
                values[at] = value;
                next[col as usize] += 1;
            }
        }
        Self {
            rows: self.cols,
            cols: self.rows,
            indptr,
            indices,
            values,
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
    let fixed_rows = fixed.as_standard_layout();
    let system = System::new(&yty, &fixed_rows);
    let arch = Arch::new();
    if let Some(rows) = solving.as_slice_mut() {
        // One scratch per rayon task rather than four allocations per row: a million users
        // are 64M allocations over a 15-iteration build.
        rows.par_chunks_mut(params.factors).enumerate().for_each_init(
            || Scratch::new(params.factors),
            |scratch, (row, x)| {
                let (cols, conf) = confidences.row(row);
                arch.dispatch(Solve {
                    x,
                    system: &system,
                    cols,
                    conf,
                    steps,
                    scratch,
                });
            },
        );
    }
}

/// The vector of one new or changed row against fixed factors (request-time fold-in).
/// Runs CG to convergence, starting from zero.
pub fn fold_in(fixed: &ArrayView2<'_, f32>, yty: &Array2<f32>, cols: &[u32], confidences: &[f32]) -> Vec<f32> {
    let factors = fixed.ncols();
    let fixed_rows = fixed.as_standard_layout();
    let system = System::new(yty, &fixed_rows);
    let mut x = vec![0.0f32; factors];
    Arch::new().dispatch(Solve {
        x: &mut x,
        system: &system,
        cols,
        conf: confidences,
        steps: factors,
        scratch: &mut Scratch::new(factors),
    });
    x
}

/// What every row's least-squares problem shares: YᵀY + λI and the fixed side's rows, each
/// `factors` long, row-major.
struct System<'a> {
    yty: &'a [f32],
    fixed: &'a [f32],
    factors: usize,
}

impl<'a> System<'a> {
    /// `fixed_rows` in standard layout (`as_standard_layout`), so its rows are contiguous.
    fn new(yty: &'a Array2<f32>, fixed_rows: &'a CowArray<'_, f32, Ix2>) -> Self {
        Self {
            yty: yty.as_slice().unwrap_or(&[]),
            fixed: fixed_rows.as_slice().unwrap_or(&[]),
            factors: fixed_rows.ncols(),
        }
    }

    #[inline(always)]
    fn fixed_row(&self, index: u32) -> &[f32] {
        let start = index as usize * self.factors;
        &self.fixed[start..start + self.factors]
    }
}

/// One row's solve, run by `Arch::dispatch` so that every kernel below is compiled for the
/// widest vector unit the CPU has (AVX2 and FMA on current x86) while the binary still runs
/// on any x86-64: a build spends nearly all its time in these 64-long dots and updates.
struct Solve<'a> {
    x: &'a mut [f32],
    system: &'a System<'a>,
    cols: &'a [u32],
    conf: &'a [f32],
    steps: usize,
    scratch: &'a mut Scratch,
}

impl WithSimd for Solve<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        conjugate_gradient(simd, self);
    }
}

/// a·b over two accumulators, so consecutive multiply-adds do not wait on each other.
#[inline(always)]
fn dot<S: Simd>(simd: S, a: &[f32], b: &[f32]) -> f32 {
    let (a_lanes, a_tail) = S::as_simd_f32s(a);
    let (b_lanes, b_tail) = S::as_simd_f32s(b);
    let (mut even, mut odd) = (simd.splat_f32s(0.0), simd.splat_f32s(0.0));
    let mut pairs_a = a_lanes.chunks_exact(2);
    let mut pairs_b = b_lanes.chunks_exact(2);
    for (x, y) in (&mut pairs_a).zip(&mut pairs_b) {
        even = simd.mul_add_e_f32s(x[0], y[0], even);
        odd = simd.mul_add_e_f32s(x[1], y[1], odd);
    }
    for (x, y) in pairs_a.remainder().iter().zip(pairs_b.remainder()) {
        even = simd.mul_add_e_f32s(*x, *y, even);
    }
    let tail: f32 = a_tail.iter().zip(b_tail).map(|(x, y)| x * y).sum();
    simd.reduce_sum_f32s(simd.add_f32s(even, odd)) + tail
}

/// out += scale · y.
#[inline(always)]
fn add_scaled<S: Simd>(simd: S, out: &mut [f32], scale: f32, y: &[f32]) {
    let (out_lanes, out_tail) = S::as_mut_simd_f32s(out);
    let (y_lanes, y_tail) = S::as_simd_f32s(y);
    let scale_lanes = simd.splat_f32s(scale);
    for (o, y) in out_lanes.iter_mut().zip(y_lanes) {
        *o = simd.mul_add_e_f32s(scale_lanes, *y, *o);
    }
    for (o, y) in out_tail.iter_mut().zip(y_tail) {
        *o += scale * y;
    }
}

/// out = YtY·v as a sum of YtY's rows scaled by v (YtY is symmetric): no horizontal sums.
#[inline(always)]
fn gram_times<S: Simd>(simd: S, out: &mut [f32], system: &System<'_>, v: &[f32]) {
    out.fill(0.0);
    for (row, &vk) in system.yty.chunks_exact(system.factors).zip(v) {
        add_scaled(simd, out, vk, row);
    }
}

/// A·v = YtY·v + Σ (c − 1)(y_i·v) y_i, written into `out`.
#[inline(always)]
fn apply<S: Simd>(simd: S, out: &mut [f32], v: &[f32], system: &System<'_>, cols: &[u32], conf: &[f32]) {
    gram_times(simd, out, system, v);
    for (&col, &c) in cols.iter().zip(conf) {
        let y = system.fixed_row(col);
        add_scaled(simd, out, (c - 1.0) * dot(simd, y, v), y);
    }
}

/// The CG vectors of one solve: residual, search direction and A times it.
struct Scratch {
    r: Vec<f32>,
    p: Vec<f32>,
    ap: Vec<f32>,
}

impl Scratch {
    fn new(factors: usize) -> Self {
        Self {
            r: vec![0.0; factors],
            p: vec![0.0; factors],
            ap: vec![0.0; factors],
        }
    }
}

#[inline(always)]
fn conjugate_gradient<S: Simd>(simd: S, solve: Solve<'_>) {
    let Solve {
        x,
        system,
        cols,
        conf,
        steps,
        scratch: Scratch { r, p, ap },
    } = solve;
    // r = b − A·x with b = Σ c y_i, in one pass over the rows y_i (each pass over them is
    // what a solve pays for: at a million users they are random reads):
    // r = −YtY·x + Σ (c − (c − 1)(y_i·x)) y_i.
    gram_times(simd, r, system, x);
    for ri in r.iter_mut() {
        *ri = -*ri;
    }
    for (&col, &c) in cols.iter().zip(conf) {
        let y = system.fixed_row(col);
        add_scaled(simd, r, c - (c - 1.0) * dot(simd, y, x), y);
    }
    p.copy_from_slice(r);
    let mut rs_old = dot(simd, r, r);
    for _ in 0..steps {
        if rs_old < 1e-20 {
            break;
        }
        apply(simd, ap, p, system, cols, conf);
        let denominator = dot(simd, p, ap);
        if denominator <= 0.0 || !denominator.is_finite() {
            break;
        }
        let step = rs_old / denominator;
        add_scaled(simd, x, step, p);
        add_scaled(simd, r, -step, ap);
        let rs_new = dot(simd, r, r);
        let keep = rs_new / rs_old;
        for (pd, rd) in p.iter_mut().zip(r.iter()) {
            *pd = rd + keep * *pd;
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
