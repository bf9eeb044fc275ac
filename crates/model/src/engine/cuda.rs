//! The CUDA backend of the engine (feature `cuda`): the layer operations on the kernels of
//! [`multiret_kernels::cuda`] (cuBLAS GEMM, NVRTC softmax / LayerNorm / GELU / L2).
//!
//! - Weights are uploaded once: the linear layers as f32, or as bf16 for [`Precision::Bf16`]
//!   (activations are then rounded to bf16 on the device before each linear layer, f32
//!   accumulation, as on the CPU); biases and LayerNorm parameters as f32.
//! - Attention runs for all sequences of a batch at once: per head, one strided-batched GEMM
//!   for `Q K^T` over the sequences, one softmax over all `[sequence][head][query]` rows with the
//!   sequence's key mask (`0` / `-inf`), one strided-batched GEMM for `P V`. The score buffer
//!   is bounded ([`Cuda::max_score_elems`]); larger batches go through it in chunks of
//!   sequences.
//! - Pooling (every mode that is a weighted sum of token states) is one strided-batched GEMM
//!   of a per-sequence weight row with the final hidden states, followed by L2 normalisation
//!   on the device; only `[batch, hidden]` comes back.
//!
//! f32 GEMM is true f32 (no TF32), so f32 results match the CPU engine to about `1e-6`.

use std::sync::Arc;

use half::bf16;
use multiret_kernels::cuda::{CudaError, CudaSlice, Gpu, SoftmaxMask};
use multiret_kernels::Par;

use super::{Backend, PaddedBatch, Precision};
use crate::config::{Config, Pooling};
use crate::error::{ModelError, Result};
use crate::weights::{Linear, Norm};

pub(crate) fn gpu_err(e: CudaError) -> ModelError {
    ModelError::Gpu(e.to_string())
}

/// A GEMM operand: buffer, element offset, leading dimension (row stride), batch stride.
type Operand<'a, T> = (&'a T, usize, usize, usize);
/// A GEMM output: buffer, element offset, leading dimension, batch stride.
type Output<'a, T> = (&'a mut T, usize, usize, usize);

/// The device operations the CUDA backend is made of. Implemented by the GPU; the unit tests
/// also implement it on the host, with the semantics of the GPU kernels, to check the
/// orchestration (offsets, strides, chunking) without a GPU.
pub trait Device {
    /// An f32 buffer.
    type F;
    /// A bf16 buffer (bit patterns).
    type H;
    /// An f32 buffer holding `v`.
    fn upload(&self, v: &[f32]) -> Result<Self::F>;
    /// A bf16 buffer holding `v`.
    fn upload_bf16(&self, v: &[bf16]) -> Result<Self::H>;
    /// An f32 buffer of `n` values.
    fn zeros(&self, n: usize) -> Result<Self::F>;
    /// A bf16 buffer of `n` values.
    fn zeros_bf16(&self, n: usize) -> Result<Self::H>;
    /// The first `n` values of `x`, on the host.
    fn download(&self, x: &Self::F, n: usize) -> Result<Vec<f32>>;
    /// Row-major strided-batched `C = A op(B)` (`op(B) = B^T` when `trans_b`); `A` is
    /// `m x k`, `op(B)` is `k x n`, `C` is `m x n`; `beta = 0`.
    #[allow(clippy::too_many_arguments)]
    fn gemm(
        &self,
        trans_b: bool,
        m: usize,
        n: usize,
        k: usize,
        a: Operand<'_, Self::F>,
        b: Operand<'_, Self::F>,
        c: Output<'_, Self::F>,
        batch: usize,
    ) -> Result<()>;
    /// `C = A B^T` with bf16 `A` (`m x k`) and `B` (`n x k`), f32 `C` (`m x n`), all dense.
    fn gemm_bf16_nt(
        &self,
        m: usize,
        n: usize,
        k: usize,
        a: &Self::H,
        b: &Self::H,
        c: &mut Self::F,
    ) -> Result<()>;
    /// `y[..n] = bf16(x[..n])`.
    fn to_bf16(&self, x: &Self::F, y: &mut Self::H, n: usize) -> Result<()>;
    /// Adds `bias` to each of `rows` rows of `cols`, then GELU when `gelu`.
    fn bias_gelu(
        &self,
        x: &mut Self::F,
        bias: &Self::F,
        rows: usize,
        cols: usize,
        gelu: bool,
    ) -> Result<()>;
    /// `x = LayerNorm(x + residual)` (or of `x` alone) over `rows` rows of `cols`.
    #[allow(clippy::too_many_arguments)]
    fn layer_norm(
        &self,
        x: &mut Self::F,
        residual: Option<&Self::F>,
        gamma: &Self::F,
        beta: &Self::F,
        rows: usize,
        cols: usize,
        eps: f32,
    ) -> Result<()>;
    /// Softmax of `scale * x + mask` over the first `rows x cols` of `x`; row `r` uses the
    /// mask row starting at `mask.1 + (r / group) * cols`.
    fn softmax(
        &self,
        x: &mut Self::F,
        rows: usize,
        cols: usize,
        scale: f32,
        mask: (&Self::F, usize),
        group: usize,
    ) -> Result<()>;
    /// L2-normalises each of `rows` rows of `cols`.
    fn l2_normalize(&self, x: &mut Self::F, rows: usize, cols: usize) -> Result<()>;
}

/// `Err` unless `off <= len` (a view starting at `off` exists).
fn check_offset(what: &str, off: usize, len: usize) -> Result<()> {
    if off <= len {
        Ok(())
    } else {
        Err(ModelError::Gpu(format!(
            "internal error: {what} offset {off} beyond its buffer of {len} elements"
        )))
    }
}

impl Device for Arc<Gpu> {
    type F = CudaSlice<f32>;
    type H = CudaSlice<u16>;

    fn upload(&self, v: &[f32]) -> Result<Self::F> {
        Gpu::upload(self, v).map_err(gpu_err)
    }

    fn upload_bf16(&self, v: &[bf16]) -> Result<Self::H> {
        Gpu::upload_bf16(self, v).map_err(gpu_err)
    }

    fn zeros(&self, n: usize) -> Result<Self::F> {
        self.alloc_zeros(n.max(1)).map_err(gpu_err)
    }

    fn zeros_bf16(&self, n: usize) -> Result<Self::H> {
        self.alloc_zeros(n.max(1)).map_err(gpu_err)
    }

    fn download(&self, x: &Self::F, n: usize) -> Result<Vec<f32>> {
        self.download_prefix(x, n).map_err(gpu_err)
    }

    fn gemm(
        &self,
        trans_b: bool,
        m: usize,
        n: usize,
        k: usize,
        a: Operand<'_, Self::F>,
        b: Operand<'_, Self::F>,
        c: Output<'_, Self::F>,
        batch: usize,
    ) -> Result<()> {
        check_offset("A", a.1, a.0.len())?;
        check_offset("B", b.1, b.0.len())?;
        check_offset("C", c.1, c.0.len())?;
        let av = a.0.slice(a.1..);
        let bv = b.0.slice(b.1..);
        let mut cv = c.0.slice_mut(c.1..);
        self.gemm_f32_strided_batched(
            false, trans_b, m, n, k, 1.0, &av, a.2, a.3, &bv, b.2, b.3, 0.0, &mut cv, c.2, c.3,
            batch,
        )
        .map_err(gpu_err)
    }

    fn gemm_bf16_nt(
        &self,
        m: usize,
        n: usize,
        k: usize,
        a: &Self::H,
        b: &Self::H,
        c: &mut Self::F,
    ) -> Result<()> {
        self.gemm_bf16(false, true, m, n, k, 1.0, a, k, b, k, 0.0, c, n)
            .map_err(gpu_err)
    }

    fn to_bf16(&self, x: &Self::F, y: &mut Self::H, n: usize) -> Result<()> {
        self.f32_to_bf16(x, y, n).map_err(gpu_err)
    }

    fn bias_gelu(
        &self,
        x: &mut Self::F,
        bias: &Self::F,
        rows: usize,
        cols: usize,
        gelu: bool,
    ) -> Result<()> {
        Gpu::bias_gelu(self, x, Some(&bias.as_view()), rows, cols, gelu).map_err(gpu_err)
    }

    fn layer_norm(
        &self,
        x: &mut Self::F,
        residual: Option<&Self::F>,
        gamma: &Self::F,
        beta: &Self::F,
        rows: usize,
        cols: usize,
        eps: f32,
    ) -> Result<()> {
        let r = residual.map(|r| r.as_view());
        self.layer_norm_rows(x, r.as_ref(), gamma, beta, rows, cols, eps)
            .map_err(gpu_err)
    }

    fn softmax(
        &self,
        x: &mut Self::F,
        rows: usize,
        cols: usize,
        scale: f32,
        mask: (&Self::F, usize),
        group: usize,
    ) -> Result<()> {
        check_offset("mask", mask.1, mask.0.len())?;
        let m = SoftmaxMask {
            values: mask.0.slice(mask.1..),
            rows_per_mask_row: group,
        };
        self.softmax_rows(x, rows, cols, scale, Some(m))
            .map_err(gpu_err)
    }

    fn l2_normalize(&self, x: &mut Self::F, rows: usize, cols: usize) -> Result<()> {
        self.l2_normalize_rows(x, rows, cols).map_err(gpu_err)
    }
}

/// Linear weights on the device.
pub enum DevMat<D: Device> {
    /// f32, `[out, in]`.
    F32(D::F),
    /// bf16, `[out, in]`.
    Bf16(D::H),
}

/// A linear layer on the device.
pub struct DevLin<D: Device> {
    out: usize,
    inp: usize,
    w: DevMat<D>,
    b: D::F,
}

/// LayerNorm parameters on the device.
pub struct DevNorm<D: Device> {
    w: D::F,
    b: D::F,
}

/// Default bound of the attention-score buffer: 2^28 f32 (1 GiB).
pub const DEFAULT_MAX_SCORE_ELEMS: usize = 1 << 28;

/// The CUDA backend on a [`Device`].
pub struct Cuda<D: Device> {
    /// The device.
    pub dev: D,
    /// Bound of the attention-score buffer, in f32 values: a batch whose
    /// `batch * heads * len^2` scores exceed it runs its attention in chunks of sequences (at
    /// least one sequence at a time).
    pub max_score_elems: usize,
}

impl<D: Device> Cuda<D> {
    /// The backend on `dev`, with the default score bound.
    pub fn new(dev: D) -> Self {
        Cuda {
            dev,
            max_score_elems: DEFAULT_MAX_SCORE_ELEMS,
        }
    }
}

/// The per-batch working memory on the device.
pub struct CudaWork<D: Device> {
    /// `[size, len]`: 0 for real tokens, -inf for padding.
    mask: D::F,
    /// The attention scores of `chunk` sequences.
    scores: D::F,
    /// Sequences per attention chunk.
    chunk: usize,
    /// The bf16 copy of a linear layer's input (bf16 weights only).
    xb: Option<D::H>,
}

impl<D: Device> Backend for Cuda<D> {
    type Buf = D::F;
    type Lin = DevLin<D>;
    type Norm = DevNorm<D>;
    type Work = CudaWork<D>;

    fn linear(&self, parts: &[&Linear], precision: Precision) -> Result<DevLin<D>> {
        let inp = parts[0].inp;
        let out: usize = parts.iter().map(|p| p.out).sum();
        let wv: Vec<f32> = parts.iter().flat_map(|p| p.w.iter().copied()).collect();
        let bv: Vec<f32> = parts.iter().flat_map(|p| p.b.iter().copied()).collect();
        let w = match precision {
            Precision::F32 => DevMat::F32(self.dev.upload(&wv)?),
            Precision::Bf16 => {
                let hv: Vec<bf16> = wv.iter().map(|&x| bf16::from_f32(x)).collect();
                DevMat::Bf16(self.dev.upload_bf16(&hv)?)
            }
        };
        Ok(DevLin {
            out,
            inp,
            w,
            b: self.dev.upload(&bv)?,
        })
    }

    fn norm(&self, n: &Norm) -> Result<DevNorm<D>> {
        Ok(DevNorm {
            w: self.dev.upload(&n.w)?,
            b: self.dev.upload(&n.b)?,
        })
    }

    fn buffer(&self, n: usize) -> Result<D::F> {
        self.dev.zeros(n)
    }

    fn write(&self, buf: &mut D::F, x: &[f32]) -> Result<()> {
        // A fresh upload: the device has no host-to-device copy into an existing buffer here.
        *buf = self.dev.upload(x)?;
        Ok(())
    }

    fn workspace(
        &self,
        batch: &PaddedBatch,
        c: &Config,
        precision: Precision,
    ) -> Result<CudaWork<D>> {
        let (bsz, len) = (batch.size(), batch.len);
        let mask: Vec<f32> = (0..bsz).flat_map(|b| batch.mask_row(b)).collect();
        let per_seq = (c.heads * len * len).max(1);
        let chunk = (self.max_score_elems / per_seq).clamp(1, bsz.max(1));
        Ok(CudaWork {
            mask: self.dev.upload(&mask)?,
            scores: self.dev.zeros(chunk * per_seq)?,
            chunk,
            xb: match precision {
                Precision::F32 => None,
                // The widest input of a layer: hidden or ffn values per row.
                Precision::Bf16 => Some(self.dev.zeros_bf16(batch.rows() * c.hidden.max(c.ffn))?),
            },
        })
    }

    fn supports(&self, pooling: Pooling) -> bool {
        pooling.token_weights(&mut [0.0])
    }

    fn apply_linear(
        &self,
        l: &DevLin<D>,
        x: &D::F,
        rows: usize,
        y: &mut D::F,
        gelu: bool,
        work: &mut CudaWork<D>,
        _par: Par,
    ) -> Result<()> {
        let dev = &self.dev;
        match &l.w {
            DevMat::F32(w) => dev.gemm(
                true,
                rows,
                l.out,
                l.inp,
                (x, 0, l.inp, 0),
                (w, 0, l.inp, 0),
                (y, 0, l.out, 0),
                1,
            )?,
            DevMat::Bf16(w) => {
                let xb = work.xb.as_mut().ok_or_else(|| {
                    ModelError::Gpu("internal error: no bf16 activation buffer".into())
                })?;
                dev.to_bf16(x, xb, rows * l.inp)?;
                dev.gemm_bf16_nt(rows, l.out, l.inp, xb, w, y)?;
            }
        }
        dev.bias_gelu(y, &l.b, rows, l.out, gelu)
    }

    fn layer_norm(
        &self,
        x: &mut D::F,
        residual: Option<&D::F>,
        n: &DevNorm<D>,
        rows: usize,
        cols: usize,
        eps: f32,
    ) -> Result<()> {
        self.dev
            .layer_norm(x, residual, &n.w, &n.b, rows, cols, eps)
    }

    /// `ctx = softmax(Q K^T / sqrt(d) + mask) V` for every sequence and head, `chunk`
    /// sequences at a time (the score buffer holds `chunk * heads * len * len`).
    fn attention(
        &self,
        qkv: &D::F,
        ctx: &mut D::F,
        batch: &PaddedBatch,
        c: &Config,
        work: &mut CudaWork<D>,
        _par: Par,
    ) -> Result<()> {
        let dev = &self.dev;
        let (bsz, len) = (batch.size(), batch.len);
        let (h, heads, d) = (c.hidden, c.heads, c.head_dim());
        let scale = 1.0 / (d as f32).sqrt();
        let ll = len * len;
        // Scores laid out [sequence][head][query][key].
        let seq_stride = heads * ll;
        let (scores, mask, chunk) = (&mut work.scores, &work.mask, work.chunk);
        let mut s0 = 0;
        while s0 < bsz {
            let nb = chunk.min(bsz - s0);
            let q0 = s0 * len * 3 * h;
            for head in 0..heads {
                dev.gemm(
                    true,
                    len,
                    len,
                    d,
                    (qkv, q0 + head * d, 3 * h, len * 3 * h),
                    (qkv, q0 + h + head * d, 3 * h, len * 3 * h),
                    (scores, head * ll, len, seq_stride),
                    nb,
                )?;
            }
            dev.softmax(
                scores,
                nb * heads * len,
                len,
                scale,
                (mask, s0 * len),
                heads * len,
            )?;
            for head in 0..heads {
                dev.gemm(
                    false,
                    len,
                    d,
                    len,
                    (scores, head * ll, len, seq_stride),
                    (qkv, q0 + 2 * h + head * d, 3 * h, len * 3 * h),
                    (ctx, s0 * len * h + head * d, h, len * h),
                    nb,
                )?;
            }
            s0 += nb;
        }
        Ok(())
    }

    fn pool(
        &self,
        x: &D::F,
        batch: &PaddedBatch,
        pooling: Pooling,
        normalize: bool,
        c: &Config,
        _work: &mut CudaWork<D>,
    ) -> Result<Vec<f32>> {
        let dev = &self.dev;
        let (bsz, len, h) = (batch.size(), batch.len, c.hidden);
        let weights = batch.pool_weights(pooling).ok_or_else(|| {
            ModelError::Input(format!(
                "{} pooling is not supported on the CUDA engine (use the CPU engine)",
                pooling.st_name()
            ))
        })?;
        // out[b] = pool[b] (1 x len) * x[b] (len x hidden), all sequences in one call.
        let pool = dev.upload(&weights)?;
        let mut out = dev.zeros(bsz * h)?;
        dev.gemm(
            false,
            1,
            h,
            len,
            (&pool, 0, len, len),
            (x, 0, h, len * h),
            (&mut out, 0, h, h),
            bsz,
        )?;
        if normalize {
            dev.l2_normalize(&mut out, bsz, h)?;
        }
        dev.download(&out, bsz * h)
    }
}

#[cfg(test)]
mod tests {
    //! The orchestration (offsets, strides, chunking, pooling, bf16 rounding) on a host
    //! implementation of [`Device`] with the semantics of the GPU kernels, against the CPU
    //! engine; the GPU itself is tested in `tests/gpu.rs`.

    use std::borrow::Cow;

    use super::*;
    use crate::config::Arch;
    use crate::engine::Engine;
    use crate::weights::Weights;
    use crate::Encoder;

    struct Host;

    impl Device for Host {
        type F = Vec<f32>;
        type H = Vec<u16>;
        fn upload(&self, v: &[f32]) -> Result<Vec<f32>> {
            Ok(v.to_vec())
        }
        fn upload_bf16(&self, v: &[bf16]) -> Result<Vec<u16>> {
            Ok(v.iter().map(|x| x.to_bits()).collect())
        }
        fn zeros(&self, n: usize) -> Result<Vec<f32>> {
            // NaN, not zero: a read of an unwritten element shows.
            Ok(vec![f32::NAN; n.max(1)])
        }
        fn zeros_bf16(&self, n: usize) -> Result<Vec<u16>> {
            Ok(vec![bf16::NAN.to_bits(); n.max(1)])
        }
        fn download(&self, x: &Vec<f32>, n: usize) -> Result<Vec<f32>> {
            Ok(x[..n].to_vec())
        }
        fn gemm(
            &self,
            trans_b: bool,
            m: usize,
            n: usize,
            k: usize,
            a: Operand<'_, Vec<f32>>,
            b: Operand<'_, Vec<f32>>,
            c: Output<'_, Vec<f32>>,
            batch: usize,
        ) -> Result<()> {
            assert!(a.2 >= k && c.2 >= n && b.2 >= if trans_b { k } else { n });
            for p in 0..batch {
                for i in 0..m {
                    for j in 0..n {
                        let mut s = 0.0f64;
                        for kk in 0..k {
                            let av = a.0[a.1 + p * a.3 + i * a.2 + kk];
                            let bv = if trans_b {
                                b.0[b.1 + p * b.3 + j * b.2 + kk]
                            } else {
                                b.0[b.1 + p * b.3 + kk * b.2 + j]
                            };
                            s += av as f64 * bv as f64;
                        }
                        c.0[c.1 + p * c.3 + i * c.2 + j] = s as f32;
                    }
                }
            }
            Ok(())
        }
        fn gemm_bf16_nt(
            &self,
            m: usize,
            n: usize,
            k: usize,
            a: &Vec<u16>,
            b: &Vec<u16>,
            c: &mut Vec<f32>,
        ) -> Result<()> {
            let f = |v: &[u16]| -> Vec<f32> {
                v.iter().map(|&x| bf16::from_bits(x).to_f32()).collect()
            };
            let (af, bf) = (f(&a[..m * k]), f(&b[..n * k]));
            self.gemm(
                true,
                m,
                n,
                k,
                (&af, 0, k, 0),
                (&bf, 0, k, 0),
                (c, 0, n, 0),
                1,
            )
        }
        fn to_bf16(&self, x: &Vec<f32>, y: &mut Vec<u16>, n: usize) -> Result<()> {
            for (d, s) in y[..n].iter_mut().zip(&x[..n]) {
                *d = bf16::from_f32(*s).to_bits();
            }
            Ok(())
        }
        fn bias_gelu(
            &self,
            x: &mut Vec<f32>,
            bias: &Vec<f32>,
            rows: usize,
            cols: usize,
            gelu: bool,
        ) -> Result<()> {
            assert_eq!(bias.len(), cols);
            multiret_kernels::activation::add_bias_rows(&mut x[..rows * cols], bias, gelu)?;
            Ok(())
        }
        fn layer_norm(
            &self,
            x: &mut Vec<f32>,
            residual: Option<&Vec<f32>>,
            gamma: &Vec<f32>,
            beta: &Vec<f32>,
            rows: usize,
            cols: usize,
            eps: f32,
        ) -> Result<()> {
            assert_eq!(gamma.len(), cols);
            let xs = &mut x[..rows * cols];
            match residual {
                Some(r) => multiret_kernels::norm::add_layer_norm_rows(
                    xs,
                    &r[..rows * cols],
                    gamma,
                    beta,
                    eps,
                )?,
                None => multiret_kernels::norm::layer_norm_rows(xs, gamma, beta, eps)?,
            }
            Ok(())
        }
        fn softmax(
            &self,
            x: &mut Vec<f32>,
            rows: usize,
            cols: usize,
            scale: f32,
            mask: (&Vec<f32>, usize),
            group: usize,
        ) -> Result<()> {
            for (r, row) in x[..rows * cols].chunks_mut(cols).enumerate() {
                let m0 = mask.1 + (r / group) * cols;
                multiret_kernels::softmax::softmax_rows(
                    row,
                    cols,
                    scale,
                    Some(&mask.0[m0..m0 + cols]),
                )?;
            }
            Ok(())
        }
        fn l2_normalize(&self, x: &mut Vec<f32>, rows: usize, cols: usize) -> Result<()> {
            multiret_kernels::norm::l2_normalize_rows(&mut x[..rows * cols], cols)?;
            Ok(())
        }
    }

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> f32 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        }
    }

    fn tiny(arch: Arch) -> (Config, Weights) {
        let c = Config {
            arch,
            hidden: 48,
            layers: 2,
            heads: 3,
            ffn: 80,
            vocab: 40,
            max_pos: 34,
            type_vocab: 2,
            layer_norm_eps: 1e-12,
            pad_id: 1,
        };
        let w = Weights::random(&c, 77);
        (c, w)
    }

    fn batch() -> Vec<Vec<u32>> {
        let mut r = Rng(5);
        [5usize, 3, 32, 2, 17, 9, 1, 12]
            .iter()
            .map(|&n| {
                (0..n)
                    .map(|_| ((r.next() + 1.0) * 19.9) as u32 % 40)
                    .collect()
            })
            .collect()
    }

    #[test]
    fn host_backend_orchestration_matches_the_cpu_engine() {
        let seqs = batch();
        for arch in [Arch::Bert, Arch::XlmRoberta] {
            let (c, w) = tiny(arch);
            for precision in [Precision::F32, Precision::Bf16] {
                let cpu = Encoder::new(&c, &w, precision).unwrap();
                let mut eng =
                    Engine::new(Cuda::new(Host), &c, &w, Cow::Borrowed(&w), precision).unwrap();
                for pooling in Pooling::ALL.into_iter().filter(|&p| p != Pooling::Max) {
                    for normalize in [true, false] {
                        let want = cpu.forward(&seqs, pooling, normalize, Par::Seq).unwrap();
                        // Whole batch; then the attention in chunks of 3 sequences and of 1.
                        for max in [usize::MAX, 3 * c.heads * 32 * 32, 1] {
                            eng.backend_mut().max_score_elems = max;
                            let got = eng.forward(&seqs, pooling, normalize, Par::Seq).unwrap();
                            assert_eq!(got.len(), want.len());
                            let err = got
                                .iter()
                                .zip(&want)
                                .map(|(g, w)| (g - w).abs())
                                .fold(0.0f32, f32::max);
                            let tol = match precision {
                                Precision::F32 => 2e-5,
                                Precision::Bf16 => 2e-2,
                            };
                            assert!(
                                err < tol,
                                "{arch:?} {precision:?} {pooling:?} normalize={normalize} \
                                 max_scores={max}: max error {err}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn host_backend_input_checks() {
        let (c, w) = tiny(Arch::Bert);
        let eng = Engine::new(Cuda::new(Host), &c, &w, Cow::Borrowed(&w), Precision::F32).unwrap();
        assert!(eng
            .forward(&[], Pooling::Mean, true, Par::Seq)
            .unwrap()
            .is_empty());
        for bad in [vec![vec![]], vec![vec![0, 99, 2]], vec![vec![4; 40]]] {
            assert!(matches!(
                eng.forward(&bad, Pooling::Mean, true, Par::Seq),
                Err(ModelError::Input(_))
            ));
        }
        // Max pooling is refused before any device work.
        assert!(matches!(
            eng.forward(&[vec![0, 5, 2]], Pooling::Max, true, Par::Seq),
            Err(ModelError::Input(_))
        ));
        let mut short = w.clone();
        short.word = short.word[..short.word.len() - 1].to_vec().into();
        assert!(matches!(
            Engine::new(
                Cuda::new(Host),
                &c,
                &short,
                Cow::Borrowed(&short),
                Precision::F32
            ),
            Err(ModelError::Input(_))
        ));
    }
}
