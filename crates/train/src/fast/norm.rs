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

use super::{dims2, tensor_of, values, zeroed, FlexAd};

/// Rows per parallel task.
const ROWS_PER_TASK: usize = 64;

/// The forward pass on host slices (`a`, `r`: `[rows, h]`; `w`, `b`: `[h]`): `(y, x̂, 1/σ)`.
pub fn forward(
    a: &[f32],
    r: &[f32],
    w: &[f32],
    b: &[f32],
    eps: f32,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let h = w.len();
    let rows = a.len() / h.max(1);
    let mut y = zeroed(rows * h);
    let mut xhat = zeroed(rows * h);
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
pub fn backward(
    dy: &[f32],
    xhat: &[f32],
    rstd: &[f32],
    w: &[f32],
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let h = w.len();
    let rows = rstd.len();
    let mut dx = zeroed(rows * h);
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
    let (a, r, w, b) = (
        super::prim(a),
        super::prim(r),
        super::prim(w),
        super::prim(b),
    );
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fast::testing::{close, fd_grad, host, leaf};
    use proptest::prelude::*;

    /// The f64 reference: `γ ⊙ (x − μ)/√(var + ε) + β` per row of `x = a + r`.
    fn reference(a: &[f64], r: &[f64], w: &[f64], b: &[f64], eps: f64) -> Vec<f64> {
        let h = w.len();
        let mut out = Vec::with_capacity(a.len());
        for (ar, rr) in a.chunks(h).zip(r.chunks(h)) {
            let x: Vec<f64> = ar.iter().zip(rr).map(|(p, q)| p + q).collect();
            let mean = x.iter().sum::<f64>() / h as f64;
            let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / h as f64;
            let s = (var + eps).sqrt();
            out.extend(
                x.iter()
                    .enumerate()
                    .map(|(j, v)| (v - mean) / s * w[j] + b[j]),
            );
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// The autodiff op's output and its gradients (a, r, γ, β) for `L = Σ G ⊙ y` against
        /// the f64 reference and its finite differences; rows span several parallel tasks.
        #[test]
        fn residual_layer_norm_matches_the_f64_reference_forward_and_backward(
            (rows, h) in (prop_oneof![1usize..5, 60usize..140], 2usize..9),
            seed in prop::collection::vec(-2.0f64..2.0, 64),
            eps in prop_oneof![Just(1e-5f64), Just(1e-12), Just(0.1)],
        ) {
            // Values from a small pool cycled with a stride, so that big row counts stay cheap
            // to draw; the gain and bias are drawn apart from them.
            let n = rows * h;
            let gen = |off: usize, len: usize| -> Vec<f64> {
                (0..len).map(|i| seed[(off + i * 7) % seed.len()] + (i % 5) as f64 * 0.1).collect()
            };
            // Rows of x = a + r are a ramp over the columns plus noise below half a step, so
            // that no row is near-constant: there LayerNorm's gradient is ill-conditioned and
            // neither f32 nor finite differences are meaningful.
            let ramp = |v: Vec<f64>| -> Vec<f64> {
                v.iter().enumerate().map(|(i, x)| 0.05 * x + 0.5 * (i % h) as f64).collect()
            };
            let (av, gv) = (ramp(gen(0, n)), gen(11, n));
            let rv: Vec<f64> = gen(3, n).iter().map(|x| 0.05 * x).collect();
            let (wv, bv) = (gen(29, h), gen(41, h));
            let (a, r) = (leaf(&av, [rows, h]), leaf(&rv, [rows, h]));
            let (w, b) = (leaf(&wv, [h]), leaf(&bv, [h]));
            let y = autodiff(a.clone(), r.clone(), w.clone(), b.clone(), eps as f32);
            close("forward", &host(y.clone().inner()), &reference(&av, &rv, &wv, &bv, eps), 1e-4)
                .map_err(TestCaseError::fail)?;
            let g = Tensor::<FlexAd, 2>::from_data(
                TensorData::new(gv.iter().map(|&x| x as f32).collect::<Vec<_>>(), [rows, h]),
                &Default::default(),
            );
            let grads = (y * g).sum().backward();
            let loss = |a: &[f64], r: &[f64], w: &[f64], b: &[f64]| -> f64 {
                reference(a, r, w, b, eps).iter().zip(&gv).map(|(x, y)| x * y).sum()
            };
            let checks = [
                ("da", host(a.grad(&grads).unwrap()), fd_grad(&|x| loss(x, &rv, &wv, &bv), &av)),
                ("dr", host(r.grad(&grads).unwrap()), fd_grad(&|x| loss(&av, x, &wv, &bv), &rv)),
                ("dw", host(w.grad(&grads).unwrap()), fd_grad(&|x| loss(&av, &rv, x, &bv), &wv)),
                ("db", host(b.grad(&grads).unwrap()), fd_grad(&|x| loss(&av, &rv, &wv, x), &bv)),
            ];
            for (name, got, want) in checks {
                close(name, &got, &want, 2e-3).map_err(TestCaseError::fail)?;
            }
        }
    }
}
