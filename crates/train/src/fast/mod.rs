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
use multiret_kernels::activation::gelu_and_grad;
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

/// `C = epi(A B)` (`C` fresh, `m x n`) in the chosen precision: `b` in f32, or `b16` (the same
/// matrix rounded to bf16, which [`Matmul::Bf16`] requires).
fn matmul(
    prec: Matmul,
    a: MatRef<'_, f32>,
    b: MatRef<'_, f32>,
    b16: Option<MatRef<'_, bf16>>,
    epi: Epilogue<'_>,
) -> Vec<f32> {
    let (m, n) = (a.rows(), b.cols());
    let mut c = zeroed(m * n);
    let cm = MatMut::row_major(&mut c, m, n).expect("C shape");
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

/// Elements per parallel task of the element-wise passes here.
const CHUNK: usize = 1 << 14;

/// `n` zeros, written in parallel chunks: the buffers of a step are large, and the allocator
/// reuses freed ones ([`keep_freed_memory`](crate::memory::keep_freed_memory)), so zeroing
/// them is a `memset` that would otherwise run on one thread while the other waits.
pub(crate) fn zeroed(n: usize) -> Vec<f32> {
    filled(n, 0.0)
}

/// `n` copies of `value`, written in parallel chunks (see [`zeroed`]).
fn filled<T: Copy + Send + Sync>(n: usize, value: T) -> Vec<T> {
    use rayon::prelude::*;
    let mut v: Vec<T> = Vec::with_capacity(n);
    v.spare_capacity_mut()
        .par_chunks_mut(CHUNK)
        .for_each(|c| c.fill(std::mem::MaybeUninit::new(value)));
    // SAFETY: the loop above initialised all `n` elements of the capacity.
    unsafe { v.set_len(n) };
    v
}

/// `a ⊙ b` elementwise, in parallel chunks.
fn mul_elementwise(a: &[f32], b: &[f32]) -> Vec<f32> {
    use rayon::prelude::*;
    debug_assert_eq!(a.len(), b.len());
    a.par_iter()
        .zip(b)
        .with_min_len(CHUNK)
        .map(|(x, y)| x * y)
        .collect()
}

/// The column sums of the row-major `[_, cols]` matrix `m`: partial sums over blocks of rows
/// in parallel, added in block order (deterministic for a given shape).
fn column_sums(m: &[f32], cols: usize) -> Vec<f32> {
    use rayon::prelude::*;
    let cols = cols.max(1);
    let rows_per = (CHUNK / cols).max(1);
    let parts: Vec<Vec<f32>> = m
        .par_chunks(rows_per * cols)
        .map(|blk| {
            let mut s = vec![0.0f32; cols];
            for row in blk.chunks_exact(cols) {
                for (d, g) in s.iter_mut().zip(row) {
                    *d += g;
                }
            }
            s
        })
        .collect();
    let mut sum = vec![0.0f32; cols];
    for p in &parts {
        for (d, g) in sum.iter_mut().zip(p) {
            *d += g;
        }
    }
    sum
}

/// `gelu(z)` in place and `gelu'(z)` returned, in parallel chunks (one evaluation for both:
/// [`gelu_and_grad`]).
fn gelu_and_grad_par(z: &mut [f32]) -> Vec<f32> {
    use rayon::prelude::*;
    let mut d = zeroed(z.len());
    z.par_chunks_mut(CHUNK)
        .zip(d.par_chunks_mut(CHUNK))
        .for_each(|(x, d)| gelu_and_grad(x, d).expect("chunks of one length"));
    d
}

/// `v` rounded to bf16 (round to nearest even), in parallel chunks.
fn to_bf16(v: &[f32]) -> Vec<bf16> {
    use half::slice::HalfFloatSliceExt;
    use rayon::prelude::*;
    let mut out = filled(v.len(), bf16::ZERO);
    out.par_chunks_mut(1 << 16)
        .zip(v.par_chunks(1 << 16))
        .for_each(|(o, s)| o.convert_from_f32_slice(s));
    out
}

/// The row-major `[rows, cols]` matrix `v` transposed to `[cols, rows]` and rounded to bf16
/// (round to nearest even): rounded in one pass, then transposed ([`transpose`]).
fn transpose_to_bf16(v: &[f32], rows: usize, cols: usize) -> Vec<bf16> {
    transpose(&to_bf16(v), rows, cols, bf16::ZERO)
}

/// The row-major `[rows, cols]` matrix `v` transposed to `[cols, rows]`: moved in 64 x 64
/// blocks, output rows in parallel (`zero` fills the buffer before the moves).
pub(crate) fn transpose<T: Copy + Send + Sync>(
    v: &[T],
    rows: usize,
    cols: usize,
    zero: T,
) -> Vec<T> {
    use rayon::prelude::*;
    const BLOCK: usize = 64;
    debug_assert_eq!(v.len(), rows * cols);
    let mut out = filled(rows * cols, zero);
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
                        *d = v[r * cols + c0 + c];
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
            let y = flex_forward(&prim(x), &prim(w), &prim(b), gelu, false, prec).0;
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

/// What [`flex_forward`] returns: `(act(z), gelu'(z), w in bf16)`.
type DenseForward = (FlexTensor, Option<Vec<f32>>, Option<Arc<Vec<bf16>>>);

/// The forward pass: `(act(z), gelu'(z), w in bf16)` with `z = x w + b`. The derivative is
/// only computed when `gelu` and `keep_grad` (for the backward pass), the bf16 weights only in
/// [`Matmul::Bf16`].
fn flex_forward(
    x: &FlexTensor,
    w: &FlexTensor,
    b: &FlexTensor,
    gelu_act: bool,
    keep_grad: bool,
    prec: Matmul,
) -> DenseForward {
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
    // Without a backward pass, GELU runs in the GEMM's epilogue, on tiles still in cache.
    let epi = if gelu_act && !keep_grad {
        Epilogue::BiasGelu(&bv)
    } else {
        Epilogue::Bias(&bv)
    };
    let mut z = matmul(prec, xm, wm, w16m, epi);
    let dgelu = (gelu_act && keep_grad).then(|| gelu_and_grad_par(&mut z));
    (tensor_of(z, &[t, out]), dgelu, w16)
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
    /// `gelu'(z)` of the pre-activation `z`, when the activation is GELU.
    dgelu: Option<Arc<Vec<f32>>>,
}

impl Backward<Flex, 3> for DenseBackward {
    type State = DenseState;

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let DenseState {
            x,
            w,
            w16,
            prec,
            dgelu,
        } = ops.state;
        let dy = grads.consume::<Flex>(&ops.node);
        let (t, inp) = dims2(&x);
        let (_, out) = dims2(&w);
        let dz = match &dgelu {
            Some(d) => mul_elementwise(&values(&dy), d),
            None => values(&dy).into_owned(),
        };
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
                Epilogue::None,
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
                    Epilogue::None,
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
            grads.register::<Flex>(node.id, tensor_of(column_sums(&dz, out), &[out]));
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
            let (y, dgelu, w16) = flex_forward(
                &x.primitive,
                &w.primitive,
                &b.primitive,
                gelu_act,
                true,
                prec,
            );
            let state = DenseState {
                x: x.primitive,
                w: w.primitive,
                w16,
                prec,
                dgelu: dgelu.map(Arc::new),
            };
            prep.finish(state, y)
        }
        OpsKind::UnTracked(prep) => {
            let (y, _, _) = flex_forward(
                &x.primitive,
                &w.primitive,
                &b.primitive,
                gelu_act,
                false,
                prec,
            );
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
    use crate::fast::testing::{close, host, leaf};
    use multiret_kernels::reference;
    use proptest::prelude::*;

    /// The f64 reference of the dense layer: `(act(z), z)` with `z = x w + b`.
    fn dense_reference(
        x: &[f64],
        w: &[f64],
        b: &[f64],
        (t, inp, out): (usize, usize, usize),
        gelu: bool,
    ) -> (Vec<f64>, Vec<f64>) {
        let mut z = vec![0.0; t * out];
        for r in 0..t {
            for j in 0..out {
                z[r * out + j] = b[j]
                    + (0..inp)
                        .map(|i| x[r * inp + i] * w[i * out + j])
                        .sum::<f64>();
            }
        }
        let y = z
            .iter()
            .map(|&v| if gelu { reference::gelu(v) } else { v })
            .collect();
        (y, z)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

        /// The dense autodiff op (f32 products) and its gradients for `L = Σ G ⊙ y` against
        /// the f64 reference: `dZ = G ⊙ act'(z)`, `dX = dZ Wᵀ`, `dW = Xᵀ dZ`, `db = Σ_rows dZ`.
        /// The GELU derivative itself is checked against finite differences in
        /// multiret-kernels. The large row counts span several parallel chunks of the
        /// element-wise passes and of the bias gradient's partial sums.
        #[test]
        fn dense_matches_the_f64_reference_forward_and_backward(
            t in prop_oneof![1usize..5, 1400usize..1700],
            inp in 1usize..6,
            out in prop_oneof![Just(12usize), 1usize..13],
            gelu_act in any::<bool>(),
            seed in prop::collection::vec(-2.0f64..2.0, 61),
        ) {
            let gen = |off: usize, len: usize| -> Vec<f64> {
                (0..len).map(|i| seed[(off + i * 7) % seed.len()] + (i % 5) as f64 * 0.1).collect()
            };
            let (xv, wv, bv, gv) = (gen(0, t * inp), gen(5, inp * out), gen(17, out), gen(23, t * out));
            let (x, w, b) = (leaf(&xv, [t, inp]), leaf(&wv, [inp, out]), leaf(&bv, [out]));
            let y = dense_autodiff(x.clone(), w.clone(), b.clone(), gelu_act, Matmul::F32);
            let (want_y, z) = dense_reference(&xv, &wv, &bv, (t, inp, out), gelu_act);
            close("forward", &host(y.clone().inner()), &want_y, 1e-5).map_err(TestCaseError::fail)?;
            let g = Tensor::<FlexAd, 2>::from_data(
                TensorData::new(gv.iter().map(|&v| v as f32).collect::<Vec<_>>(), [t, out]),
                &Default::default(),
            );
            let grads = (y * g).sum().backward();
            let dz: Vec<f64> = z
                .iter()
                .zip(&gv)
                .map(|(&z, &g)| if gelu_act { g * reference::gelu_grad(z) } else { g })
                .collect();
            let mut dx = vec![0.0; t * inp];
            let mut dw = vec![0.0; inp * out];
            let mut db = vec![0.0; out];
            for r in 0..t {
                for j in 0..out {
                    let d = dz[r * out + j];
                    db[j] += d;
                    for i in 0..inp {
                        dx[r * inp + i] += d * wv[i * out + j];
                        dw[i * out + j] += xv[r * inp + i] * d;
                    }
                }
            }
            for (name, got, want) in [
                ("dx", host(x.grad(&grads).unwrap()), dx),
                ("dw", host(w.grad(&grads).unwrap()), dw),
                ("db", host(b.grad(&grads).unwrap()), db),
            ] {
                close(name, &got, &want, 1e-5).map_err(TestCaseError::fail)?;
            }
        }

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
