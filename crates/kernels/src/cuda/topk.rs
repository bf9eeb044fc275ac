//! Per-row top-k on the GPU and cosine top-k (normalise, score with cuBLAS, select).

use std::format;
use std::vec;
use std::vec::Vec;

use cudarc::driver::{CudaSlice, DevicePtr, PushKernelArg};

use super::{check_len, guard, mul, row_launch, to_i32, CudaError, Gpu, MAX_COLS};
use crate::cosine::{top_k, Hit};

/// Largest `k` selected on the GPU (its k keys and indices sit in shared memory: 8 bytes
/// each); a larger `k` copies the scores back and selects on the host with
/// [`crate::cosine::top_k`].
pub const MAX_GPU_K: usize = 4096;

/// Score budget of one block of queries in [`Gpu::cosine_top_k`] (floats: 256 MiB).
const SCORE_BLOCK_FLOATS: usize = 64 << 20;

impl Gpu {
    /// The `k` best entries of each of the first `rows` rows of `cols` scores (row-major), best
    /// first: higher score first, equal scores by lower index, NaN last — exactly the order of
    /// [`crate::cosine::top_k`] (and `-0.0 == 0.0`). Rows shorter than `k` give all their
    /// entries. Selection runs on the GPU for `min(k, cols) <=` [`MAX_GPU_K`], on the host
    /// otherwise.
    pub fn top_k_rows<S: DevicePtr<f32>>(
        &self,
        scores: &S,
        rows: usize,
        cols: usize,
        k: usize,
    ) -> Result<Vec<Vec<Hit>>, CudaError> {
        const OP: &str = "top_k_rows";
        if cols > MAX_COLS {
            return Err(CudaError::shape(
                OP,
                format!("cols = {cols} exceeds {MAX_COLS}"),
            ));
        }
        let n = mul(OP, rows, cols)?;
        check_len(OP, "scores", scores.len(), n)?;
        let ke = k.min(cols);
        if rows == 0 {
            return Ok(Vec::new());
        }
        if ke == 0 {
            return Ok(vec![Vec::new(); rows]);
        }
        if ke > MAX_GPU_K {
            let host = self.download_prefix(scores, n)?;
            return Ok(host.chunks_exact(cols).map(|r| top_k(r, ke)).collect());
        }
        let rows_i = to_i32(OP, "rows", rows)?;
        let cols_i = to_i32(OP, "cols", cols)?;
        let k_i = ke as i32;
        let out_n = mul(OP, rows, ke)?;
        let mut idx: CudaSlice<i32> = self.alloc_zeros(out_n)?;
        let mut val: CudaSlice<f32> = self.alloc_zeros(out_n)?;
        guard(OP, || {
            self.bind()?;
            let (sp, _rs) = scores.device_ptr(&self.stream);
            let mut b = self.stream.launch_builder(&self.kernels.top_k_rows);
            b.arg(&sp)
                .arg(&rows_i)
                .arg(&cols_i)
                .arg(&k_i)
                .arg(&mut idx)
                .arg(&mut val);
            // SAFETY: the arguments match `mr_top_k_rows(const float*, int, int, int, int*,
            // float*)`; `scores` holds rows x cols floats, the outputs rows x k (checked and
            // allocated above), 1 <= k <= cols; the dynamic shared memory is the k * 8 bytes
            // the kernel uses (at most 32 KiB, under the 48 KiB default); row launch shape.
            unsafe { b.launch(row_launch(rows, cols, (ke * 8) as u32)) }
                .map_err(|e| CudaError::driver("launching mr_top_k_rows", e))?;
            Ok(())
        })?;
        let idx = self.download(&idx)?;
        let val = self.download(&val)?;
        Ok(idx
            .chunks_exact(ke)
            .zip(val.chunks_exact(ke))
            .map(|(ir, vr)| {
                ir.iter()
                    .zip(vr)
                    .map(|(&i, &score)| Hit {
                        index: i as usize,
                        score,
                    })
                    .collect()
            })
            .collect())
    }

    /// Cosine top-k: for each of the `nq` query rows (`dim` columns, row-major), the `k`
    /// candidate rows of highest cosine similarity, best first (ties by lower index, NaN
    /// last), as [`crate::cosine::cosine_top_k`] does on the CPU. Inputs need not be normalised
    /// (normalised copies are made on the device, the inputs are not changed). Queries are
    /// scored in blocks so that one block's scores stay under 256 MiB.
    #[allow(clippy::too_many_arguments)]
    pub fn cosine_top_k<Q: DevicePtr<f32>, C: DevicePtr<f32>>(
        &self,
        queries: &Q,
        candidates: &C,
        nq: usize,
        nc: usize,
        dim: usize,
        k: usize,
    ) -> Result<Vec<Vec<Hit>>, CudaError> {
        const OP: &str = "cosine_top_k";
        check_len(OP, "queries", queries.len(), mul(OP, nq, dim)?)?;
        check_len(OP, "candidates", candidates.len(), mul(OP, nc, dim)?)?;
        if nq == 0 {
            return Ok(Vec::new());
        }
        let ke = k.min(nc);
        if ke == 0 {
            return Ok(vec![Vec::new(); nq]);
        }
        if dim == 0 {
            // Every score is 0 (an empty dot product), as on the CPU.
            let row: Vec<Hit> = (0..ke).map(|index| Hit { index, score: 0.0 }).collect();
            return Ok(vec![row; nq]);
        }
        let mut q: CudaSlice<f32> = self.alloc_zeros(nq * dim)?;
        let mut c: CudaSlice<f32> = self.alloc_zeros(nc * dim)?;
        self.copy(queries, &mut q, nq * dim)?;
        self.copy(candidates, &mut c, nc * dim)?;
        self.l2_normalize_rows(&mut q, nq, dim)?;
        self.l2_normalize_rows(&mut c, nc, dim)?;
        let block = (SCORE_BLOCK_FLOATS / nc).clamp(1, nq);
        let mut scores: CudaSlice<f32> = self.alloc_zeros(mul(OP, block, nc)?)?;
        let mut out = Vec::with_capacity(nq);
        let mut q0 = 0;
        while q0 < nq {
            let rows = block.min(nq - q0);
            let qv = q.slice(q0 * dim..(q0 + rows) * dim);
            self.gemm_f32(
                false,
                true,
                rows,
                nc,
                dim,
                1.0,
                &qv,
                dim,
                &c,
                dim,
                0.0,
                &mut scores,
                nc,
            )?;
            out.extend(self.top_k_rows(&scores, rows, nc, ke)?);
            q0 += rows;
        }
        Ok(out)
    }
}
