//! Multi-head self-attention over a packed batch, as one custom autodiff operation.
//!
//! The batch's rows are packed: sequence `b` owns the `lens[b]` rows after the rows of the
//! sequences before it, with no padding. For every sequence and head, with `Q`, `K`, `V` its
//! `n x d` slices and `s = 1/√d`:
//!
//! - forward: `P = softmax(s Q Kᵀ)` (row-wise), `O = P V`;
//! - backward, given `dO`: `dV = Pᵀ dO`, `dP = dO Vᵀ`, `dS = P ⊙ (dP − rowsum(P ⊙ dP))`,
//!   `dQ = s dS K`, `dK = s dSᵀ Q`.
//!
//! Scores exist only for real query and key pairs (`Σ n²` per head rather than
//! `batch x len²`), the probabilities are the only saved state, and the sequences run in
//! parallel, each head's products on multiret-kernels' GEMM.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::Flex;
use burn::prelude::*;
use burn::tensor::TensorPrimitive;
use burn_flex::FlexTensor;
use multiret_kernels::gemm::{gemm_f32, Epilogue};
use multiret_kernels::softmax::softmax_rows;
use multiret_kernels::{MatMut, MatRef, Par};
use rayon::prelude::*;

use super::{dims2, tensor_of, values, FlexAd};

/// The shape of a packed attention problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packed {
    /// Rows of each sequence, in order (every one ≥ 1).
    pub lens: Vec<usize>,
    /// Heads; the hidden width is `heads * head_dim`.
    pub heads: usize,
    /// Width of a head.
    pub head_dim: usize,
}

impl Packed {
    /// Rows in all: `Σ lens`.
    pub fn rows(&self) -> usize {
        self.lens.iter().sum()
    }

    /// Hidden width: `heads * head_dim`.
    pub fn hidden(&self) -> usize {
        self.heads * self.head_dim
    }

    /// Saved probabilities in all: `heads * Σ n²`.
    pub fn probs_len(&self) -> usize {
        self.heads * self.lens.iter().map(|n| n * n).sum::<usize>()
    }

    /// `1/√head_dim`.
    fn scale(&self) -> f32 {
        1.0 / (self.head_dim as f32).sqrt()
    }
}

/// Splits `data` into consecutive chunks of `sizes`.
fn chunks_mut(mut data: &mut [f32], sizes: impl Iterator<Item = usize>) -> Vec<&mut [f32]> {
    let mut out = Vec::new();
    for s in sizes {
        let (a, rest) = data.split_at_mut(s);
        out.push(a);
        data = rest;
    }
    out
}

/// Row offsets of the sequences.
fn starts(lens: &[usize]) -> Vec<usize> {
    let mut at = 0;
    lens.iter()
        .map(|&n| {
            let s = at;
            at += n;
            s
        })
        .collect()
}

/// The forward pass on host slices (`q`, `k`, `v`: `[rows, hidden]` row-major): returns the
/// context `[rows, hidden]` and the probabilities (per sequence, per head, `n x n`
/// row-major).
pub fn forward(q: &[f32], k: &[f32], v: &[f32], p: &Packed) -> (Vec<f32>, Vec<f32>) {
    let (h, d, scale) = (p.hidden(), p.head_dim, p.scale());
    let mut ctx = super::zeroed(p.rows() * h);
    let mut probs = super::zeroed(p.probs_len());
    let st = starts(&p.lens);
    let ctx_parts = chunks_mut(&mut ctx, p.lens.iter().map(|n| n * h));
    let prob_parts = chunks_mut(&mut probs, p.lens.iter().map(|n| p.heads * n * n));
    ctx_parts
        .into_par_iter()
        .zip(prob_parts)
        .enumerate()
        .for_each(|(b, (cb, pb))| {
            let (n, r0) = (p.lens[b], st[b] * h);
            for head in 0..p.heads {
                let off = r0 + head * d;
                let qm = MatRef::new(&q[off..], n, d, h, 1).expect("q block");
                let km = MatRef::new(&k[off..], n, d, h, 1).expect("k block");
                let vm = MatRef::new(&v[off..], n, d, h, 1).expect("v block");
                let s = &mut pb[head * n * n..(head + 1) * n * n];
                let sm = MatMut::row_major(s, n, n).expect("scores block");
                gemm_f32(1.0, qm, km.t(), 0.0, sm, Epilogue::None, Par::Seq).expect("QKᵀ");
                softmax_rows(s, n, scale, None).expect("softmax rows");
                let pm = MatRef::row_major(s, n, n).expect("probs block");
                let om = MatMut::new(&mut cb[head * d..], n, d, h, 1).expect("ctx block");
                gemm_f32(1.0, pm, vm, 0.0, om, Epilogue::None, Par::Seq).expect("PV");
            }
        });
    (ctx, probs)
}

/// The backward pass on host slices: `(dq, dk, dv)`, each `[rows, hidden]`, from the output
/// gradient `dctx` and the forward pass's probabilities.
pub fn backward(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    probs: &[f32],
    dctx: &[f32],
    p: &Packed,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (h, d, scale) = (p.hidden(), p.head_dim, p.scale());
    let size = p.rows() * h;
    let (mut dq, mut dk, mut dv) = (
        super::zeroed(size),
        super::zeroed(size),
        super::zeroed(size),
    );
    let st = starts(&p.lens);
    let parts: Vec<_> = chunks_mut(&mut dq, p.lens.iter().map(|n| n * h))
        .into_iter()
        .zip(chunks_mut(&mut dk, p.lens.iter().map(|n| n * h)))
        .zip(chunks_mut(&mut dv, p.lens.iter().map(|n| n * h)))
        .collect();
    let mut poff = Vec::with_capacity(p.lens.len());
    let mut at = 0;
    for &n in &p.lens {
        poff.push(at);
        at += p.heads * n * n;
    }
    parts
        .into_par_iter()
        .enumerate()
        .for_each(|(b, ((dqb, dkb), dvb))| {
            let (n, r0) = (p.lens[b], st[b] * h);
            let mut ds = vec![0.0f32; n * n];
            for head in 0..p.heads {
                let off = r0 + head * d;
                let pr = &probs[poff[b] + head * n * n..poff[b] + (head + 1) * n * n];
                let pm = MatRef::row_major(pr, n, n).expect("probs block");
                let qm = MatRef::new(&q[off..], n, d, h, 1).expect("q block");
                let km = MatRef::new(&k[off..], n, d, h, 1).expect("k block");
                let vm = MatRef::new(&v[off..], n, d, h, 1).expect("v block");
                let dom = MatRef::new(&dctx[off..], n, d, h, 1).expect("dctx block");
                // dV = Pᵀ dO.
                let dvm = MatMut::new(&mut dvb[head * d..], n, d, h, 1).expect("dv block");
                gemm_f32(1.0, pm.t(), dom, 0.0, dvm, Epilogue::None, Par::Seq).expect("PᵀdO");
                // dP = dO Vᵀ, then dS = P ⊙ (dP − rowsum(P ⊙ dP)).
                let dsm = MatMut::row_major(&mut ds, n, n).expect("dS block");
                gemm_f32(1.0, dom, vm.t(), 0.0, dsm, Epilogue::None, Par::Seq).expect("dOVᵀ");
                for (row, prow) in ds.chunks_exact_mut(n).zip(pr.chunks_exact(n)) {
                    let dot: f32 = row.iter().zip(prow).map(|(a, b)| a * b).sum();
                    for (g, &pv) in row.iter_mut().zip(prow) {
                        *g = pv * (*g - dot);
                    }
                }
                let dsr = MatRef::row_major(&ds, n, n).expect("dS block");
                // dQ = s dS K, dK = s dSᵀ Q.
                let dqm = MatMut::new(&mut dqb[head * d..], n, d, h, 1).expect("dq block");
                gemm_f32(scale, dsr, km, 0.0, dqm, Epilogue::None, Par::Seq).expect("dS K");
                let dkm = MatMut::new(&mut dkb[head * d..], n, d, h, 1).expect("dk block");
                gemm_f32(scale, dsr.t(), qm, 0.0, dkm, Epilogue::None, Par::Seq).expect("dSᵀQ");
            }
        });
    (dq, dk, dv)
}

fn check(q: &FlexTensor, k: &FlexTensor, v: &FlexTensor, p: &Packed) {
    // The packed layout comes from the encoder's own batch: a mismatch is a bug.
    let want = (p.rows(), p.hidden());
    for (name, t) in [("q", q), ("k", k), ("v", v)] {
        assert_eq!(
            dims2(t),
            want,
            "attention: {name} shape differs from the packed batch"
        );
    }
}

/// Attention on burn-flex tensors without a graph.
pub(crate) fn flex(
    q: Tensor<Flex, 2>,
    k: Tensor<Flex, 2>,
    v: Tensor<Flex, 2>,
    p: &Packed,
) -> Tensor<Flex, 2> {
    let (q, k, v) = (super::prim(q), super::prim(k), super::prim(v));
    check(&q, &k, &v, p);
    let (ctx, _) = forward(&values(&q), &values(&k), &values(&v), p);
    Tensor::from_primitive(TensorPrimitive::Float(tensor_of(
        ctx,
        &[p.rows(), p.hidden()],
    )))
}

#[derive(Debug)]
struct AttentionBackward;

#[derive(Debug, Clone)]
struct AttentionState {
    q: FlexTensor,
    k: FlexTensor,
    v: FlexTensor,
    probs: std::sync::Arc<Vec<f32>>,
    packed: Packed,
}

impl Backward<Flex, 3> for AttentionBackward {
    type State = AttentionState;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _c: &mut Checkpointer) {
        let AttentionState {
            q,
            k,
            v,
            probs,
            packed,
        } = ops.state;
        let dctx = grads.consume::<Flex>(&ops.node);
        let (dq, dk, dv) = backward(
            &values(&q),
            &values(&k),
            &values(&v),
            &probs,
            &values(&dctx),
            &packed,
        );
        let shape = [packed.rows(), packed.hidden()];
        for (node, g) in ops.parents.into_iter().zip([dq, dk, dv]) {
            if let Some(node) = node {
                grads.register::<Flex>(node.id, tensor_of(g, &shape));
            }
        }
    }
}

/// Attention on burn-flex autodiff tensors: one node with its own backward pass.
pub(crate) fn autodiff(
    q: Tensor<FlexAd, 2>,
    k: Tensor<FlexAd, 2>,
    v: Tensor<FlexAd, 2>,
    p: &Packed,
) -> Tensor<FlexAd, 2> {
    let (q, k, v) = (
        q.into_primitive().tensor(),
        k.into_primitive().tensor(),
        v.into_primitive().tensor(),
    );
    check(&q.primitive, &k.primitive, &v.primitive, p);
    let shape = [p.rows(), p.hidden()];
    let out = match AttentionBackward
        .prepare::<NoCheckpointing>([q.node.clone(), k.node.clone(), v.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let (ctx, probs) = forward(
                &values(&q.primitive),
                &values(&k.primitive),
                &values(&v.primitive),
                p,
            );
            let state = AttentionState {
                q: q.primitive,
                k: k.primitive,
                v: v.primitive,
                probs: std::sync::Arc::new(probs),
                packed: p.clone(),
            };
            prep.finish(state, tensor_of(ctx, &shape))
        }
        OpsKind::UnTracked(prep) => {
            let (ctx, _) = forward(
                &values(&q.primitive),
                &values(&k.primitive),
                &values(&v.primitive),
                p,
            );
            prep.finish(tensor_of(ctx, &shape))
        }
    };
    Tensor::from_primitive(TensorPrimitive::Float(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fast::testing::{close, fd_grad, host, leaf};
    use proptest::prelude::*;

    /// The f64 reference: per sequence and head, `softmax(Q Kᵀ / √d) V`, written out.
    fn reference(q: &[f64], k: &[f64], v: &[f64], p: &Packed) -> Vec<f64> {
        let (h, d) = (p.hidden(), p.head_dim);
        let scale = 1.0 / (d as f64).sqrt();
        let mut out = vec![0.0; q.len()];
        let mut r0 = 0;
        for &n in &p.lens {
            for head in 0..p.heads {
                let at = |m: &[f64], i: usize, j: usize| m[(r0 + i) * h + head * d + j];
                for i in 0..n {
                    let s: Vec<f64> = (0..n)
                        .map(|j| (0..d).map(|c| at(q, i, c) * at(k, j, c)).sum::<f64>() * scale)
                        .collect();
                    let max = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let e: Vec<f64> = s.iter().map(|x| (x - max).exp()).collect();
                    let z: f64 = e.iter().sum();
                    for c in 0..d {
                        out[(r0 + i) * h + head * d + c] =
                            (0..n).map(|j| e[j] / z * at(v, j, c)).sum::<f64>();
                    }
                }
            }
            r0 += n;
        }
        out
    }

    fn problem() -> impl Strategy<Value = (Packed, Vec<f64>)> {
        (prop::collection::vec(1usize..7, 1..4), 1usize..3, 1usize..5).prop_flat_map(
            |(lens, heads, head_dim)| {
                let p = Packed {
                    lens,
                    heads,
                    head_dim,
                };
                let n = 4 * p.rows() * p.hidden();
                (Just(p), prop::collection::vec(-2.0f64..2.0, n))
            },
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// The autodiff op's output and its gradients for `L = Σ G ⊙ attention(Q, K, V)`
        /// against the f64 reference and its finite differences.
        #[test]
        fn packed_attention_matches_the_f64_reference_forward_and_backward(
            (p, vals) in problem()
        ) {
            let size = p.rows() * p.hidden();
            let (qv, kv, vv, gv) = (
                &vals[..size],
                &vals[size..2 * size],
                &vals[2 * size..3 * size],
                &vals[3 * size..],
            );
            let shape = [p.rows(), p.hidden()];
            let (q, k, v) = (leaf(qv, shape), leaf(kv, shape), leaf(vv, shape));
            let out = autodiff(q.clone(), k.clone(), v.clone(), &p);
            let want = reference(qv, kv, vv, &p);
            close("forward", &host(out.clone().inner()), &want, 1e-5)
                .map_err(TestCaseError::fail)?;
            let g = Tensor::<FlexAd, 2>::from_data(
                TensorData::new(gv.iter().map(|&x| x as f32).collect::<Vec<_>>(), shape),
                &Default::default(),
            );
            let grads = (out * g).sum().backward();
            let loss = |q: &[f64], k: &[f64], v: &[f64]| -> f64 {
                reference(q, k, v, &p).iter().zip(gv).map(|(a, b)| a * b).sum()
            };
            let wq = fd_grad(&|x| loss(x, kv, vv), qv);
            let wk = fd_grad(&|x| loss(qv, x, vv), kv);
            let wv = fd_grad(&|x| loss(qv, kv, x), vv);
            for (name, t, want) in [("dq", &q, wq), ("dk", &k, wk), ("dv", &v, wv)] {
                let got = host(t.grad(&grads).expect("a gradient"));
                close(name, &got, &want, 1e-4).map_err(TestCaseError::fail)?;
            }
        }
    }

    /// Without autodiff, the same forward pass.
    #[test]
    fn flex_forward_equals_the_autodiff_forward() {
        let p = Packed {
            lens: vec![3, 1, 2],
            heads: 2,
            head_dim: 2,
        };
        let size = p.rows() * p.hidden();
        let vals: Vec<f64> = (0..3 * size)
            .map(|i| ((i * 7919) % 23) as f64 / 11.0 - 1.0)
            .collect();
        let shape = [p.rows(), p.hidden()];
        let t = |s: &[f64]| {
            Tensor::<Flex, 2>::from_data(
                TensorData::new(s.iter().map(|&x| x as f32).collect::<Vec<_>>(), shape),
                &Default::default(),
            )
        };
        let (a, b, c) = (&vals[..size], &vals[size..2 * size], &vals[2 * size..]);
        let plain = host(flex(t(a), t(b), t(c), &p));
        let tracked = host(autodiff(leaf(a, shape), leaf(b, shape), leaf(c, shape), &p).inner());
        assert_eq!(plain, tracked);
    }
}
