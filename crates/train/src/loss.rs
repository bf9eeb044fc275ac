//! InfoNCE with in-batch negatives (docs/method.md §2).

use burn::prelude::*;
use burn::tensor::activation::log_softmax;

/// The InfoNCE loss of a batch.
///
/// `queries` is `[n, dim]`; `passages` is `[m, dim]` with `m >= n`: row `i < n` is the positive
/// of query `i`, rows `n..m` are hard negatives. Scores are dot products (cosine similarities
/// for normalised embeddings) divided by `temperature`. Per query `i`:
/// `L_i = -log(exp(s(q_i, d_i) / τ) / Σ_{d in passages} exp(s(q_i, d) / τ))`, and the loss is the
/// mean over queries. With `symmetric`, the passage-to-query loss (each positive against every
/// query of the batch) is added and the two are averaged.
///
/// Returns a one-element tensor.
pub fn info_nce<B: Backend>(
    queries: Tensor<B, 2>,
    passages: Tensor<B, 2>,
    temperature: f32,
    symmetric: bool,
) -> Tensor<B, 1> {
    info_nce_masked(queries, passages, temperature, symmetric, &[])
}

/// The score given to an excluded (query, passage) pair: `exp` of it is 0 against any real
/// score, and it stays finite, so that `0 * log p` is 0 rather than NaN.
const EXCLUDED: f32 = -1e9;

/// [`info_nce`] with some (query, passage) pairs left out of the query's softmax: `excluded`
/// lists `(i, j)` with `j >= n` (hard negatives that may be query `i`'s positive in
/// disguise: the same text, or a sentence of its source paragraph in another language). A
/// pair `(i, i)` or one outside `[n, m)` is ignored: a query keeps its positive and the other
/// positives (the sampler keeps those apart). The passage-to-query half of the symmetric loss
/// runs over the positives only and is unaffected.
pub fn info_nce_masked<B: Backend>(
    queries: Tensor<B, 2>,
    passages: Tensor<B, 2>,
    temperature: f32,
    symmetric: bool,
    excluded: &[(usize, usize)],
) -> Tensor<B, 1> {
    let [n, _] = queries.dims();
    let [m, _] = passages.dims();
    assert!(
        m >= n,
        "InfoNCE needs a positive per query ({n} queries, {m} passages)"
    );
    let device = queries.device();
    let mut scores = queries
        .matmul(passages.transpose())
        .div_scalar(temperature as f64);
    let kept: Vec<(usize, usize)> = excluded
        .iter()
        .copied()
        .filter(|&(i, j)| i < n && j >= n && j < m)
        .collect();
    if !kept.is_empty() {
        let mut v = vec![0.0f32; n * m];
        for (i, j) in kept {
            v[i * m + j] = EXCLUDED;
        }
        scores = scores + Tensor::from_data(TensorData::new(v, [n, m]), &device);
    }
    let targets = diagonal::<B>(n, m, &device);
    let q_loss = -(log_softmax(scores.clone(), 1) * targets)
        .sum()
        .div_scalar(n as f64);
    if !symmetric {
        return q_loss;
    }
    let pos = scores.slice(s![0..n, 0..n]).transpose();
    let d_loss = -(log_softmax(pos, 1) * diagonal::<B>(n, n, &device))
        .sum()
        .div_scalar(n as f64);
    (q_loss + d_loss).div_scalar(2.0)
}

/// `[n, m]` with ones at `(i, i)`.
fn diagonal<B: Backend>(n: usize, m: usize, device: &B::Device) -> Tensor<B, 2> {
    let mut v = vec![0.0f32; n * m];
    for i in 0..n {
        v[i * m + i] = 1.0;
    }
    Tensor::from_data(TensorData::new(v, [n, m]), device)
}

/// The same loss computed in f64 on the host, for checks: `queries` `[n, dim]` and `passages`
/// `[m, dim]` row-major.
pub fn info_nce_reference(
    queries: &[f32],
    passages: &[f32],
    dim: usize,
    temperature: f64,
    symmetric: bool,
) -> f64 {
    info_nce_reference_masked(queries, passages, dim, temperature, symmetric, &[])
}

/// [`info_nce_reference`] of [`info_nce_masked`]: the excluded pairs are dropped from the
/// query's sum outright.
pub fn info_nce_reference_masked(
    queries: &[f32],
    passages: &[f32],
    dim: usize,
    temperature: f64,
    symmetric: bool,
    excluded: &[(usize, usize)],
) -> f64 {
    let n = queries.len() / dim;
    let m = passages.len() / dim;
    let out = |i: usize, j: usize| j >= n && j < m && excluded.contains(&(i, j));
    let s = |i: usize, j: usize| -> f64 {
        let q = &queries[i * dim..(i + 1) * dim];
        let d = &passages[j * dim..(j + 1) * dim];
        q.iter()
            .zip(d)
            .map(|(a, b)| *a as f64 * *b as f64)
            .sum::<f64>()
            / temperature
    };
    let ce = |row: &dyn Fn(usize) -> Option<f64>, cols: usize, target: usize| -> f64 {
        let vals: Vec<f64> = (0..cols).filter_map(row).collect();
        let max = vals.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let lse = max + vals.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
        lse - row(target).expect("the target is never excluded")
    };
    let q_loss = (0..n)
        .map(|i| ce(&|j| (!out(i, j)).then(|| s(i, j)), m, i))
        .sum::<f64>()
        / n as f64;
    if !symmetric {
        return q_loss;
    }
    let d_loss = (0..n).map(|j| ce(&|i| Some(s(i, j)), n, j)).sum::<f64>() / n as f64;
    (q_loss + d_loss) / 2.0
}
