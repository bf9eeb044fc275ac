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
    info_nce_masked(
        queries,
        passages,
        temperature,
        symmetric,
        &BatchMask::default(),
    )
}

/// The score given to an excluded (query, passage) pair: `exp` of it is 0 against any real
/// score, and it stays finite, so that `0 * log p` is 0 rather than NaN.
const EXCLUDED: f32 = -1e9;

/// A (row, column) cell of a score matrix.
type Cell = (usize, usize);

/// The structure of a batch's score matrix beyond "query `i`'s positive is passage `i`".
///
/// Pairs are `(query, passage)`, with queries `0..n` and passages `0..m`; the first `n`
/// passages are the queries' own positives, the rest hard negatives.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchMask {
    /// More positives: `(i, j)` with `j < n`, `j != i` (passage `j` is another query's
    /// positive that is also one of query `i`'s, e.g. the same question in another language in
    /// a group batch). Pairs outside that range are ignored.
    pub positives: Vec<(usize, usize)>,
    /// Pairs left out of query `i`'s softmax: negatives that may be its positive in disguise
    /// (the same text, or a sentence of its source paragraph in another language). The
    /// diagonal, positives and pairs outside the matrix are ignored.
    pub excluded: Vec<(usize, usize)>,
}

impl BatchMask {
    /// The positive and excluded pairs of an `[n, m]` score matrix, each in range, the
    /// diagonal among the positives, the excluded ones not positives; both sorted.
    fn resolve(&self, n: usize, m: usize) -> (Vec<Cell>, Vec<Cell>) {
        let mut pos: Vec<Cell> = (0..n).map(|i| (i, i)).collect();
        pos.extend(
            self.positives
                .iter()
                .copied()
                .filter(|&(i, j)| i < n && j < n && i != j),
        );
        pos.sort_unstable();
        pos.dedup();
        let mut excl: Vec<Cell> = self
            .excluded
            .iter()
            .copied()
            .filter(|&(i, j)| i < n && j < m && pos.binary_search(&(i, j)).is_err())
            .collect();
        excl.sort_unstable();
        excl.dedup();
        (pos, excl)
    }
}

/// [`info_nce`] over a batch's [`BatchMask`].
///
/// The excluded pairs are left out of their query's softmax. A query with several positives
/// `P(i)` (a group batch) takes the mean over its positives of a softmax of that positive
/// against the query's negatives `N(i)` (every passage neither a positive nor excluded):
/// `L_i = (1 / |P(i)|) Σ_{p in P(i)} -log(e^{s_ip} / (e^{s_ip} + Σ_{j in N(i)} e^{s_ij}))`.
/// So positives never compete with each other, and with one positive per query this is
/// [`info_nce`]. The passage-to-query half of the symmetric loss does the same over the
/// positives' block, transposed (each positive against the queries, the mask transposed).
pub fn info_nce_masked<B: Backend>(
    queries: Tensor<B, 2>,
    passages: Tensor<B, 2>,
    temperature: f32,
    symmetric: bool,
    mask: &BatchMask,
) -> Tensor<B, 1> {
    let [n, _] = queries.dims();
    let [m, _] = passages.dims();
    assert!(
        m >= n,
        "InfoNCE needs a positive per query ({n} queries, {m} passages)"
    );
    let scores = queries
        .matmul(passages.transpose())
        .div_scalar(temperature as f64);
    let (pos, excl) = mask.resolve(n, m);
    let q_loss = nce_rows(scores.clone(), &pos, &excl);
    if !symmetric {
        return q_loss;
    }
    let block = scores.slice(s![0..n, 0..n]).transpose();
    let swap = |v: &[Cell]| -> Vec<Cell> {
        let mut t: Vec<Cell> = v
            .iter()
            .filter(|&&(_, j)| j < n)
            .map(|&(i, j)| (j, i))
            .collect();
        t.sort_unstable();
        t
    };
    let d_loss = nce_rows(block, &swap(&pos), &swap(&excl));
    (q_loss + d_loss).div_scalar(2.0)
}

/// The mean over rows of `scores` `[r, c]` of the loss of [`info_nce_masked`]: `pos` holds
/// every row's positives (sorted, the diagonal included), `excl` its excluded columns.
fn nce_rows<B: Backend>(scores: Tensor<B, 2>, pos: &[Cell], excl: &[Cell]) -> Tensor<B, 1> {
    let [r, c] = scores.dims();
    let device = scores.device();
    let bias = |cells: &[Cell]| {
        let mut v = vec![0.0f32; r * c];
        for &(i, j) in cells {
            v[i * c + j] = EXCLUDED;
        }
        Tensor::<B, 2>::from_data(TensorData::new(v, [r, c]), &device)
    };
    let weights = |w: Vec<f32>| Tensor::<B, 2>::from_data(TensorData::new(w, [r, c]), &device);
    let mut per_row = vec![0usize; r];
    for &(i, _) in pos {
        per_row[i] += 1;
    }
    if per_row.iter().all(|&k| k == 1) {
        // One positive per row, the diagonal: the plain cross-entropy.
        let scores = if excl.is_empty() {
            scores
        } else {
            scores + bias(excl)
        };
        let mut w = vec![0.0f32; r * c];
        for i in 0..r {
            w[i * c + i] = 1.0;
        }
        return -(log_softmax(scores, 1) * weights(w))
            .sum()
            .div_scalar(r as f64);
    }
    // log Σ_{j in N(i)} e^{s_ij}, then softplus(lse_i - s_ip) = -log(e^s / (e^s + e^lse)) at
    // every positive, weighted 1 / (|P(i)| r).
    let out: Vec<Cell> = pos.iter().chain(excl).copied().collect();
    let neg = scores.clone() + bias(&out);
    let top = neg.clone().max_dim(1).detach();
    let lse = (neg - top.clone()).exp().sum_dim(1).log() + top;
    let d = lse - scores;
    let softplus = burn::tensor::activation::relu(d.clone()) + d.abs().neg().exp().log1p();
    let mut w = vec![0.0f32; r * c];
    for &(i, j) in pos {
        w[i * c + j] = 1.0 / (per_row[i] * r) as f32;
    }
    (softplus * weights(w)).sum()
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
    info_nce_reference_masked(
        queries,
        passages,
        dim,
        temperature,
        symmetric,
        &BatchMask::default(),
    )
}

/// [`info_nce_reference`] of [`info_nce_masked`], written out in f64: every (row, positive)
/// term as its own log of a sum over the positive and the row's negatives, the excluded pairs
/// dropped from the sums outright. Takes f32 or f64 embeddings (f64 for finite differences).
pub fn info_nce_reference_masked<T: Copy + Into<f64>>(
    queries: &[T],
    passages: &[T],
    dim: usize,
    temperature: f64,
    symmetric: bool,
    mask: &BatchMask,
) -> f64 {
    let n = queries.len() / dim;
    let m = passages.len() / dim;
    let in_pos = |i: usize, j: usize| j < n && (i == j || mask.positives.contains(&(i, j)));
    let in_excl = |i: usize, j: usize| !in_pos(i, j) && j < m && mask.excluded.contains(&(i, j));
    let s = |i: usize, j: usize| -> f64 {
        let q = &queries[i * dim..(i + 1) * dim];
        let d = &passages[j * dim..(j + 1) * dim];
        q.iter()
            .zip(d)
            .map(|(a, b)| (*a).into() * (*b).into())
            .sum::<f64>()
            / temperature
    };
    // One row: `score(k)` over `cols`, with positive and excluded predicates.
    let row = |cols: usize,
               score: &dyn Fn(usize) -> f64,
               pos: &dyn Fn(usize) -> bool,
               excl: &dyn Fn(usize) -> bool|
     -> f64 {
        let negs: Vec<f64> = (0..cols)
            .filter(|&k| !pos(k) && !excl(k))
            .map(score)
            .collect();
        let terms: Vec<f64> = (0..cols)
            .filter(|&k| pos(k))
            .map(|p| {
                let sp = score(p);
                let max = negs.iter().cloned().fold(sp, f64::max);
                let sum = (sp - max).exp() + negs.iter().map(|v| (v - max).exp()).sum::<f64>();
                max + sum.ln() - sp
            })
            .collect();
        terms.iter().sum::<f64>() / terms.len() as f64
    };
    let q_loss = (0..n)
        .map(|i| row(m, &|j| s(i, j), &|j| in_pos(i, j), &|j| in_excl(i, j)))
        .sum::<f64>()
        / n as f64;
    if !symmetric {
        return q_loss;
    }
    let d_loss = (0..n)
        .map(|j| row(n, &|i| s(i, j), &|i| in_pos(i, j), &|i| in_excl(i, j)))
        .sum::<f64>()
        / n as f64;
    (q_loss + d_loss) / 2.0
}
