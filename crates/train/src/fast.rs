//! The CPU fast path: dense layers (`act(x W + b)`) on multiret-kernels for burn-flex, as one
//! custom autodiff operation with its own backward pass.
//!
//! burn-flex multiplies matrices with the `gemm` crate, which on stable Rust runs its AVX2
//! kernels even on AVX-512 CPUs, and evaluates GELU and its derivative with scalar `libm`
//! calls. Nearly all of a training step is in the dense layers, so they run here on
//! multiret-kernels instead: the forward GEMM with the bias fused in, GELU vectorised, and the
//! backward pass `dZ = dY ⊙ gelu'(Z)`, `dX = dZ Wᵀ`, `dW = Xᵀ dZ`, `db = Σ_rows dZ` as three
//! kernel calls. Everything stays f32; results equal burn's own ops up to summation order
//! (tested in `tests/fast.rs` against the generic path).
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
use multiret_kernels::gemm::{gemm_f32, Epilogue};
use multiret_kernels::{MatMut, MatRef, Par};

type FlexAd = Autodiff<Flex>;

/// `act(x w + b)` for `x: [t, in]`, `w: [in, out]`, `b: [out]`; `act` is GELU (erf form) when
/// `gelu`, the identity otherwise. `kernels` allows the multiret-kernels path where the backend
/// is burn-flex. `fused_gelu` says whether the backend's own GELU op is the exact erf form (see
/// [`EncoderMeta`](crate::encoder::EncoderMeta)).
pub(crate) fn dense<B: Backend>(
    x: Tensor<B, 2>,
    w: Tensor<B, 2>,
    b: Tensor<B, 1>,
    gelu: bool,
    kernels: bool,
    fused_gelu: bool,
) -> Tensor<B, 2> {
    if kernels && x.dtype() == burn::tensor::DType::F32 {
        let t = TypeId::of::<B>();
        if t == TypeId::of::<FlexAd>() {
            let y = dense_autodiff(cast(x), cast(w), cast(b), gelu);
            return cast(y);
        }
        if t == TypeId::of::<Flex>() {
            let (x, w, b): (Tensor<Flex, 2>, Tensor<Flex, 2>, Tensor<Flex, 1>) =
                (cast(x), cast(w), cast(b));
            let y = flex_forward(&prim(x), &prim(w), &prim(b), gelu).0;
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

/// The forward pass: `(act(z), z)` with `z = x w + b`; `z` is only kept when `gelu`.
fn flex_forward(
    x: &FlexTensor,
    w: &FlexTensor,
    b: &FlexTensor,
    gelu_act: bool,
) -> (FlexTensor, Option<FlexTensor>) {
    let (t, inp) = dims2(x);
    let (inp2, out) = dims2(w);
    assert_eq!(inp, inp2, "dense: x is [{t}, {inp}] but w is [{inp2}, {out}]");
    let (xv, wv, bv) = (values(x), values(w), values(b));
    let mut z = vec![0.0f32; t * out];
    gemm_f32(
        1.0,
        MatRef::row_major(&xv, t, inp).expect("x shape"),
        MatRef::row_major(&wv, inp, out).expect("w shape"),
        0.0,
        MatMut::row_major(&mut z, t, out).expect("z shape"),
        Epilogue::Bias(&bv),
        Par::all(),
    )
    .expect("dense shapes checked");
    if !gelu_act {
        return (tensor_of(z, &[t, out]), None);
    }
    let mut y = z.clone();
    gelu(&mut y);
    (tensor_of(y, &[t, out]), Some(tensor_of(z, &[t, out])))
}

#[derive(Debug)]
struct DenseBackward;

#[derive(Debug, Clone)]
struct DenseState {
    x: FlexTensor,
    w: FlexTensor,
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
        let DenseState { x, w, z } = ops.state;
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
            let mut dx = vec![0.0f32; t * inp];
            gemm_f32(
                1.0,
                MatRef::row_major(&dz, t, out).expect("dz shape"),
                MatRef::row_major(&wv, inp, out).expect("w shape").t(),
                0.0,
                MatMut::row_major(&mut dx, t, inp).expect("dx shape"),
                Epilogue::None,
                Par::all(),
            )
            .expect("dx shapes");
            grads.register::<Flex>(node.id, tensor_of(dx, &[t, inp]));
        }
        if let Some(node) = pw {
            let xv = values(&x);
            let mut dw = vec![0.0f32; inp * out];
            gemm_f32(
                1.0,
                MatRef::row_major(&xv, t, inp).expect("x shape").t(),
                MatRef::row_major(&dz, t, out).expect("dz shape"),
                0.0,
                MatMut::row_major(&mut dw, inp, out).expect("dw shape"),
                Epilogue::None,
                Par::all(),
            )
            .expect("dw shapes");
            grads.register::<Flex>(node.id, tensor_of(dw, &[inp, out]));
        }
        if let Some(node) = pb {
            let mut db = vec![0.0f32; out];
            for row in dz.chunks_exact(out) {
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
            let (y, z) = flex_forward(&x.primitive, &w.primitive, &b.primitive, gelu_act);
            let state = DenseState {
                x: x.primitive,
                w: w.primitive,
                z,
            };
            prep.finish(state, y)
        }
        OpsKind::UnTracked(prep) => {
            let (y, _) = flex_forward(&x.primitive, &w.primitive, &b.primitive, gelu_act);
            prep.finish(y)
        }
    };
    Tensor::from_primitive(TensorPrimitive::Float(out))
}
