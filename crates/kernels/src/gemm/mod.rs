//! General matrix multiplication: `C = epilogue(alpha * A * B + beta * C)`.
//!
//! Operands are strided views ([`MatRef`], [`MatMut`]); a transposed operand is just a view with
//! swapped strides ([`MatRef::t`]), so `X * W^T` (linear layers), `Q * K^T` and `P * V`
//! (attention) need no copies. The driver packs panels of `B` (shared by all threads); `A` is
//! read where it lies when it is row-major in the kernel's element type, and packed in strips
//! (per thread) otherwise. A register-blocked microkernel per ISA:
//!
//! | ISA | f32 tile (MR x NR) | bf16 |
//! |---|---|---|
//! | AMX | (AVX-512F) | `tdpbf16ps`, 32 x 32 (A copied into 32-padded rows unless aligned) |
//! | AVX-512F | 12 x 32 (1-11 x 32 at the last strip) | widened to f32 |
//! | AVX-512 BF16 | 12 x 32 | `vdpbf16ps`, 12 x 32 |
//! | AVX2 + FMA | 6 x 16 | widened to f32 |
//! | NEON | 8 x 8 | widened to f32 |
//! | scalar | 4 x 4 | widened to f32 |
//!
//! As in BLAS, when `beta == 0` the old contents of `C` are not read (a NaN there does not
//! propagate). Accumulation is in f32 for every path, bf16 included.

mod driver;
mod kernels;

use crate::error::check;
use crate::{bf16, Isa, KernelError, MatMut, MatRef, Par};

pub(crate) use driver::Epi;

/// What is applied to every element of `C` after the product is accumulated, while the tile
/// is still in cache.
#[derive(Debug, Clone, Copy, Default)]
pub enum Epilogue<'a> {
    /// Nothing.
    #[default]
    None,
    /// Add `bias[j]` to column `j` (length = columns of `C`).
    Bias(&'a [f32]),
    /// GELU (erf form) of every element.
    Gelu,
    /// Add the bias, then GELU.
    BiasGelu(&'a [f32]),
}

impl<'a> Epilogue<'a> {
    fn bias(&self) -> Option<&'a [f32]> {
        match *self {
            Epilogue::Bias(b) | Epilogue::BiasGelu(b) => Some(b),
            _ => None,
        }
    }
    fn gelu(&self) -> bool {
        matches!(self, Epilogue::Gelu | Epilogue::BiasGelu(_))
    }
}

fn check_shapes<TA, TB>(
    op: &'static str,
    a: &MatRef<'_, TA>,
    b: &MatRef<'_, TB>,
    c: &MatMut<'_, f32>,
    epi: &Epilogue<'_>,
) -> Result<(), KernelError> {
    check(op, "rows of B (= columns of A)", a.cols(), b.rows())?;
    check(op, "rows of C (= rows of A)", a.rows(), c.rows())?;
    check(op, "columns of C (= columns of B)", b.cols(), c.cols())?;
    if let Some(bias) = epi.bias() {
        check(op, "bias length (= columns of C)", c.cols(), bias.len())?;
    }
    Ok(())
}

fn epi<'a>(e: &Epilogue<'a>) -> Epi<'a> {
    Epi {
        bias: e.bias(),
        gelu: e.gelu(),
    }
}

/// f32 GEMM on the best ISA of this CPU: `C = epilogue(alpha * A * B + beta * C)`.
pub fn gemm_f32(
    alpha: f32,
    a: MatRef<'_, f32>,
    b: MatRef<'_, f32>,
    beta: f32,
    c: MatMut<'_, f32>,
    epilogue: Epilogue<'_>,
    par: Par,
) -> Result<(), KernelError> {
    gemm_f32_with(crate::detected_isa(), alpha, a, b, beta, c, epilogue, par)
}

/// [`gemm_f32`] on a chosen ISA path; an ISA this CPU lacks falls back to the scalar path.
#[allow(clippy::too_many_arguments)]
pub fn gemm_f32_with(
    isa: Isa,
    alpha: f32,
    a: MatRef<'_, f32>,
    b: MatRef<'_, f32>,
    beta: f32,
    c: MatMut<'_, f32>,
    epilogue: Epilogue<'_>,
    par: Par,
) -> Result<(), KernelError> {
    check_shapes("gemm_f32", &a, &b, &c, &epilogue)?;
    kernels::run_f32(isa, alpha, a, b, beta, c, epi(&epilogue), par);
    Ok(())
}

/// bf16 GEMM with f32 accumulation: both operands bf16, `C` f32. Uses `vdpbf16ps` where the CPU
/// has AVX-512 BF16, otherwise widens the operands to f32 while packing.
pub fn gemm_bf16(
    alpha: f32,
    a: MatRef<'_, bf16>,
    b: MatRef<'_, bf16>,
    beta: f32,
    c: MatMut<'_, f32>,
    epilogue: Epilogue<'_>,
    par: Par,
) -> Result<(), KernelError> {
    gemm_bf16_with(crate::detected_isa(), alpha, a, b, beta, c, epilogue, par)
}

/// [`gemm_bf16`] on a chosen ISA path.
#[allow(clippy::too_many_arguments)]
pub fn gemm_bf16_with(
    isa: Isa,
    alpha: f32,
    a: MatRef<'_, bf16>,
    b: MatRef<'_, bf16>,
    beta: f32,
    c: MatMut<'_, f32>,
    epilogue: Epilogue<'_>,
    par: Par,
) -> Result<(), KernelError> {
    check_shapes("gemm_bf16", &a, &b, &c, &epilogue)?;
    kernels::run_bf16(isa, alpha, a, b, beta, c, epi(&epilogue), par);
    Ok(())
}

/// Mixed GEMM: f32 `A` (activations) times bf16 `B` (weights), f32 `C`. `A` is rounded to bf16
/// (round to nearest even) while it is packed, so the result equals
/// [`gemm_bf16`] on `A` rounded to bf16.
pub fn gemm_f32_bf16(
    alpha: f32,
    a: MatRef<'_, f32>,
    b: MatRef<'_, bf16>,
    beta: f32,
    c: MatMut<'_, f32>,
    epilogue: Epilogue<'_>,
    par: Par,
) -> Result<(), KernelError> {
    gemm_f32_bf16_with(crate::detected_isa(), alpha, a, b, beta, c, epilogue, par)
}

/// [`gemm_f32_bf16`] on a chosen ISA path.
#[allow(clippy::too_many_arguments)]
pub fn gemm_f32_bf16_with(
    isa: Isa,
    alpha: f32,
    a: MatRef<'_, f32>,
    b: MatRef<'_, bf16>,
    beta: f32,
    c: MatMut<'_, f32>,
    epilogue: Epilogue<'_>,
    par: Par,
) -> Result<(), KernelError> {
    check_shapes("gemm_f32_bf16", &a, &b, &c, &epilogue)?;
    kernels::run_bf16(isa, alpha, a, b, beta, c, epi(&epilogue), par);
    Ok(())
}
