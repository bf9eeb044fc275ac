// The polynomial coefficients are quoted as published (Cephes, Numerical Recipes).
//! GELU (erf form) and bias add, vectorised.
//!
//! `gelu(x) = x/2 * (1 + erf(x / sqrt 2)) = x/2 * erfc(-x / sqrt 2)`. The SIMD paths evaluate
//! `erfc(z) = t * exp(-z^2 + P(t))`, `t = 1 / (1 + z/2)` (a Chebyshev fit with fractional error
//! below 1.2e-7), with `z^2 = x^2 / 2` split exactly by FMA so that the large exponent carries no
//! rounding error; the result stays within 1e-6 relative of the f64 reference (tested). The
//! scalar path evaluates the f64 formula with `libm::erfc`. `gelu(+inf) = +inf`,
//! `gelu(-inf) = -0`, NaN stays NaN.

#![allow(clippy::excessive_precision)]

use crate::simd::{dispatch, Simd};
use crate::{Isa, KernelError};

const LOG2E: f32 = core::f32::consts::LOG2_E;

/// Vector `exp` (Cephes polynomial): about 1 ulp for inputs in `[-87.3, 88]`; 0 below,
/// +inf above, NaN kept.
#[inline(always)]
pub(crate) fn exp_v<S: Simd>(s: S, x: S::V) -> S::V {
    let lo = s.splat(-87.33654);
    let hi = s.splat(88.0);
    let xc = s.min(s.max(x, lo), hi);
    let n = s.round(s.mul(xc, s.splat(LOG2E)));
    let r = s.fma(n, s.splat(-0.693_359_4), xc);
    let r = s.fma(n, s.splat(2.121_944_4e-4), r);
    let mut p = s.splat(1.987_569_1e-4);
    p = s.fma(p, r, s.splat(1.398_199_9e-3));
    p = s.fma(p, r, s.splat(8.333_452e-3));
    p = s.fma(p, r, s.splat(4.166_579_6e-2));
    p = s.fma(p, r, s.splat(1.666_666_5e-1));
    p = s.fma(p, r, s.splat(5.000_000_1e-1));
    let y = s.fma(p, s.mul(r, r), s.add(r, s.splat(1.0)));
    let res = s.mul(y, s.pow2i(n));
    let res = s.select(s.lt(x, lo), s.splat(0.0), res);
    let res = s.select(s.lt(hi, x), s.splat(f32::INFINITY), res);
    s.select(s.is_nan(x), x, res)
}

/// `(1 + erf(x / sqrt 2), exp(-x^2 / 2))` for `|x| <= 14` (`2 Φ(x)` and `sqrt(2π) φ(x)`).
#[inline(always)]
fn gelu_parts_v<S: Simd>(s: S, x: S::V) -> (S::V, S::V) {
    let ax = s.abs(x);
    let h = s.mul(x, x);
    let l = s.fma(x, x, s.sub(s.splat(0.0), h));
    let z = s.mul(ax, s.splat(core::f32::consts::FRAC_1_SQRT_2));
    let t = s.div(s.splat(1.0), s.fma(z, s.splat(0.5), s.splat(1.0)));
    let mut p = s.splat(0.170_872_77);
    for c in [
        -0.822_152_23,
        1.488_515_9,
        -1.135_203_98,
        0.278_868_07,
        -0.186_288_06,
        0.096_784_18,
        0.374_091_96,
        1.000_023_7,
        -1.265_512_2,
    ] {
        p = s.fma(p, t, s.splat(c));
    }
    let half = s.splat(-0.5);
    let e1 = exp_v(s, s.mul(h, half));
    let e2 = exp_v(s, s.fma(l, half, p));
    let erfc = s.mul(t, s.mul(e1, e2));
    let e = s.select(s.lt(x, s.splat(0.0)), erfc, s.sub(s.splat(2.0), erfc));
    (e, e1)
}

#[inline(always)]
fn gelu_v<S: Simd>(s: S, x: S::V) -> S::V {
    let (e, _) = gelu_parts_v(s, x);
    gelu_from_parts_v(s, x, e)
}

/// `gelu(x)` from the first of [`gelu_parts_v`]'s results.
#[inline(always)]
fn gelu_from_parts_v<S: Simd>(s: S, x: S::V, e: S::V) -> S::V {
    let g = s.mul(s.mul(s.splat(0.5), x), e);
    s.select(s.lt(s.splat(14.0), s.abs(x)), s.max(x, s.splat(0.0)), g)
}

/// `gelu'(x) = Φ(x) + x φ(x)`: 1 above 14, 0 below -14, NaN kept.
#[inline(always)]
fn gelu_grad_v<S: Simd>(s: S, x: S::V) -> S::V {
    let (e, e1) = gelu_parts_v(s, x);
    gelu_grad_from_parts_v(s, x, e, e1)
}

/// `gelu'(x)` from [`gelu_parts_v`]'s results.
#[inline(always)]
fn gelu_grad_from_parts_v<S: Simd>(s: S, x: S::V, e: S::V, e1: S::V) -> S::V {
    // exp(-x²/2) with the rounding error l of x² folded back in: exp(-(h + l)/2) ≈ e1 (1 - l/2).
    let h = s.mul(x, x);
    let l = s.fma(x, x, s.sub(s.splat(0.0), h));
    let e1 = s.mul(e1, s.fma(l, s.splat(-0.5), s.splat(1.0)));
    // Φ(x) + x φ(x) = e / 2 + x exp(-x²/2) / sqrt(2π).
    let d = s.fma(s.mul(x, s.splat(0.398_942_28)), e1, s.mul(s.splat(0.5), e));
    let big = s.select(s.lt(x, s.splat(0.0)), s.splat(0.0), s.splat(1.0));
    let d = s.select(s.lt(s.splat(14.0), s.abs(x)), big, d);
    s.select(s.is_nan(x), x, d)
}

/// GELU of one value through the f64 formula (the scalar path and the SIMD tails).
#[inline]
pub(crate) fn gelu_exact(x: f32) -> f32 {
    if x == f32::NEG_INFINITY {
        return -0.0;
    }
    let xd = x as f64;
    (0.5 * xd * libm::erfc(-xd * core::f64::consts::FRAC_1_SQRT_2)) as f32
}

#[inline(always)]
fn bias_gelu_generic<S: Simd>(s: S, row: &mut [f32], bias: Option<&[f32]>, gelu: bool) {
    let n = row.len();
    let lanes = S::LANES;
    let main = if lanes == 1 { 0 } else { n - n % lanes };
    let mut i = 0;
    while i < main {
        let mut v = s.load(&row[i..]);
        if let Some(b) = bias {
            v = s.add(v, s.load(&b[i..]));
        }
        if gelu {
            v = gelu_v(s, v);
        }
        s.store(&mut row[i..], v);
        i += lanes;
    }
    for j in main..n {
        let mut v = row[j];
        if let Some(b) = bias {
            v += b[j];
        }
        row[j] = if gelu { gelu_exact(v) } else { v };
    }
}

/// The GELU derivative of one value through the f64 formula (the scalar path and the tails).
#[inline]
pub(crate) fn gelu_grad_exact(x: f32) -> f32 {
    crate::reference::gelu_grad(x as f64) as f32
}

#[inline(always)]
fn gelu_backward_generic<S: Simd>(s: S, z: &[f32], grad: &mut [f32]) {
    let n = grad.len().min(z.len());
    let lanes = S::LANES;
    let main = if lanes == 1 { 0 } else { n - n % lanes };
    let mut i = 0;
    while i < main {
        let d = gelu_grad_v(s, s.load(&z[i..]));
        let g = s.load(&grad[i..]);
        s.store(&mut grad[i..], s.mul(g, d));
        i += lanes;
    }
    for j in main..n {
        grad[j] *= gelu_grad_exact(z[j]);
    }
}

#[inline(always)]
fn gelu_and_grad_generic<S: Simd>(s: S, x: &mut [f32], d: &mut [f32]) {
    let n = x.len().min(d.len());
    let lanes = S::LANES;
    let main = if lanes == 1 { 0 } else { n - n % lanes };
    let mut i = 0;
    while i < main {
        let v = s.load(&x[i..]);
        let (e, e1) = gelu_parts_v(s, v);
        s.store(&mut d[i..], gelu_grad_from_parts_v(s, v, e, e1));
        s.store(&mut x[i..], gelu_from_parts_v(s, v, e));
        i += lanes;
    }
    for j in main..n {
        d[j] = gelu_grad_exact(x[j]);
        x[j] = gelu_exact(x[j]);
    }
}

dispatch!(
    /// `x = gelu(x)`, `d = gelu'(x)` elementwise, on a chosen ISA path.
    fn gelu_and_grad_dispatch(x: &mut [f32], d: &mut [f32]) -> () => gelu_and_grad_generic
);

/// GELU in place with its derivative saved for the backward pass: `d[i] = gelu'(x[i])`, then
/// `x[i] = gelu(x[i])`. One evaluation of the shared parts (`erfc` and `exp(-x²/2)`) gives
/// both, each equal, bit for bit, to what [`gelu`] and [`gelu_backward`] (with a gradient of
/// 1) compute on the same ISA path. Errors when the lengths differ.
pub fn gelu_and_grad(x: &mut [f32], d: &mut [f32]) -> Result<(), KernelError> {
    gelu_and_grad_with(crate::detected_isa(), x, d)
}

/// [`gelu_and_grad`] on a chosen ISA path.
pub fn gelu_and_grad_with(isa: Isa, x: &mut [f32], d: &mut [f32]) -> Result<(), KernelError> {
    crate::error::check(
        "gelu_and_grad",
        "length of d (= length of x)",
        x.len(),
        d.len(),
    )?;
    gelu_and_grad_dispatch(isa, x, d);
    Ok(())
}

dispatch!(
    /// `grad *= gelu'(z)` elementwise, on a chosen ISA path.
    fn gelu_backward_dispatch(z: &[f32], grad: &mut [f32]) -> () => gelu_backward_generic
);

/// The GELU backward pass: multiplies `grad` (the gradient with respect to `gelu(z)`)
/// elementwise by `gelu'(z) = Φ(z) + z φ(z)`, in place, giving the gradient with respect to the
/// pre-activation `z`. Accurate to 1e-6 of `|Φ(z)| + |z φ(z)|` (the derivative crosses zero
/// near `z = -0.75`, so a purely relative bound cannot hold there); `gelu'(±inf)` is 1 / 0 and
/// NaN propagates. Errors when the lengths differ.
pub fn gelu_backward(z: &[f32], grad: &mut [f32]) -> Result<(), KernelError> {
    gelu_backward_with(crate::detected_isa(), z, grad)
}

/// [`gelu_backward`] on a chosen ISA path.
pub fn gelu_backward_with(isa: Isa, z: &[f32], grad: &mut [f32]) -> Result<(), KernelError> {
    crate::error::check(
        "gelu_backward",
        "length of grad (= length of z)",
        z.len(),
        grad.len(),
    )?;
    gelu_backward_dispatch(isa, z, grad);
    Ok(())
}

dispatch!(
    /// Adds `bias` (same length as `row`) and/or applies GELU, on a chosen ISA path.
    pub(crate) fn bias_gelu_with(row: &mut [f32], bias: Option<&[f32]>, gelu: bool) -> () => bias_gelu_generic
);

/// GELU (erf form) of every element, in place, on the best ISA.
pub fn gelu(x: &mut [f32]) {
    gelu_with(crate::detected_isa(), x)
}

/// [`gelu`] on a chosen ISA path (scalar when unsupported).
pub fn gelu_with(isa: Isa, x: &mut [f32]) {
    bias_gelu_with(isa, x, None, true)
}

/// Adds `bias[j]` to column `j` of every row of the row-major `rows x bias.len()` matrix `x`,
/// optionally followed by GELU.
pub fn add_bias_rows(x: &mut [f32], bias: &[f32], gelu: bool) -> Result<(), KernelError> {
    add_bias_rows_with(crate::detected_isa(), x, bias, gelu)
}

/// [`add_bias_rows`] on a chosen ISA path.
pub fn add_bias_rows_with(
    isa: Isa,
    x: &mut [f32],
    bias: &[f32],
    gelu: bool,
) -> Result<(), KernelError> {
    if bias.is_empty() {
        return crate::error::check("add_bias_rows", "length of x (bias is empty)", 0, x.len());
    }
    crate::error::check(
        "add_bias_rows",
        "length of x modulo bias length",
        0,
        x.len() % bias.len(),
    )?;
    for row in x.chunks_exact_mut(bias.len()) {
        bias_gelu_with(isa, row, Some(bias), gelu);
    }
    Ok(())
}
