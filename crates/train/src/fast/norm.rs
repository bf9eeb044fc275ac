//! LayerNorm of a residual sum, `y = γ ⊙ (x − μ)/σ + β` with `x = a + r` per row (biased
//! variance, `σ = √(var + ε)`), as one custom autodiff operation.
//!
//! Backward, with `x̂ = (x − μ)/σ` and `g = dy ⊙ γ` (means over the row's `h` columns):
//! `dx = (g − mean(g) − x̂ mean(g ⊙ x̂)) / σ` (the gradient of both `a` and `r`),
//! `dγ = Σ_rows dy ⊙ x̂`, `dβ = Σ_rows dy`. The forward pass saves `x̂` and `1/σ`.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::Flex;
use burn::prelude::*;
use burn::tensor::TensorPrimitive;
use burn_flex::FlexTensor;
use rayon::prelude::*;

use super::{dims2, tensor_of, values, FlexAd};

/// Rows per parallel task.
const ROWS_PER_TASK: usize = 64;

/// The forward pass on host slices (`a`, `r`: `[rows, h]`; `w`, `b`: `[h]`): `(y, x̂, 1/σ)`.
pub fn forward(a: &[f32], r: &[f32], w: &[f32], b: &[f32], eps: f32) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let h = w.len();
    let rows = a.len() / h.max(1);
    let mut y = vec![0.0f32; rows * h];
    let mut xhat = vec![0.0f32; rows * h];
    let mut rstd = vec![0.0f32; rows];
    let task = ROWS_PER_TASK * h;
    y.par_chunks_mut(task)
        .zip(xhat.par_chunks_mut(task))
        .zip(rstd.par_chunks_mut(ROWS_PER_TASK))
        .enumerate()
        .for_each(|(t, ((yc, xc), rc))| {
            let base = t * task;
            for (i, ((yr, xr), rs)) in yc
                .chunks_exact_mut(h)
                .zip(xc.chunks_exact_mut(h))
                .zip(rc.iter_mut())
                .enumerate()
            {
                let o = base + i * h;
                let (ar, rr) = (&a[o..o + h], &r[o..o + h]);
                let mut sum = 0.0f32;
                for ((x, &p), &q) in xr.iter_mut().zip(ar).zip(rr) {
                    *x = p + q;
                    sum += *x;
                }
                let mean = sum / h as f32;
                let mut var = 0.0f32;
                for x in xr.iter_mut() {
                    *x -= mean;
                    var += *x * *x;
                }
                let inv = 1.0 / (var / h as f32 + eps).sqrt();
                *rs = inv;
                for (((x, yv), &g), &be) in xr.iter_mut().zip(yr.iter_mut()).zip(w).zip(b) {
                    *x *= inv;
                    *yv = *x * g + be;
                }
            }
        });
    (y, xhat, rstd)
}

/// The backward pass on host slices: `(dx, dγ, dβ)` from `dy` and the forward pass's `x̂`
/// and `1/σ`.
pub fn backward(dy: &[f32], xhat: &[f32], rstd: &[f32], w: &[f32]) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let h = w.len();
    let rows = rstd.len();
    let mut dx = vec![0.0f32; rows * h];
    let task = ROWS_PER_TASK * h;
    let partial: Vec<(Vec<f32>, Vec<f32>)> = dx
        .par_chunks_mut(task)
        .enumerate()
        .map(|(t, dc)| {
            let (mut dw, mut db) = (vec![0.0f32; h], vec![0.0f32; h]);
            for (i, dr) in dc.chunks_exact_mut(h).enumerate() {
                let row = t * ROWS_PER_TASK + i;
                let o = row * h;
                let (gy, xr) = (&dy[o..o + h], &xhat[o..o + h]);
                let (mut mg, mut mgx) = (0.0f32, 0.0f32);
                for j in 0..h {
                    let g = gy[j] * w[j];
                    mg += g;
                    mgx += g * xr[j];
                    dw[j] += gy[j] * xr[j];
                    db[j] += gy[j];
                }
                mg /= h as f32;
                mgx /= h as f32;
                let inv = rstd[row];
                for j in 0..h {
                    dr[j] = inv * (gy[j] * w[j] - mg - xr[j] * mgx);
                }
            }
            (dw, db)
        })
        .collect();
    let (mut dw, mut db) = (vec![0.0f32; h], vec![0.0f32; h]);
    for (pw, pb) in &partial {
        for j in 0..h {
            dw[j] += pw[j];
            db[j] += pb[j];
        }
    }
    (dx, dw, db)
}

fn check(a: &FlexTensor, r: &FlexTensor, w: &FlexTensor, b: &FlexTensor) -> (usize, usize) {
    // Shapes come from the encoder's own layers: a mismatch is a bug.
    let (rows, h) = dims2(a);
    assert_eq!(dims2(r), (rows, h), "layer norm: residual shape differs");
    assert_eq!(w.layout().shape()[0], h, "layer norm: gamma length differs");
    assert_eq!(b.layout().shape()[0], h, "layer norm: beta length differs");
    (rows, h)
}

/// The operation on burn-flex tensors without a graph.
pub(crate) fn flex(
    a: Tensor<Flex, 2>,
    r: Tensor<Flex, 2>,
    w: Tensor<Flex, 1>,
    b: Tensor<Flex, 1>,
    eps: f32,
) -> Tensor<Flex, 2> {
    let (a, r, w, b) = (super::prim(a), super::prim(r), super::prim(w), super::prim(b));
    let (rows, h) = check(&a, &r, &w, &b);
    let (y, _, _) = forward(&values(&a), &values(&r), &values(&w), &values(&b), eps);
    Tensor::from_primitive(TensorPrimitive::Float(tensor_of(y, &[rows, h])))
}

#[derive(Debug)]
struct NormBackward;

#[derive(Debug, Clone)]
struct NormState {
    xhat: std::sync::Arc<Vec<f32>>,
    rstd: std::sync::Arc<Vec<f32>>,
    w: FlexTensor,
}

impl Backward<Flex, 4> for NormBackward {
    type State = NormState;

    fn backward(self, ops: Ops<Self::State, 4>, grads: &mut Gradients, _c: &mut Checkpointer) {
        let NormState { xhat, rstd, w } = ops.state;
        let dy = grads.consume::<Flex>(&ops.node);
        let wv = values(&w);
        let (rows, h) = (rstd.len(), wv.len());
        let (dx, dw, db) = backward(&values(&dy), &xhat, &rstd, &wv);
        let [pa, pr, pw, pb] = ops.parents;
        match (pa, pr) {
            (Some(a), Some(r)) => {
                grads.register::<Flex>(a.id, tensor_of(dx.clone(), &[rows, h]));
                grads.register::<Flex>(r.id, tensor_of(dx, &[rows, h]));
            }
            (Some(n), None) | (None, Some(n)) => {
                grads.register::<Flex>(n.id, tensor_of(dx, &[rows, h]));
            }
            (None, None) => {}
        }
        if let Some(n) = pw {
            grads.register::<Flex>(n.id, tensor_of(dw, &[h]));
        }
        if let Some(n) = pb {
            grads.register::<Flex>(n.id, tensor_of(db, &[h]));
        }
    }
}

/// The operation on burn-flex autodiff tensors: one node with its own backward pass.
pub(crate) fn autodiff(
    a: Tensor<FlexAd, 2>,
    r: Tensor<FlexAd, 2>,
    w: Tensor<FlexAd, 1>,
    b: Tensor<FlexAd, 1>,
    eps: f32,
) -> Tensor<FlexAd, 2> {
    let (a, r, w, b) = (
        a.into_primitive().tensor(),
        r.into_primitive().tensor(),
        w.into_primitive().tensor(),
        b.into_primitive().tensor(),
    );
    let (rows, h) = check(&a.primitive, &r.primitive, &w.primitive, &b.primitive);
    let (y, xhat, rstd) = forward(
        &values(&a.primitive),
        &values(&r.primitive),
        &values(&w.primitive),
        &values(&b.primitive),
        eps,
    );
    let y = tensor_of(y, &[rows, h]);
    let out = match NormBackward
        .prepare::<NoCheckpointing>([
            a.node.clone(),
            r.node.clone(),
            w.node.clone(),
            b.node.clone(),
        ])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish(
            NormState {
                xhat: std::sync::Arc::new(xhat),
                rstd: std::sync::Arc::new(rstd),
                w: w.primitive,
            },
            y,
        ),
        OpsKind::UnTracked(prep) => prep.finish(y),
    };
    Tensor::from_primitive(TensorPrimitive::Float(out))
}
