//! Row-wise softmax and log-softmax, numerically stable, with a scale and an additive mask.
//!
//! For each row: `v = scale * x + mask`, `softmax(v) = exp(v - max v) / sum exp(v - max v)`.
//! Conventions (shared with [`crate::reference`]): a row whose entries are all `-inf` (fully
//! masked) gives zeros from softmax and `-inf` from log-softmax, except that NaN entries stay
//! NaN; any NaN or `+inf` entry otherwise makes the whole row NaN, as the formula does.

use crate::activation::exp_v;
use crate::simd::{dispatch, Simd};
use crate::{Isa, KernelError};

/// Arguments checked once per call.
fn check_args(
    op: &'static str,
    x: &[f32],
    cols: usize,
    mask: Option<&[f32]>,
) -> Result<(), KernelError> {
    if cols == 0 {
        return crate::error::check(op, "length of x (cols is 0)", 0, x.len());
    }
    crate::error::check(op, "length of x modulo cols", 0, x.len() % cols)?;
    if let Some(m) = mask {
        crate::error::check(op, "mask length (= cols)", cols, m.len())?;
    }
    Ok(())
}

#[inline(always)]
fn scale_mask_max<S: Simd>(s: S, row: &mut [f32], scale: f32, mask: Option<&[f32]>) -> f32 {
    let n = row.len();
    let lanes = S::LANES;
    let main = n - n % lanes;
    let vs = s.splat(scale);
    let mut vmax = s.splat(f32::NEG_INFINITY);
    let mut i = 0;
    while i < main {
        let mut v = s.mul(s.load(&row[i..]), vs);
        if let Some(m) = mask {
            v = s.add(v, s.load(&m[i..]));
        }
        s.store(&mut row[i..], v);
        vmax = s.max(v, vmax);
        i += lanes;
    }
    let mut max = s.reduce_max(vmax);
    for j in main..n {
        let mut v = row[j] * scale;
        if let Some(m) = mask {
            v += m[j];
        }
        row[j] = v;
        if v > max {
            max = v;
        }
    }
    max
}

/// Replaces `row` by `exp(row - max)` and returns the sum.
#[inline(always)]
fn exp_sum<S: Simd>(s: S, row: &mut [f32], max: f32) -> f32 {
    let n = row.len();
    let lanes = S::LANES;
    let main = n - n % lanes;
    let vmax = s.splat(max);
    let mut vsum = s.splat(0.0);
    let mut i = 0;
    while i < main {
        let e = exp_v(s, s.sub(s.load(&row[i..]), vmax));
        s.store(&mut row[i..], e);
        vsum = s.add(vsum, e);
        i += lanes;
    }
    let mut sum = s.reduce_sum(vsum);
    for v in &mut row[main..] {
        *v = exp_v(crate::simd::Scalar, *v - max);
        sum += *v;
    }
    sum
}

#[inline(always)]
fn affine_row<S: Simd>(s: S, row: &mut [f32], mul: f32, add: f32) {
    let n = row.len();
    let lanes = S::LANES;
    let main = n - n % lanes;
    let (vm, va) = (s.splat(mul), s.splat(add));
    let mut i = 0;
    while i < main {
        let v = s.fma(s.load(&row[i..]), vm, va);
        s.store(&mut row[i..], v);
        i += lanes;
    }
    for v in &mut row[main..] {
        *v = *v * mul + add;
    }
}

fn fully_masked(row: &mut [f32], fill: f32) {
    for v in row {
        if !v.is_nan() {
            *v = fill;
        }
    }
}

#[inline(always)]
fn softmax_generic<S: Simd>(
    s: S,
    x: &mut [f32],
    cols: usize,
    scale: f32,
    mask: Option<&[f32]>,
    log: bool,
) {
    for row in x.chunks_exact_mut(cols) {
        let max = scale_mask_max(s, row, scale, mask);
        if max == f32::NEG_INFINITY {
            fully_masked(row, if log { f32::NEG_INFINITY } else { 0.0 });
            continue;
        }
        if log {
            // Keep v; compute the sum on a copy-free pass: exp into the row, then rebuild.
            let mut sum = 0.0f32;
            let n = row.len();
            let lanes = S::LANES;
            let main = n - n % lanes;
            let vmax = s.splat(max);
            let mut vsum = s.splat(0.0);
            let mut i = 0;
            while i < main {
                vsum = s.add(vsum, exp_v(s, s.sub(s.load(&row[i..]), vmax)));
                i += lanes;
            }
            sum += s.reduce_sum(vsum);
            for &v in &row[main..] {
                sum += exp_v(crate::simd::Scalar, v - max);
            }
            let lse = max + libm::logf(sum);
            affine_row(s, row, 1.0, -lse);
        } else {
            let sum = exp_sum(s, row, max);
            affine_row(s, row, 1.0 / sum, 0.0);
        }
    }
}

dispatch!(
    fn softmax_dispatch(x: &mut [f32], cols: usize, scale: f32, mask: Option<&[f32]>, log: bool) -> () => softmax_generic
);

/// In-place row-wise softmax of the row-major `x` (`x.len() / cols` rows) of
/// `scale * x + mask` (`mask`: one additive value per column, broadcast over rows; use `-inf`
/// or a large negative value to mask).
pub fn softmax_rows(
    x: &mut [f32],
    cols: usize,
    scale: f32,
    mask: Option<&[f32]>,
) -> Result<(), KernelError> {
    softmax_rows_with(crate::detected_isa(), x, cols, scale, mask)
}

/// [`softmax_rows`] on a chosen ISA path.
pub fn softmax_rows_with(
    isa: Isa,
    x: &mut [f32],
    cols: usize,
    scale: f32,
    mask: Option<&[f32]>,
) -> Result<(), KernelError> {
    check_args("softmax_rows", x, cols, mask)?;
    softmax_dispatch(isa, x, cols, scale, mask, false);
    Ok(())
}

/// In-place row-wise log-softmax (`v - max - ln sum exp(v - max)`), same arguments as
/// [`softmax_rows`].
pub fn log_softmax_rows(
    x: &mut [f32],
    cols: usize,
    scale: f32,
    mask: Option<&[f32]>,
) -> Result<(), KernelError> {
    log_softmax_rows_with(crate::detected_isa(), x, cols, scale, mask)
}

/// [`log_softmax_rows`] on a chosen ISA path.
pub fn log_softmax_rows_with(
    isa: Isa,
    x: &mut [f32],
    cols: usize,
    scale: f32,
    mask: Option<&[f32]>,
) -> Result<(), KernelError> {
    check_args("log_softmax_rows", x, cols, mask)?;
    softmax_dispatch(isa, x, cols, scale, mask, true);
    Ok(())
}
