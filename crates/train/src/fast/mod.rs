//! The CPU fast path: dense layers (`act(x W + b)`) on multiret-kernels for burn-flex, as one
//! custom autodiff operation with its own backward pass; likewise attention over a packed
//! batch ([`attention`]) and LayerNorm of a residual sum ([`norm`]).
//!
//! burn-flex multiplies matrices with the `gemm` crate, which on stable Rust runs its AVX2
//! kernels even on AVX-512 CPUs, and evaluates GELU and its derivative with scalar `libm`
//! calls. Nearly all of a training step is in the dense layers, so they run here on
//! multiret-kernels instead: the forward GEMM with the bias fused in, GELU vectorised, and the
//! backward pass `dZ = dY ⊙ gelu'(Z)`, `dX = dZ Wᵀ`, `dW = Xᵀ dZ`, `db = Σ_rows dZ` as three
//! kernel calls. In f32 the results equal burn's own ops up to summation order (tested in
//! `tests/encoder.rs` against the generic path); with [`Matmul::Bf16`] the products take bf16
//! operands (f32 accumulation) while parameters, activations and gradients stay f32.
//!
//! The operation applies when the backend is [`Flex`] or [`FlexTrain`](crate::FlexTrain) and
//! the tensors are f32; anything else takes the generic burn path.

use std::any::{Any, TypeId};
use std::borrow::Cow;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::{Autodiff, Flex};
use burn::prelude::*;
use burn::tensor::{activation, Bytes, DType, TensorPrimitive};
use burn_flex::{FlexTensor, Layout};
use multiret_kernels::activation::{gelu, gelu_backward};
use multiret_kernels::gemm::{gemm_bf16, gemm_f32, gemm_f32_bf16, Epilogue};
use multiret_kernels::{bf16, MatMut, MatRef, Par};
use std::sync::Arc;

pub(crate) mod attention;
pub(crate) mod norm;

pub(crate) use attention::Packed;

/// How the fast path multiplies matrices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Matmul {
    /// f32 throughout.
    F32,
    /// Mixed precision: the second operand of every product (the weights in the forward pass
    /// and `dX = dZ Wᵀ`, the output gradient in `dW = Xᵀ dZ`) is rounded to bf16 and the first
    /// as it is packed; products accumulate in f32 (AMX or AVX-512 BF16 where the CPU has it).
    /// Parameters, activations and gradients stay f32.
    Bf16,
}

/// `C = A B` (`C` fresh, `m x n`) in the chosen precision: `b` in f32, or `b16` (the same
/// matrix rounded to bf16, which [`Matmul::Bf16`] requires).
fn matmul(
    prec: Matmul,
    a: MatRef<'_, f32>,
    b: MatRef<'_, f32>,
    b16: Option<MatRef<'_, bf16>>,
    bias: Option<&[f32]>,
) -> Vec<f32> {
    let (m, n) = (a.rows(), b.cols());
    let mut c = vec![0.0f32; m * n];
    let cm = MatMut::row_major(&mut c, m, n).expect("C shape");
    let epi = match bias {
        Some(b) => Epilogue::Bias(b),
        None => Epilogue::None,
    };
    match prec {
        Matmul::F32 => gemm_f32(1.0, a, b, 0.0, cm, epi, Par::all()),
        Matmul::Bf16 => {
            let b16 = b16.expect("bf16 products take B in bf16");
            gemm_f32_bf16(1.0, a, b16, 0.0, cm, epi, Par::all())
        }
    }
    .expect("matmul shapes checked by the caller");
    c
}

/// `v` rounded to bf16 (round to nearest even), in parallel chunks.
fn to_bf16(v: &[f32]) -> Vec<bf16> {
    use half::slice::HalfFloatSliceExt;
    use rayon::prelude::*;
    let mut out = vec![bf16::ZERO; v.len()];
    out.par_chunks_mut(1 << 16)
        .zip(v.par_chunks(1 << 16))
        .for_each(|(o, s)| o.convert_from_f32_slice(s));
    out
}

/// The row-major `[rows, cols]` matrix `v` transposed to `[cols, rows]` and rounded to bf16
/// (round to nearest even): rounded in one pass, then moved in 64 x 64 blocks, output rows in
/// parallel.
fn transpose_to_bf16(v: &[f32], rows: usize, cols: usize) -> Vec<bf16> {
    use rayon::prelude::*;
    const BLOCK: usize = 64;
    let rounded = to_bf16(v);
    let mut out = vec![bf16::ZERO; rows * cols];
    if rows == 0 {
        return out;
    }
    out.par_chunks_mut(BLOCK * rows)
        .enumerate()
        .for_each(|(cb, chunk)| {
            let c0 = cb * BLOCK;
            let nc = chunk.len() / rows;
            for r0 in (0..rows).step_by(BLOCK) {
                let r1 = (r0 + BLOCK).min(rows);
                for c in 0..nc {
                    let dst = &mut chunk[c * rows + r0..c * rows + r1];
                    for (d, r) in dst.iter_mut().zip(r0..r1) {
                        *d = rounded[r * cols + c0 + c];
                    }
                }
            }
        });
    out
}

type FlexAd = Autodiff<Flex>;

/// Whether `B` is burn-flex or burn-flex with autodiff: the backends of the fast path.
pub(crate) fn is_flex<B: Backend>() -> bool {
    let t = TypeId::of::<B>();
    t == TypeId::of::<FlexAd>() || t == TypeId::of::<Flex>()
}

/// Multi-head self-attention over the packed batch `p` ([`attention`]). `B` must be
/// burn-flex, with or without autodiff ([`is_flex`]); the encoder packs its batches only
/// then.
pub(crate) fn packed_attention<B: Backend>(
    q: Tensor<B, 2>,
    k: Tensor<B, 2>,
    v: Tensor<B, 2>,
    p: &Packed,
) -> Tensor<B, 2> {
    let t = TypeId::of::<B>();
    if t == TypeId::of::<FlexAd>() {
        cast(attention::autodiff(cast(q), cast(k), cast(v), p))
    } else if t == TypeId::of::<Flex>() {
        cast(attention::flex(cast(q), cast(k), cast(v), p))
    } else {
        unreachable!("packed batches are made for burn-flex only")
    }
}

/// LayerNorm of `a + r` with gain `w` and bias `b` ([`norm`]): the fused operation where the
/// backend is burn-flex and `kernels` allows it, else composed from burn ops.
pub(crate) fn add_layer_norm<B: Backend>(
    a: Tensor<B, 2>,
    r: Tensor<B, 2>,
    w: Tensor<B, 1>,
    b: Tensor<B, 1>,
    eps: f32,
    kernels: bool,
) -> Tensor<B, 2> {
    if kernels && a.dtype() == DType::F32 {
        let t = TypeId::of::<B>();
        if t == TypeId::of::<FlexAd>() {
            return cast(norm::autodiff(cast(a), cast(r), cast(w), cast(b), eps));
        }
        if t == TypeId::of::<Flex>() {
            return cast(norm::flex(cast(a), cast(r), cast(w), cast(b), eps));
        }
    }
    let x = a + r;
    let (var, mean) = x.clone().var_mean_bias(1);
    let xn = (x - mean) / (var + eps as f64).sqrt();
    xn * w.unsqueeze::<2>() + b.unsqueeze::<2>()
}

/// `act(x w + b)` for `x: [t, in]`, `w: [in, out]`, `b: [out]`; `act` is GELU (erf form) when
/// `gelu`, the identity otherwise. `kernels` allows the multiret-kernels path, in that
/// precision, where the backend is burn-flex. `fused_gelu` says whether the backend's own GELU
/// op is the exact erf form (see [`EncoderMeta`](crate::encoder::EncoderMeta)).
pub(crate) fn dense<B: Backend>(
    x: Tensor<B, 2>,
    w: Tensor<B, 2>,
    b: Tensor<B, 1>,
    gelu: bool,
    kernels: Option<Matmul>,
    fused_gelu: bool,
) -> Tensor<B, 2> {
    if let (Some(prec), DType::F32) = (kernels, x.dtype()) {
        let t = TypeId::of::<B>();
        if t == TypeId::of::<FlexAd>() {
            let y = dense_autodiff(cast(x), cast(w), cast(b), gelu, prec);
            return cast(y);
        }
        if t == TypeId::of::<Flex>() {
            let (x, w, b): (Tensor<Flex, 2>, Tensor<Flex, 2>, Tensor<Flex, 1>) =
                (cast(x), cast(w), cast(b));
            let y = flex_forward(&prim(x), &prim(w), &prim(b), gelu, prec).0;
            return cast(Tensor::<Flex, 2>::from_primitive(TensorPrimitive::Float(y)));
        }
    }
    let z = x.matmul(w) + b.unsqueeze::<2>();
    if !gelu {
        z
    } else if fused_gelu {
        activation::gelu(z)
    } else {
        (z.clone() * (z / std::f64::consts::SQRT_2).erf().add_scalar(1.0)).mul_scalar(0.5)
    }
}

/// Moves a value between two types that the caller has checked are the same.
fn cast<A: 'static, T: 'static>(a: A) -> T {
    match (Box::new(a) as Box<dyn Any>).downcast::<T>() {
        Ok(t) => *t,
        Err(_) => unreachable!("cast between types checked equal by TypeId"),
    }
}

fn prim<const D: usize>(t: Tensor<Flex, D>) -> FlexTensor {
    t.into_primitive().tensor()
}

/// The f32 elements of `t` in row-major order (borrowed when `t` is contiguous).
fn values(t: &FlexTensor) -> Cow<'_, [f32]> {
    match t.as_slice::<f32>() {
        Some(s) => Cow::Borrowed(s),
        None => Cow::Owned(t.to_contiguous().as_slice::<f32>().expect("f32").to_vec()),
    }
}

fn dims2(t: &FlexTensor) -> (usize, usize) {
    let s = t.layout().shape();
    (s[0], s[1])
}

fn tensor_of(data: Vec<f32>, shape: &[usize]) -> FlexTensor {
    FlexTensor::new(
        Bytes::from_elems(data),
        Layout::contiguous(Shape::from(shape.to_vec())),
        DType::F32,
    )
}

/// The forward pass: `(act(z), z, w in bf16)` with `z = x w + b`; `z` is only kept when `gelu`,
/// the bf16 weights only in [`Matmul::Bf16`].
fn flex_forward(
    x: &FlexTensor,
    w: &FlexTensor,
    b: &FlexTensor,
    gelu_act: bool,
    prec: Matmul,
) -> (FlexTensor, Option<FlexTensor>, Option<Arc<Vec<bf16>>>) {
    let (t, inp) = dims2(x);
    let (inp2, out) = dims2(w);
    // The encoder's weights were checked against its configuration when it was built
    // (`check_weights`): a mismatch here is a bug, not bad input.
    assert_eq!(
        inp, inp2,
        "dense: x is [{t}, {inp}] but w is [{inp2}, {out}]"
    );
    assert_eq!(
        b.layout().shape()[0],
        out,
        "dense: bias length differs from w's [{inp2}, {out}]"
    );
    let (xv, wv, bv) = (values(x), values(w), values(b));
    let wm = MatRef::row_major(&wv, inp, out).expect("w shape");
    let w16 = (prec == Matmul::Bf16).then(|| Arc::new(to_bf16(&wv)));
    let w16m = w16
        .as_deref()
        .map(|w| MatRef::row_major(w, inp, out).expect("w shape"));
    let xm = MatRef::row_major(&xv, t, inp).expect("x shape");
    let z = matmul(prec, xm, wm, w16m, Some(&bv));
    if !gelu_act {
        return (tensor_of(z, &[t, out]), None, w16);
    }
    let mut y = z.clone();
    gelu(&mut y);
    (tensor_of(y, &[t, out]), Some(tensor_of(z, &[t, out])), w16)
}

#[derive(Debug)]
struct DenseBackward;

#[derive(Debug, Clone)]
struct DenseState {
    x: FlexTensor,
    w: FlexTensor,
    /// `w` in bf16 (mixed precision only).
    w16: Option<Arc<Vec<bf16>>>,
    prec: Matmul,
    /// The pre-activation, when the activation is GELU.
    z: Option<FlexTensor>,
}

impl Backward<Flex, 3> for DenseBackward {
    type State = DenseState;

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let DenseState { x, w, w16, prec, z } = ops.state;
        let dy = grads.consume::<Flex>(&ops.node);
        let (t, inp) = dims2(&x);
        let (_, out) = dims2(&w);
        let mut dz = values(&dy).into_owned();
        if let Some(z) = &z {
            gelu_backward(&values(z), &mut dz).expect("z and dy have one shape");
        }
        let [px, pw, pb] = ops.parents;
        if let Some(node) = px {
            let wv = values(&w);
            let w16m = w16
                .as_deref()
                .map(|w| MatRef::row_major(w, inp, out).expect("w shape").t());
            let dx = matmul(
                prec,
                MatRef::row_major(&dz, t, out).expect("dz shape"),
                MatRef::row_major(&wv, inp, out).expect("w shape").t(),
                w16m,
                None,
            );
            grads.register::<Flex>(node.id, tensor_of(dx, &[t, inp]));
        }
        if let Some(node) = pw {
            let xv = values(&x);
            let dw = match prec {
                Matmul::F32 => matmul(
                    prec,
                    MatRef::row_major(&xv, t, inp).expect("x shape").t(),
                    MatRef::row_major(&dz, t, out).expect("dz shape"),
                    None,
                    None,
                ),
                // Xᵀ as a row-major bf16 copy: the GEMM packs a transposed view element by
                // element, one cache line per element, which cost more than the products.
                // Rounding first is what packing does, so the result is the same.
                Matmul::Bf16 => {
                    let xt16 = transpose_to_bf16(&xv, t, inp);
                    let dz16 = to_bf16(&dz);
                    let mut dw = vec![0.0f32; inp * out];
                    gemm_bf16(
                        1.0,
                        MatRef::row_major(&xt16, inp, t).expect("xt shape"),
                        MatRef::row_major(&dz16, t, out).expect("dz shape"),
                        0.0,
                        MatMut::row_major(&mut dw, inp, out).expect("dw shape"),
                        Epilogue::None,
                        Par::all(),
                    )
                    .expect("dW shapes");
                    dw
                }
            };
            grads.register::<Flex>(node.id, tensor_of(dw, &[inp, out]));
        }
        if let Some(node) = pb {
            let mut db = vec![0.0f32; out];
            for row in dz.chunks_exact(out.max(1)) {
                for (d, g) in db.iter_mut().zip(row) {
                    *d += g;
                }
            }
            grads.register::<Flex>(node.id, tensor_of(db, &[out]));
        }
    }
}

fn dense_autodiff(
    x: Tensor<FlexAd, 2>,
    w: Tensor<FlexAd, 2>,
    b: Tensor<FlexAd, 1>,
    gelu_act: bool,
    prec: Matmul,
) -> Tensor<FlexAd, 2> {
    let (x, w, b) = (
        x.into_primitive().tensor(),
        w.into_primitive().tensor(),
        b.into_primitive().tensor(),
    );
    let out = match DenseBackward
        .prepare::<NoCheckpointing>([x.node.clone(), w.node.clone(), b.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let (y, z, w16) =
                flex_forward(&x.primitive, &w.primitive, &b.primitive, gelu_act, prec);
            let state = DenseState {
                x: x.primitive,
                w: w.primitive,
                w16,
                prec,
                z,
            };
            prep.finish(state, y)
        }
        OpsKind::UnTracked(prep) => {
            let (y, _, _) = flex_forward(&x.primitive, &w.primitive, &b.primitive, gelu_act, prec);
            prep.finish(y)
        }
    };
    Tensor::from_primitive(TensorPrimitive::Float(out))
}

/// Helpers of the fast path's tests: f64 references and finite differences.
#[cfg(test)]
pub(crate) mod testing {
    use super::FlexAd;
    use burn::prelude::*;

    /// Central finite differences of `f` at `x` (step 1e-6, exact to about 1e-9 for the smooth
    /// functions tested here).
    pub fn fd_grad(f: &dyn Fn(&[f64]) -> f64, x: &[f64]) -> Vec<f64> {
        let h = 1e-6;
        let mut y = x.to_vec();
        (0..x.len())
            .map(|i| {
                y[i] = x[i] + h;
                let up = f(&y);
                y[i] = x[i] - h;
                let down = f(&y);
                y[i] = x[i];
                (up - down) / (2.0 * h)
            })
            .collect()
    }

    /// A tracked leaf of the autodiff backend.
    pub fn leaf<const D: usize>(v: &[f64], shape: [usize; D]) -> Tensor<FlexAd, D> {
        let data: Vec<f32> = v.iter().map(|&x| x as f32).collect();
        Tensor::<FlexAd, D>::from_data(TensorData::new(data, shape), &Default::default())
            .require_grad()
    }

    /// The values of an f32 tensor as f64.
    pub fn host<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f64> {
        t.into_data()
            .into_vec::<f32>()
            .expect("f32 tensor")
            .into_iter()
            .map(f64::from)
            .collect()
    }

    /// Fails unless `got` is within `tol` of `want` relative to `want`'s largest magnitude
    /// (floored at 1).
    pub fn close(what: &str, got: &[f64], want: &[f64], tol: f64) -> Result<(), String> {
        if got.len() != want.len() {
            return Err(format!("{what}: {} values, want {}", got.len(), want.len()));
        }
        let scale = want.iter().fold(1.0f64, |m, v| m.max(v.abs()));
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            let ok = (g - w).abs() <= tol * scale;
            if !ok {
                return Err(format!("{what}[{i}]: {g} against {w} (scale {scale})"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The blocked transpose against the plain one, across block edges.
        #[test]
        fn transpose_to_bf16_is_the_rounded_transpose(
            (rows, cols) in (0usize..70, 1usize..70),
            seed in any::<u32>(),
        ) {
            let v: Vec<f32> = (0..rows * cols)
                .map(|i| ((i as u32).wrapping_mul(2654435761) ^ seed) as f32 / 1e9 - 2.0)
                .collect();
            let got = transpose_to_bf16(&v, rows, cols);
            for r in 0..rows {
                for c in 0..cols {
                    prop_assert_eq!(got[c * rows + r], bf16::from_f32(v[r * cols + c]));
                }
            }
        }
    }
}
