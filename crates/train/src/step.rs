//! One training step's loss and gradients, directly or with gradient caching.

use burn::module::AutodiffModule;
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;

use crate::encoder::TrainableEncoder;
use crate::error::Result;
use crate::loss::{info_nce_masked, BatchMask};

/// The loss settings of a step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LossConfig {
    /// Temperature τ.
    pub temperature: f32,
    /// Add the passage-to-query loss.
    pub symmetric: bool,
}

fn scalar<B: Backend>(t: Tensor<B, 1>) -> f32 {
    t.into_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .expect("f32 tensor data")[0]
}

/// The loss of a batch (`queries[i]` with positive `passages[i]`, then hard negatives in
/// `passages[n..]`, with the positives and exclusions of `mask`: [`info_nce_masked`]) and
/// the gradients of every trainable parameter.
///
/// With `chunks == 1`, one forward and backward pass over the whole batch. With `chunks > 1`,
/// gradient caching (Gao et al., 2021): the embeddings of the whole batch are computed chunk
/// by chunk without a graph, the loss and its gradient with respect to every embedding are
/// computed over the whole batch (so every query still sees every in-batch negative), then
/// each chunk is encoded again with a graph and back-propagated with its cached embedding
/// gradients, and the chunks' parameter gradients are summed. The result is the gradient of
/// the full-batch loss (up to floating-point summation order) while only one chunk's
/// activations are alive at a time; it costs one extra forward pass.
pub fn loss_and_grads<B: AutodiffBackend>(
    encoder: &TrainableEncoder<B>,
    queries: &[Vec<u32>],
    passages: &[Vec<u32>],
    mask: &BatchMask,
    loss: LossConfig,
    chunks: usize,
    device: &B::Device,
) -> Result<(f32, GradientsParams)> {
    if chunks <= 1 {
        let q = encoder.encode(queries, device)?;
        let d = encoder.encode(passages, device)?;
        let l = info_nce_masked(q, d, loss.temperature, loss.symmetric, mask);
        let value = scalar(l.clone());
        let grads = GradientsParams::from_grads(l.backward(), encoder);
        return Ok((value, grads));
    }
    let inner = encoder.valid();
    let q_parts = split(queries, chunks);
    let d_parts = split(passages, chunks);
    let embed = |parts: &[&[Vec<u32>]]| -> Result<Tensor<B::InnerBackend, 2>> {
        let mut out = Vec::with_capacity(parts.len());
        for p in parts {
            out.push(inner.encode(p, device)?);
        }
        Ok(Tensor::cat(out, 0))
    };
    let q_all = Tensor::<B, 2>::from_inner(embed(&q_parts)?).require_grad();
    let d_all = Tensor::<B, 2>::from_inner(embed(&d_parts)?).require_grad();
    let l = info_nce_masked(
        q_all.clone(),
        d_all.clone(),
        loss.temperature,
        loss.symmetric,
        mask,
    );
    let value = scalar(l.clone());
    let grads = l.backward();
    let gq = q_all.grad(&grads).expect("queries are a leaf of the loss");
    let gd = d_all.grad(&grads).expect("passages are a leaf of the loss");
    drop(grads);
    let mut acc = GradientsAccumulator::<TrainableEncoder<B>>::new();
    for (parts, g) in [(&q_parts, gq), (&d_parts, gd)] {
        let mut start = 0;
        for p in parts.iter() {
            let emb = encoder.encode(p, device)?;
            let gc = Tensor::<B, 2>::from_inner(g.clone().narrow(0, start, p.len()));
            start += p.len();
            let surrogate = (emb * gc).sum();
            let gp = GradientsParams::from_grads(surrogate.backward(), encoder);
            acc.accumulate(encoder, gp);
        }
    }
    Ok((value, acc.grads()))
}

/// The loss of a batch without gradients (validation).
pub fn loss_only<B: Backend>(
    encoder: &TrainableEncoder<B>,
    queries: &[Vec<u32>],
    passages: &[Vec<u32>],
    mask: &BatchMask,
    loss: LossConfig,
    device: &B::Device,
) -> Result<f32> {
    let q = encoder.encode(queries, device)?;
    let d = encoder.encode(passages, device)?;
    Ok(scalar(info_nce_masked(
        q,
        d,
        loss.temperature,
        loss.symmetric,
        mask,
    )))
}

/// `items` in `chunks` contiguous, nearly equal, non-empty parts.
fn split<T>(items: &[T], chunks: usize) -> Vec<&[T]> {
    let k = chunks.clamp(1, items.len().max(1));
    let base = items.len() / k;
    let extra = items.len() % k;
    let mut out = Vec::with_capacity(k);
    let mut start = 0;
    for i in 0..k {
        let n = base + usize::from(i < extra);
        out.push(&items[start..start + n]);
        start += n;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::split;

    #[test]
    fn split_covers_in_order() {
        let v: Vec<u32> = (0..10).collect();
        let parts = split(&v, 3);
        assert_eq!(parts.len(), 3);
        assert_eq!(parts.concat(), v);
        assert_eq!(parts.iter().map(|p| p.len()).collect::<Vec<_>>(), [4, 3, 3]);
        assert_eq!(split(&v[..2], 5).len(), 2);
    }
}
