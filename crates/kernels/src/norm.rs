//! LayerNorm (optionally fused with a residual add) and L2 normalisation of rows.
//!
//! LayerNorm: `y = (x - mean) / sqrt(var + eps) * gamma + beta` per row, with the biased
//! variance computed in two passes (no cancellation). L2: `y = x / ||x||`; a zero row stays zero.

use crate::simd::{dispatch, Simd};
use crate::{Isa, KernelError};

#[inline(always)]
fn sum<S: Simd>(s: S, x: &[f32]) -> f32 {
    let lanes = S::LANES;
    let main = x.len() - x.len() % lanes;
    let mut acc = s.splat(0.0);
    let mut i = 0;
    while i < main {
        acc = s.add(acc, s.load(&x[i..]));
        i += lanes;
    }
    let mut t = s.reduce_sum(acc);
    for &v in &x[main..] {
        t += v;
    }
    t
}

#[inline(always)]
fn sum_sq_dev<S: Simd>(s: S, x: &[f32], mean: f32) -> f32 {
    let lanes = S::LANES;
    let main = x.len() - x.len() % lanes;
    let vm = s.splat(mean);
    let mut acc = s.splat(0.0);
    let mut i = 0;
    while i < main {
        let d = s.sub(s.load(&x[i..]), vm);
        acc = s.fma(d, d, acc);
        i += lanes;
    }
    let mut t = s.reduce_sum(acc);
    for &v in &x[main..] {
        t += (v - mean) * (v - mean);
    }
    t
}

#[inline(always)]
fn layer_norm_generic<S: Simd>(
    s: S,
    x: &mut [f32],
    residual: Option<&[f32]>,
    gamma: &[f32],
    beta: &[f32],
    eps: f32,
) {
    let cols = gamma.len();
    let lanes = S::LANES;
    let main = cols - cols % lanes;
    for (r, row) in x.chunks_exact_mut(cols).enumerate() {
        if let Some(res) = residual {
            let res = &res[r * cols..(r + 1) * cols];
            let mut i = 0;
            while i < main {
                let v = s.add(s.load(&row[i..]), s.load(&res[i..]));
                s.store(&mut row[i..], v);
                i += lanes;
            }
            for j in main..cols {
                row[j] += res[j];
            }
        }
        let mean = sum(s, row) / cols as f32;
        let var = sum_sq_dev(s, row, mean) / cols as f32;
        let inv = 1.0 / libm::sqrtf(var + eps);
        let (vm, vi) = (s.splat(mean), s.splat(inv));
        let mut i = 0;
        while i < main {
            let d = s.mul(s.sub(s.load(&row[i..]), vm), vi);
            let y = s.fma(d, s.load(&gamma[i..]), s.load(&beta[i..]));
            s.store(&mut row[i..], y);
            i += lanes;
        }
        for j in main..cols {
            row[j] = (row[j] - mean) * inv * gamma[j] + beta[j];
        }
    }
}

dispatch!(
    fn layer_norm_dispatch(x: &mut [f32], residual: Option<&[f32]>, gamma: &[f32], beta: &[f32], eps: f32) -> () => layer_norm_generic
);

fn check_ln(
    x: &[f32],
    residual: Option<&[f32]>,
    gamma: &[f32],
    beta: &[f32],
) -> Result<(), KernelError> {
    let op = "layer_norm";
    if gamma.is_empty() {
        return crate::error::check(op, "gamma length", 1, 0);
    }
    crate::error::check(op, "beta length (= gamma length)", gamma.len(), beta.len())?;
    crate::error::check(
        op,
        "length of x modulo gamma length",
        0,
        x.len() % gamma.len(),
    )?;
    if let Some(r) = residual {
        crate::error::check(op, "residual length (= length of x)", x.len(), r.len())?;
    }
    Ok(())
}

/// In-place LayerNorm of every row of the row-major `x` (rows of `gamma.len()` columns).
pub fn layer_norm_rows(
    x: &mut [f32],
    gamma: &[f32],
    beta: &[f32],
    eps: f32,
) -> Result<(), KernelError> {
    layer_norm_rows_with(crate::detected_isa(), x, None, gamma, beta, eps)
}

/// In-place `x = LayerNorm(x + residual)` (the post-LN residual block of BERT).
pub fn add_layer_norm_rows(
    x: &mut [f32],
    residual: &[f32],
    gamma: &[f32],
    beta: &[f32],
    eps: f32,
) -> Result<(), KernelError> {
    layer_norm_rows_with(crate::detected_isa(), x, Some(residual), gamma, beta, eps)
}

/// LayerNorm with an optional residual on a chosen ISA path.
pub fn layer_norm_rows_with(
    isa: Isa,
    x: &mut [f32],
    residual: Option<&[f32]>,
    gamma: &[f32],
    beta: &[f32],
    eps: f32,
) -> Result<(), KernelError> {
    check_ln(x, residual, gamma, beta)?;
    layer_norm_dispatch(isa, x, residual, gamma, beta, eps);
    Ok(())
}

#[inline(always)]
fn dot_generic<S: Simd>(s: S, a: &[f32], b: &[f32]) -> f32 {
    let lanes = S::LANES;
    let n = a.len().min(b.len());
    let main = n - n % lanes;
    let mut acc = s.splat(0.0);
    let mut i = 0;
    while i < main {
        acc = s.fma(s.load(&a[i..]), s.load(&b[i..]), acc);
        i += lanes;
    }
    let mut t = s.reduce_sum(acc);
    for j in main..n {
        t += a[j] * b[j];
    }
    t
}

#[inline(always)]
fn l2_normalize_generic<S: Simd>(s: S, x: &mut [f32], cols: usize) {
    let lanes = S::LANES;
    let main = cols - cols % lanes;
    for row in x.chunks_exact_mut(cols) {
        let nrm = libm::sqrtf(dot_generic(s, row, row));
        if nrm == 0.0 {
            continue;
        }
        let vi = s.splat(1.0 / nrm);
        let mut i = 0;
        while i < main {
            let v = s.mul(s.load(&row[i..]), vi);
            s.store(&mut row[i..], v);
            i += lanes;
        }
        for v in &mut row[main..] {
            *v /= nrm;
        }
    }
}

dispatch!(
    fn l2_dispatch(x: &mut [f32], cols: usize) -> () => l2_normalize_generic
);

dispatch!(
    /// Dot product on a chosen ISA path (lengths must match; the caller checks).
    pub(crate) fn dot_with(a: &[f32], b: &[f32]) -> f32 => dot_generic
);

/// L2-normalises every row of the row-major `x` (`cols` columns) in place. A zero row stays
/// zero; NaN spreads to the whole row; an infinite entry becomes NaN and the rest of its row 0.
pub fn l2_normalize_rows(x: &mut [f32], cols: usize) -> Result<(), KernelError> {
    l2_normalize_rows_with(crate::detected_isa(), x, cols)
}

/// [`l2_normalize_rows`] on a chosen ISA path.
pub fn l2_normalize_rows_with(isa: Isa, x: &mut [f32], cols: usize) -> Result<(), KernelError> {
    if cols == 0 {
        return crate::error::check("l2_normalize_rows", "length of x (cols is 0)", 0, x.len());
    }
    crate::error::check(
        "l2_normalize_rows",
        "length of x modulo cols",
        0,
        x.len() % cols,
    )?;
    l2_dispatch(isa, x, cols);
    Ok(())
}

/// Dot product of two equal-length slices on the best ISA.
pub fn dot(a: &[f32], b: &[f32]) -> Result<f32, KernelError> {
    crate::error::check("dot", "length of b (= length of a)", a.len(), b.len())?;
    Ok(dot_with(crate::detected_isa(), a, b))
}
