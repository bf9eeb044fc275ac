//! Scalar f64 references of every kernel, for tests (and for users who want to check a path).
//!
//! They follow the conventions the fast kernels document (BLAS `beta == 0`, fully masked
//! softmax rows, GELU at infinities, top-k tie-break).

#[cfg(feature = "alloc")]
use alloc::vec::Vec;

/// GELU (erf form) in f64; `gelu(-inf) = -0`, `gelu(+inf) = +inf`.
pub fn gelu(x: f64) -> f64 {
    if x == f64::NEG_INFINITY {
        return -0.0;
    }
    0.5 * x * libm::erfc(-x * core::f64::consts::FRAC_1_SQRT_2)
}

/// The GELU derivative `Φ(x) + x φ(x)` in f64; 1 at `+inf`, 0 at `-inf`.
pub fn gelu_grad(x: f64) -> f64 {
    if x.is_infinite() {
        return if x > 0.0 { 1.0 } else { 0.0 };
    }
    0.5 * libm::erfc(-x * core::f64::consts::FRAC_1_SQRT_2)
        + x * libm::exp(-0.5 * x * x) * 0.398_942_280_401_432_7
}

/// `C = epi(alpha * A * B + beta * C)` in f64 (C not read when `beta == 0`), for `m x k` `a`,
/// `k x n` `b`, `m x n` `c`, all given by element functions. Returns the row-major result.
#[cfg(feature = "alloc")]
#[allow(clippy::too_many_arguments)]
pub fn gemm(
    m: usize,
    k: usize,
    n: usize,
    alpha: f64,
    a: impl Fn(usize, usize) -> f64,
    b: impl Fn(usize, usize) -> f64,
    beta: f64,
    c: impl Fn(usize, usize) -> f64,
    bias: Option<&[f32]>,
    gelu_after: bool,
) -> Vec<f64> {
    let mut out = Vec::with_capacity(m * n);
    for i in 0..m {
        for j in 0..n {
            let mut s = 0.0f64;
            for p in 0..k {
                s += a(i, p) * b(p, j);
            }
            let mut v = alpha * s;
            if beta != 0.0 {
                v += beta * c(i, j);
            }
            if let Some(bias) = bias {
                v += bias[j] as f64;
            }
            if gelu_after {
                v = gelu(v);
            }
            out.push(v);
        }
    }
    out
}

/// Row-wise softmax (`log = false`) or log-softmax of `scale * x + mask` in f64.
#[cfg(feature = "alloc")]
pub fn softmax(x: &[f32], cols: usize, scale: f32, mask: Option<&[f32]>, log: bool) -> Vec<f64> {
    let mut out = Vec::with_capacity(x.len());
    for row in x.chunks_exact(cols) {
        let v: Vec<f64> = row
            .iter()
            .enumerate()
            .map(|(j, &x)| {
                // Same f32 rounding of `scale * x + mask` as the kernels, then f64.
                let mut t = x * scale;
                if let Some(m) = mask {
                    t += m[j];
                }
                t as f64
            })
            .collect();
        let max = v
            .iter()
            .copied()
            .filter(|t| !t.is_nan())
            .fold(f64::NEG_INFINITY, f64::max);
        if max == f64::NEG_INFINITY {
            let fill = if log { f64::NEG_INFINITY } else { 0.0 };
            out.extend(v.iter().map(|&t| if t.is_nan() { t } else { fill }));
            continue;
        }
        let sum: f64 = v.iter().map(|&t| libm::exp(t - max)).sum();
        if log {
            let lse = max + libm::log(sum);
            out.extend(v.iter().map(|&t| t - lse));
        } else {
            out.extend(v.iter().map(|&t| libm::exp(t - max) / sum));
        }
    }
    out
}

/// LayerNorm of `x (+ residual)` rows in f64.
#[cfg(feature = "alloc")]
pub fn layer_norm(
    x: &[f32],
    residual: Option<&[f32]>,
    gamma: &[f32],
    beta: &[f32],
    eps: f32,
) -> Vec<f64> {
    let cols = gamma.len();
    let mut out = Vec::with_capacity(x.len());
    for (r, row) in x.chunks_exact(cols).enumerate() {
        let v: Vec<f64> = row
            .iter()
            .enumerate()
            .map(|(j, &t)| match residual {
                Some(res) => (t + res[r * cols + j]) as f64,
                None => t as f64,
            })
            .collect();
        let mean = v.iter().sum::<f64>() / cols as f64;
        let var = v.iter().map(|t| (t - mean) * (t - mean)).sum::<f64>() / cols as f64;
        let inv = 1.0 / libm::sqrt(var + eps as f64);
        out.extend(
            v.iter()
                .enumerate()
                .map(|(j, t)| (t - mean) * inv * gamma[j] as f64 + beta[j] as f64),
        );
    }
    out
}

/// L2-normalised rows in f64 (a zero row stays zero).
#[cfg(feature = "alloc")]
pub fn l2_normalize(x: &[f32], cols: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(x.len());
    for row in x.chunks_exact(cols) {
        let n = libm::sqrt(row.iter().map(|&t| t as f64 * t as f64).sum::<f64>());
        out.extend(
            row.iter()
                .map(|&t| if n == 0.0 { t as f64 } else { t as f64 / n }),
        );
    }
    out
}

/// The indices of the `k` best scores by a full sort (higher first, ties by lower index, NaN
/// last).
#[cfg(feature = "alloc")]
pub fn top_k(scores: &[f32], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| {
        let (sa, sb) = (scores[a], scores[b]);
        match (sa.is_nan(), sb.is_nan()) {
            (true, true) => a.cmp(&b),
            (true, false) => core::cmp::Ordering::Greater,
            (false, true) => core::cmp::Ordering::Less,
            _ => sb.partial_cmp(&sa).unwrap().then(a.cmp(&b)),
        }
    });
    idx.truncate(k);
    idx
}
