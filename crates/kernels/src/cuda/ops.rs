//! The row-wise and element-wise kernels: softmax, LayerNorm, bias + GELU, L2 normalisation,
//! f32 <-> bf16.

use std::format;

use cudarc::driver::{CudaView, DevicePtr, DevicePtrMut, PushKernelArg};

use super::{
    check_len, elementwise_launch, guard, mul, row_launch, to_i32, CudaError, Gpu, MAX_COLS,
};

/// The additive mask of [`Gpu::softmax_rows`]: `values` holds mask rows of `cols` entries, and
/// row `r` of `x` uses mask row `r / rows_per_mask_row`.
///
/// - one row broadcast over all of `x` (the CPU kernel's convention): `rows_per_mask_row = rows`
///   (or any larger value);
/// - attention scores laid out `[sequence][head][query][key]` with one key mask per sequence:
///   `rows_per_mask_row = heads * queries`, `values` = `[sequences][keys]`;
/// - one mask row per row of `x`: `rows_per_mask_row = 1`.
///
/// Use `-inf` (or a large negative value) to mask.
#[derive(Debug)]
pub struct SoftmaxMask<'a> {
    /// The mask rows, row-major, `cols` per row (e.g. `slice.as_view()`).
    pub values: CudaView<'a, f32>,
    /// How many consecutive rows of `x` share one mask row (at least 1).
    pub rows_per_mask_row: usize,
}

fn check_rows(
    op: &'static str,
    len: usize,
    rows: usize,
    cols: usize,
) -> Result<(i32, i32), CudaError> {
    if cols > MAX_COLS {
        return Err(CudaError::shape(
            op,
            format!("cols = {cols} exceeds {MAX_COLS}"),
        ));
    }
    check_len(op, "x", len, mul(op, rows, cols)?)?;
    Ok((to_i32(op, "rows", rows)?, to_i32(op, "cols", cols)?))
}

impl Gpu {
    /// In-place row-wise softmax of `scale * x + mask` over the first `rows x cols` elements
    /// of `x` (row-major), numerically stable, with the conventions of
    /// [`crate::softmax::softmax_rows`]: a row whose values are all `-inf` gives zeros (NaN
    /// entries stay NaN); any NaN or `+inf` otherwise makes its row NaN.
    pub fn softmax_rows<X: DevicePtrMut<f32>>(
        &self,
        x: &mut X,
        rows: usize,
        cols: usize,
        scale: f32,
        mask: Option<SoftmaxMask<'_>>,
    ) -> Result<(), CudaError> {
        const OP: &str = "softmax_rows";
        let (rows_i, cols_i) = check_rows(OP, x.len(), rows, cols)?;
        let group = match &mask {
            Some(m) => {
                if m.rows_per_mask_row == 0 {
                    return Err(CudaError::shape(OP, "rows_per_mask_row is 0".into()));
                }
                let group = m.rows_per_mask_row.min(rows.max(1));
                let mask_rows = rows.div_ceil(group);
                check_len(OP, "mask", m.values.len(), mul(OP, mask_rows, cols)?)?;
                to_i32(OP, "rows_per_mask_row", group)?
            }
            None => 1,
        };
        if rows == 0 || cols == 0 {
            return Ok(());
        }
        guard(OP, || {
            self.bind()?;
            let (xp, _rx) = x.device_ptr_mut(&self.stream);
            let (mp, _rm) = match &mask {
                Some(m) => {
                    let (p, r) = m.values.device_ptr(&self.stream);
                    (p, Some(r))
                }
                None => (0u64, None),
            };
            let mut b = self.stream.launch_builder(&self.kernels.softmax_rows);
            b.arg(&xp)
                .arg(&rows_i)
                .arg(&cols_i)
                .arg(&scale)
                .arg(&mp)
                .arg(&group);
            // SAFETY: the arguments match `mr_softmax_rows(float*, int, int, float, const
            // float*, int)`; `x` holds rows x cols floats and the mask (or null) covers
            // ceil(rows / group) rows of cols (checked above); the launch shape is a row launch.
            unsafe { b.launch(row_launch(rows, cols, 0)) }
                .map_err(|e| CudaError::driver("launching mr_softmax_rows", e))?;
            Ok(())
        })
    }

    /// In place `x = LayerNorm(x + residual)` over the first `rows x cols` elements (rows of
    /// `cols`; `residual` optional, same shape), with `gamma` and `beta` of `cols` entries:
    /// the semantics of [`crate::norm::layer_norm_rows_with`].
    #[allow(clippy::too_many_arguments)]
    pub fn layer_norm_rows<X: DevicePtrMut<f32>, G: DevicePtr<f32>, B: DevicePtr<f32>>(
        &self,
        x: &mut X,
        residual: Option<&CudaView<'_, f32>>,
        gamma: &G,
        beta: &B,
        rows: usize,
        cols: usize,
        eps: f32,
    ) -> Result<(), CudaError> {
        const OP: &str = "layer_norm_rows";
        let (rows_i, cols_i) = check_rows(OP, x.len(), rows, cols)?;
        if let Some(r) = residual {
            check_len(OP, "residual", r.len(), rows * cols)?;
        }
        check_len(OP, "gamma", gamma.len(), cols)?;
        check_len(OP, "beta", beta.len(), cols)?;
        if rows == 0 || cols == 0 {
            return Ok(());
        }
        guard(OP, || {
            self.bind()?;
            let (xp, _rx) = x.device_ptr_mut(&self.stream);
            let (rp, _rr) = match residual {
                Some(r) => {
                    let (p, rec) = r.device_ptr(&self.stream);
                    (p, Some(rec))
                }
                None => (0u64, None),
            };
            let (gp, _rg) = gamma.device_ptr(&self.stream);
            let (bp, _rb) = beta.device_ptr(&self.stream);
            let mut b = self.stream.launch_builder(&self.kernels.layer_norm_rows);
            b.arg(&xp)
                .arg(&rp)
                .arg(&gp)
                .arg(&bp)
                .arg(&rows_i)
                .arg(&cols_i)
                .arg(&eps);
            // SAFETY: the arguments match `mr_layer_norm_rows(float*, const float*, const
            // float*, const float*, int, int, float)`; every buffer covers what the kernel
            // reads or writes (checked above); the launch shape is a row launch.
            unsafe { b.launch(row_launch(rows, cols, 0)) }
                .map_err(|e| CudaError::driver("launching mr_layer_norm_rows", e))?;
            Ok(())
        })
    }

    /// In place `x[r][c] = gelu?(x[r][c] + bias[c])` over the first `rows x cols` elements:
    /// `bias` (optional) of `cols` entries broadcast over rows, then GELU (erf form, evaluated
    /// in f64 like [`crate::reference::gelu`]) when `gelu`.
    pub fn bias_gelu<X: DevicePtrMut<f32>>(
        &self,
        x: &mut X,
        bias: Option<&CudaView<'_, f32>>,
        rows: usize,
        cols: usize,
        gelu: bool,
    ) -> Result<(), CudaError> {
        const OP: &str = "bias_gelu";
        let n = mul(OP, rows, cols)?;
        check_len(OP, "x", x.len(), n)?;
        let cols_i = to_i32(OP, "cols", cols)?;
        if let Some(b) = bias {
            check_len(OP, "bias", b.len(), cols)?;
        }
        if n == 0 || (bias.is_none() && !gelu) {
            return Ok(());
        }
        let n_i = n as i64;
        let gelu_i = i32::from(gelu);
        guard(OP, || {
            self.bind()?;
            let (xp, _rx) = x.device_ptr_mut(&self.stream);
            let (bp, _rb) = match bias {
                Some(b) => {
                    let (p, rec) = b.device_ptr(&self.stream);
                    (p, Some(rec))
                }
                None => (0u64, None),
            };
            let mut b = self.stream.launch_builder(&self.kernels.bias_gelu);
            b.arg(&xp).arg(&bp).arg(&n_i).arg(&cols_i).arg(&gelu_i);
            // SAFETY: the arguments match `mr_bias_gelu(float*, const float*, long long, int,
            // int)`; `x` holds n floats and the bias (or null) cols (checked above).
            unsafe { b.launch(elementwise_launch(n)) }
                .map_err(|e| CudaError::driver("launching mr_bias_gelu", e))?;
            Ok(())
        })
    }

    /// L2-normalises each of the first `rows` rows of `cols` elements of `x` in place; a zero
    /// row stays zero (the semantics of [`crate::norm::l2_normalize_rows`]).
    pub fn l2_normalize_rows<X: DevicePtrMut<f32>>(
        &self,
        x: &mut X,
        rows: usize,
        cols: usize,
    ) -> Result<(), CudaError> {
        const OP: &str = "l2_normalize_rows";
        let (rows_i, cols_i) = check_rows(OP, x.len(), rows, cols)?;
        if rows == 0 || cols == 0 {
            return Ok(());
        }
        guard(OP, || {
            self.bind()?;
            let (xp, _rx) = x.device_ptr_mut(&self.stream);
            let mut b = self.stream.launch_builder(&self.kernels.l2_normalize_rows);
            b.arg(&xp).arg(&rows_i).arg(&cols_i);
            // SAFETY: the arguments match `mr_l2_normalize_rows(float*, int, int)`; `x` holds
            // rows x cols floats (checked above); the launch shape is a row launch.
            unsafe { b.launch(row_launch(rows, cols, 0)) }
                .map_err(|e| CudaError::driver("launching mr_l2_normalize_rows", e))?;
            Ok(())
        })
    }

    /// Converts the first `n` elements of `src` to bf16 (round to nearest even, NaN kept; the
    /// bits of `half::bf16::from_f32`) into the start of `dst`.
    pub fn f32_to_bf16<S: DevicePtr<f32>, D: DevicePtrMut<u16>>(
        &self,
        src: &S,
        dst: &mut D,
        n: usize,
    ) -> Result<(), CudaError> {
        const OP: &str = "f32_to_bf16";
        check_len(OP, "source", src.len(), n)?;
        check_len(OP, "destination", dst.len(), n)?;
        if n == 0 {
            return Ok(());
        }
        let n_i = n as i64;
        guard(OP, || {
            self.bind()?;
            let (sp, _rs) = src.device_ptr(&self.stream);
            let (dp, _rd) = dst.device_ptr_mut(&self.stream);
            let mut b = self.stream.launch_builder(&self.kernels.f32_to_bf16);
            b.arg(&sp).arg(&dp).arg(&n_i);
            // SAFETY: the arguments match `mr_f32_to_bf16(const float*, unsigned short*, long
            // long)`; both buffers hold at least n elements (checked above).
            unsafe { b.launch(elementwise_launch(n)) }
                .map_err(|e| CudaError::driver("launching mr_f32_to_bf16", e))?;
            Ok(())
        })
    }

    /// Converts the first `n` bf16 values (bit patterns) of `src` to f32 into the start of
    /// `dst` (exact).
    pub fn bf16_to_f32<S: DevicePtr<u16>, D: DevicePtrMut<f32>>(
        &self,
        src: &S,
        dst: &mut D,
        n: usize,
    ) -> Result<(), CudaError> {
        const OP: &str = "bf16_to_f32";
        check_len(OP, "source", src.len(), n)?;
        check_len(OP, "destination", dst.len(), n)?;
        if n == 0 {
            return Ok(());
        }
        let n_i = n as i64;
        guard(OP, || {
            self.bind()?;
            let (sp, _rs) = src.device_ptr(&self.stream);
            let (dp, _rd) = dst.device_ptr_mut(&self.stream);
            let mut b = self.stream.launch_builder(&self.kernels.bf16_to_f32);
            b.arg(&sp).arg(&dp).arg(&n_i);
            // SAFETY: the arguments match `mr_bf16_to_f32(const unsigned short*, float*, long
            // long)`; both buffers hold at least n elements (checked above).
            unsafe { b.launch(elementwise_launch(n)) }
                .map_err(|e| CudaError::driver("launching mr_bf16_to_f32", e))?;
            Ok(())
        })
    }
}
