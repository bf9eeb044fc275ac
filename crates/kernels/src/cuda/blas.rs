//! GEMM through cuBLAS on row-major matrices: f32 (true f32 unless TF32 is allowed) and bf16
//! inputs with f32 output and f32 accumulation, plain and strided-batched.
//!
//! Row-major `C = op(A) op(B)` is column-major `C^T = op(B)^T op(A)^T`: cuBLAS gets the operands
//! swapped (`B` first), `n` and `m` swapped, and the same transposition flags and leading
//! dimensions, so nothing is copied.

use core::ffi::c_void;
use std::format;

use cudarc::cublas::result as blas;
use cudarc::cublas::sys::{
    cublasComputeType_t, cublasGemmAlgo_t, cublasOperation_t, cudaDataType_t,
};
use cudarc::driver::{DevicePtr, DevicePtrMut};

use super::{guard, to_i32, CudaError, Gpu};

fn op(trans: bool) -> cublasOperation_t {
    if trans {
        cublasOperation_t::CUBLAS_OP_T
    } else {
        cublasOperation_t::CUBLAS_OP_N
    }
}

/// Elements a row-major `rows x cols` matrix with leading dimension `ld` spans, over `batch`
/// matrices `stride` apart; checks `ld >= max(1, cols)`.
#[allow(clippy::too_many_arguments)]
fn span(
    opn: &'static str,
    what: &str,
    rows: usize,
    cols: usize,
    ld: usize,
    batch: usize,
    stride: usize,
    have: usize,
) -> Result<(), CudaError> {
    if ld < cols.max(1) {
        return Err(CudaError::shape(
            opn,
            format!(
                "leading dimension of {what} is {ld}, needs at least {}",
                cols.max(1)
            ),
        ));
    }
    if rows == 0 || cols == 0 || batch == 0 {
        return Ok(());
    }
    let one = (rows - 1).checked_mul(ld).and_then(|v| v.checked_add(cols));
    let all = one.and_then(|one| {
        (batch - 1)
            .checked_mul(stride)
            .and_then(|v| v.checked_add(one))
    });
    match all {
        Some(need) if need <= have => Ok(()),
        Some(need) => Err(CudaError::shape(
            opn,
            format!("{what} has {have} elements, the {rows}x{cols} matrices (ld {ld}, batch {batch}, stride {stride}) need {need}"),
        )),
        None => Err(CudaError::shape(opn, format!("the extent of {what} overflows usize"))),
    }
}

/// The checked `i32` / `i64` arguments of one cuBLAS call.
struct Dims {
    m: i32,
    n: i32,
    k: i32,
    lda: i32,
    ldb: i32,
    ldc: i32,
    batch: i32,
    stride_a: i64,
    stride_b: i64,
    stride_c: i64,
}

#[allow(clippy::too_many_arguments)]
fn check(
    opn: &'static str,
    trans_a: bool,
    trans_b: bool,
    m: usize,
    n: usize,
    k: usize,
    (a_len, lda, stride_a): (usize, usize, usize),
    (b_len, ldb, stride_b): (usize, usize, usize),
    (c_len, ldc, stride_c): (usize, usize, usize),
    batch: usize,
) -> Result<Dims, CudaError> {
    let (ar, ac) = if trans_a { (k, m) } else { (m, k) };
    let (br, bc) = if trans_b { (n, k) } else { (k, n) };
    span(opn, "A", ar, ac, lda, batch, stride_a, a_len)?;
    span(opn, "B", br, bc, ldb, batch, stride_b, b_len)?;
    span(opn, "C", m, n, ldc, batch, stride_c, c_len)?;
    let s64 = |what: &str, v: usize| {
        i64::try_from(v)
            .map_err(|_| CudaError::shape(opn, format!("{what} = {v} exceeds i64::MAX")))
    };
    Ok(Dims {
        m: to_i32(opn, "m", m)?,
        n: to_i32(opn, "n", n)?,
        k: to_i32(opn, "k", k)?,
        lda: to_i32(opn, "lda", lda)?,
        ldb: to_i32(opn, "ldb", ldb)?,
        ldc: to_i32(opn, "ldc", ldc)?,
        batch: to_i32(opn, "batch", batch)?,
        stride_a: s64("stride_a", stride_a)?,
        stride_b: s64("stride_b", stride_b)?,
        stride_c: s64("stride_c", stride_c)?,
    })
}

impl Gpu {
    /// `C = alpha * op(A) * op(B) + beta * C` on row-major matrices (f32, no TF32 by default):
    /// `op(A)` is `m x k` (`A` stored `m x k`, or `k x m` when `trans_a`), `op(B)` is `k x n`
    /// (`B` stored `k x n`, or `n x k` when `trans_b`), `C` is `m x n`; `lda`, `ldb`, `ldc` are
    /// the row strides of the stored matrices (at least their column counts). When `beta == 0`
    /// `C` is not read (NaN in `C` does not propagate).
    #[allow(clippy::too_many_arguments)]
    pub fn gemm_f32<A: DevicePtr<f32>, B: DevicePtr<f32>, C: DevicePtrMut<f32>>(
        &self,
        trans_a: bool,
        trans_b: bool,
        m: usize,
        n: usize,
        k: usize,
        alpha: f32,
        a: &A,
        lda: usize,
        b: &B,
        ldb: usize,
        beta: f32,
        c: &mut C,
        ldc: usize,
    ) -> Result<(), CudaError> {
        self.gemm_f32_strided_batched(
            trans_a, trans_b, m, n, k, alpha, a, lda, 0, b, ldb, 0, beta, c, ldc, 0, 1,
        )
    }

    /// [`Gpu::gemm_f32`] over `batch` problems: problem `i` uses `A + i * stride_a`,
    /// `B + i * stride_b`, `C + i * stride_c` (element offsets; a stride of 0 shares an
    /// operand). The `C` matrices must not overlap.
    ///
    /// Attention over one sequence with a fused row-major QKV buffer `[len, 3 * hidden]`
    /// (`heads` heads of `d = hidden / heads`): scores `S_h = Q_h K_h^T` for all heads in one
    /// call with `a = qkv` (from column 0), `b = qkv.slice(hidden..)`, `trans_b = true`,
    /// `m = n = len`, `k = d`, `lda = ldb = 3 * hidden`, `stride_a = stride_b = d`, `c` the
    /// `[heads, len, len]` scores (`ldc = len`, `stride_c = len * len`); then `O_h = P_h V_h`
    /// with `a` = the probabilities (`lda = len`, `stride_a = len * len`),
    /// `b = qkv.slice(2 * hidden..)` (`ldb = 3 * hidden`, `stride_b = d`), `c` the `[len,
    /// hidden]` output (`ldc = hidden`, `stride_c = d`). Sequences of a padded batch are one
    /// call each (their offset is `seq * len * 3 * hidden`), or one call over `heads * seqs` when
    /// the caller lays Q, K, V out head-major.
    #[allow(clippy::too_many_arguments)]
    pub fn gemm_f32_strided_batched<A: DevicePtr<f32>, B: DevicePtr<f32>, C: DevicePtrMut<f32>>(
        &self,
        trans_a: bool,
        trans_b: bool,
        m: usize,
        n: usize,
        k: usize,
        alpha: f32,
        a: &A,
        lda: usize,
        stride_a: usize,
        b: &B,
        ldb: usize,
        stride_b: usize,
        beta: f32,
        c: &mut C,
        ldc: usize,
        stride_c: usize,
        batch: usize,
    ) -> Result<(), CudaError> {
        const OP: &str = "gemm_f32";
        let d = check(
            OP,
            trans_a,
            trans_b,
            m,
            n,
            k,
            (a.len(), lda, stride_a),
            (b.len(), ldb, stride_b),
            (c.len(), ldc, stride_c),
            batch,
        )?;
        if m == 0 || n == 0 || batch == 0 {
            return Ok(());
        }
        guard(OP, || {
            self.bind()?;
            let (ap, _ra) = a.device_ptr(&self.stream);
            let (bp, _rb) = b.device_ptr(&self.stream);
            let (cp, _rc) = c.device_ptr_mut(&self.stream);
            let handle = *self.blas.handle();
            // SAFETY: the handle runs on `self.stream`; every matrix lies inside its buffer
            // (checked by `check`), which stays allocated while borrowed; alpha and beta are
            // host values (the handle's default pointer mode).
            let r = unsafe {
                if batch == 1 {
                    blas::sgemm(
                        handle,
                        op(trans_b),
                        op(trans_a),
                        d.n,
                        d.m,
                        d.k,
                        &alpha,
                        bp as *const f32,
                        d.ldb,
                        ap as *const f32,
                        d.lda,
                        &beta,
                        cp as *mut f32,
                        d.ldc,
                    )
                } else {
                    blas::sgemm_strided_batched(
                        handle,
                        op(trans_b),
                        op(trans_a),
                        d.n,
                        d.m,
                        d.k,
                        &alpha,
                        bp as *const f32,
                        d.ldb,
                        d.stride_b,
                        ap as *const f32,
                        d.lda,
                        d.stride_a,
                        &beta,
                        cp as *mut f32,
                        d.ldc,
                        d.stride_c,
                        d.batch,
                    )
                }
            };
            r.map_err(|e| CudaError::cublas("cublasSgemm", e))
        })
    }

    /// `C = alpha * op(A) * op(B) + beta * C` with bf16 `A` and `B` (bit patterns in `u16`
    /// buffers), f32 `C` and f32 accumulation (`cublasGemmEx`, `CUBLAS_COMPUTE_32F`); shapes
    /// and leading dimensions as in [`Gpu::gemm_f32`].
    #[allow(clippy::too_many_arguments)]
    pub fn gemm_bf16<A: DevicePtr<u16>, B: DevicePtr<u16>, C: DevicePtrMut<f32>>(
        &self,
        trans_a: bool,
        trans_b: bool,
        m: usize,
        n: usize,
        k: usize,
        alpha: f32,
        a: &A,
        lda: usize,
        b: &B,
        ldb: usize,
        beta: f32,
        c: &mut C,
        ldc: usize,
    ) -> Result<(), CudaError> {
        self.gemm_bf16_strided_batched(
            trans_a, trans_b, m, n, k, alpha, a, lda, 0, b, ldb, 0, beta, c, ldc, 0, 1,
        )
    }

    /// [`Gpu::gemm_bf16`] over `batch` problems with element strides, as in
    /// [`Gpu::gemm_f32_strided_batched`].
    #[allow(clippy::too_many_arguments)]
    pub fn gemm_bf16_strided_batched<A: DevicePtr<u16>, B: DevicePtr<u16>, C: DevicePtrMut<f32>>(
        &self,
        trans_a: bool,
        trans_b: bool,
        m: usize,
        n: usize,
        k: usize,
        alpha: f32,
        a: &A,
        lda: usize,
        stride_a: usize,
        b: &B,
        ldb: usize,
        stride_b: usize,
        beta: f32,
        c: &mut C,
        ldc: usize,
        stride_c: usize,
        batch: usize,
    ) -> Result<(), CudaError> {
        const OP: &str = "gemm_bf16";
        let d = check(
            OP,
            trans_a,
            trans_b,
            m,
            n,
            k,
            (a.len(), lda, stride_a),
            (b.len(), ldb, stride_b),
            (c.len(), ldc, stride_c),
            batch,
        )?;
        if m == 0 || n == 0 || batch == 0 {
            return Ok(());
        }
        guard(OP, || {
            self.bind()?;
            let (ap, _ra) = a.device_ptr(&self.stream);
            let (bp, _rb) = b.device_ptr(&self.stream);
            let (cp, _rc) = c.device_ptr_mut(&self.stream);
            let handle = *self.blas.handle();
            let alpha_p = &alpha as *const f32 as *const c_void;
            let beta_p = &beta as *const f32 as *const c_void;
            // SAFETY: as in `gemm_f32_strided_batched`; A and B are bf16 (2-byte) buffers, C
            // f32, matching the data types passed; alpha and beta are f32 host values, the
            // scale type of CUBLAS_COMPUTE_32F.
            let r = unsafe {
                if batch == 1 {
                    blas::gemm_ex(
                        handle,
                        op(trans_b),
                        op(trans_a),
                        d.n,
                        d.m,
                        d.k,
                        alpha_p,
                        bp as *const c_void,
                        cudaDataType_t::CUDA_R_16BF,
                        d.ldb,
                        ap as *const c_void,
                        cudaDataType_t::CUDA_R_16BF,
                        d.lda,
                        beta_p,
                        cp as *mut c_void,
                        cudaDataType_t::CUDA_R_32F,
                        d.ldc,
                        cublasComputeType_t::CUBLAS_COMPUTE_32F,
                        cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
                    )
                } else {
                    blas::gemm_strided_batched_ex(
                        handle,
                        op(trans_b),
                        op(trans_a),
                        d.n,
                        d.m,
                        d.k,
                        alpha_p,
                        bp as *const c_void,
                        cudaDataType_t::CUDA_R_16BF,
                        d.ldb,
                        d.stride_b,
                        ap as *const c_void,
                        cudaDataType_t::CUDA_R_16BF,
                        d.lda,
                        d.stride_a,
                        beta_p,
                        cp as *mut c_void,
                        cudaDataType_t::CUDA_R_32F,
                        d.ldc,
                        d.stride_c,
                        d.batch,
                        cublasComputeType_t::CUBLAS_COMPUTE_32F,
                        cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
                    )
                }
            };
            r.map_err(|e| CudaError::cublas("cublasGemmEx", e))
        })
    }
}
