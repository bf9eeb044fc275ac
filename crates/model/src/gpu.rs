//! The encoder on a CUDA GPU (feature `cuda`): the same forward pass as [`crate::Encoder`] on
//! the kernels of [`multiret_kernels::cuda`] (cuBLAS GEMM, NVRTC softmax / LayerNorm / GELU /
//! L2), and [`GpuEmbedder`], the GPU counterpart of [`crate::Embedder`].
//!
//! - Weights are uploaded once: the linear layers as f32, or as bf16 for [`Precision::Bf16`]
//!   (activations are then rounded to bf16 on the device before each linear layer, f32
//!   accumulation, as on the CPU); biases and LayerNorm parameters as f32. Q, K and V are fused
//!   into one `[3 * hidden, hidden]` linear.
//! - The embedding tables stay on the host: each batch's `word + position + type` rows are
//!   gathered there (in parallel) and uploaded, then LayerNorm runs on the device.
//! - Attention runs for all sequences of a batch at once: per head, one strided-batched GEMM
//!   for `Q K^T` over the sequences, one softmax over all `[sequence][head][query]` rows with the
//!   sequence's key mask (`0` / `-inf`), one strided-batched GEMM for `P V`. The score buffer
//!   is bounded ([`GpuEncoder::set_max_score_elems`]); larger batches go through it in chunks
//!   of sequences.
//! - Pooling (mean over the real tokens, or CLS) is one strided-batched GEMM of a per-sequence
//!   weight row with the final hidden states, followed by L2 normalisation on the device; only
//!   `[batch, hidden]` comes back.
//!
//! f32 GEMM is true f32 (no TF32), so f32 results match the CPU engine to about `1e-6`.
//!
//! ```no_run
//! use multiret_model::{Kind, Model, Precision};
//! let model = Model::load("e5-small", &multiret_model::default_cache_dir())?;
//! let emb = model.gpu_embedder(Precision::Bf16)?;
//! let v = emb.embed(&["Where is the Eiffel tower?"], Kind::Query, 128, &|_| {})?;
//! assert_eq!(v.len(), 384);
//! # Ok::<(), multiret_model::ModelError>(())
//! ```

use std::sync::Arc;

use half::bf16;
use multiret_kernels::cuda::{self, CudaError, CudaSlice, SoftmaxMask};
use rayon::prelude::*;

use crate::config::{Config, Pooling};
use crate::encoder::Precision;
use crate::error::{ModelError, Result};
use crate::model::{Kind, Model};
use crate::weights::{Linear, Norm, Weights};

/// The CUDA device handle of [`multiret_kernels::cuda`].
pub use multiret_kernels::cuda::Gpu;

fn gpu_err(e: CudaError) -> ModelError {
    ModelError::Gpu(e.to_string())
}

/// Whether the GPU path can run here (driver, NVRTC, cuBLAS, a device); `Err` says why not.
/// Never panics.
pub fn available() -> std::result::Result<(), String> {
    cuda::available()
}

/// Opens CUDA device `ordinal` (after checking [`available`], so a missing library is an error,
/// not a panic).
pub fn open_gpu(ordinal: usize) -> Result<Arc<Gpu>> {
    cuda::available().map_err(|r| ModelError::Gpu(format!("CUDA is not available: {r}")))?;
    Gpu::new(ordinal).map(Arc::new).map_err(gpu_err)
}

/// A GEMM operand: buffer, element offset, leading dimension (row stride), batch stride.
type Operand<'a, T> = (&'a T, usize, usize, usize);
/// A GEMM output: buffer, element offset, leading dimension, batch stride.
type Output<'a, T> = (&'a mut T, usize, usize, usize);

/// The device operations the forward pass needs. Implemented by the GPU; the unit tests also
/// implement it on the host to check the orchestration (offsets, strides, chunking) without a
/// GPU.
trait Backend {
    /// An f32 buffer.
    type F;
    /// A bf16 buffer (bit patterns).
    type H;
    fn upload(&self, v: &[f32]) -> Result<Self::F>;
    fn upload_bf16(&self, v: &[bf16]) -> Result<Self::H>;
    fn zeros(&self, n: usize) -> Result<Self::F>;
    fn zeros_bf16(&self, n: usize) -> Result<Self::H>;
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
    fn to_bf16(&self, x: &Self::F, y: &mut Self::H, n: usize) -> Result<()>;
    fn bias_gelu(
        &self,
        x: &mut Self::F,
        bias: &Self::F,
        rows: usize,
        cols: usize,
        gelu: bool,
    ) -> Result<()>;
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

impl Backend for Arc<Gpu> {
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

enum DevMat<B: Backend> {
    F32(B::F),
    Bf16(B::H),
}

struct DevLin<B: Backend> {
    out: usize,
    inp: usize,
    w: DevMat<B>,
    b: B::F,
}

struct DevNorm<B: Backend> {
    w: B::F,
    b: B::F,
}

struct DevLayer<B: Backend> {
    qkv: DevLin<B>,
    ao: DevLin<B>,
    aln: DevNorm<B>,
    fi: DevLin<B>,
    fo: DevLin<B>,
    oln: DevNorm<B>,
}

/// Default bound of the attention-score buffer: 2^28 f32 (1 GiB).
const DEFAULT_MAX_SCORE_ELEMS: usize = 1 << 28;

/// The forward pass on a [`Backend`].
struct Engine<'w, B: Backend> {
    be: B,
    cfg: Config,
    precision: Precision,
    word: &'w [f32],
    pos: &'w [f32],
    typ: &'w [f32],
    emb_ln: DevNorm<B>,
    layers: Vec<DevLayer<B>>,
    max_score_elems: usize,
}

/// A padded batch prepared on the host.
struct HostBatch {
    bsz: usize,
    len: usize,
    /// `[bsz * len, hidden]` word + position + type embeddings.
    x: Vec<f32>,
    /// `[bsz, len]`: 0 for real tokens, -inf for padding.
    mask: Vec<f32>,
    /// `[bsz, len]`: the pooling weights (1/n over real tokens, or 1 at the first token).
    pool: Vec<f32>,
}

impl<'w, B: Backend> Engine<'w, B> {
    fn new(be: B, cfg: &Config, w: &'w Weights, precision: Precision) -> Result<Self> {
        let h = cfg.hidden;
        let bad = |what: &str, have: usize, need: usize| {
            ModelError::Input(format!(
                "weights do not fit the configuration: {what} has {have} values, needs {need}"
            ))
        };
        if w.word.len() != cfg.vocab * h {
            return Err(bad("the word table", w.word.len(), cfg.vocab * h));
        }
        if w.pos.len() != cfg.max_pos * h {
            return Err(bad("the position table", w.pos.len(), cfg.max_pos * h));
        }
        if w.typ.len() < h {
            return Err(bad("the token-type table", w.typ.len(), h));
        }
        if w.layers.len() != cfg.layers {
            return Err(bad("the layer list", w.layers.len(), cfg.layers));
        }
        let norm = |n: &Norm| -> Result<DevNorm<B>> {
            if n.w.len() != h || n.b.len() != h {
                return Err(bad("a LayerNorm", n.w.len().min(n.b.len()), h));
            }
            Ok(DevNorm {
                w: be.upload(&n.w)?,
                b: be.upload(&n.b)?,
            })
        };
        let lin = |parts: &[&Linear]| -> Result<DevLin<B>> {
            let inp = parts[0].inp;
            let out: usize = parts.iter().map(|p| p.out).sum();
            for p in parts {
                if p.inp != inp || p.w.len() != p.out * p.inp || p.b.len() != p.out {
                    return Err(bad("a linear layer", p.w.len(), p.out * p.inp));
                }
            }
            let wv: Vec<f32> = parts.iter().flat_map(|p| p.w.iter().copied()).collect();
            let bv: Vec<f32> = parts.iter().flat_map(|p| p.b.iter().copied()).collect();
            let w = match precision {
                Precision::F32 => DevMat::F32(be.upload(&wv)?),
                Precision::Bf16 => {
                    let hv: Vec<bf16> = wv.iter().map(|&x| bf16::from_f32(x)).collect();
                    DevMat::Bf16(be.upload_bf16(&hv)?)
                }
            };
            Ok(DevLin {
                out,
                inp,
                w,
                b: be.upload(&bv)?,
            })
        };
        let mut layers = Vec::with_capacity(w.layers.len());
        for l in &w.layers {
            let layer = DevLayer {
                qkv: lin(&[&l.q, &l.k, &l.v])?,
                ao: lin(&[&l.ao])?,
                aln: norm(&l.aln)?,
                fi: lin(&[&l.fi])?,
                fo: lin(&[&l.fo])?,
                oln: norm(&l.oln)?,
            };
            let shapes_ok = layer.qkv.inp == h
                && layer.qkv.out == 3 * h
                && layer.ao.inp == h
                && layer.ao.out == h
                && layer.fi.inp == h
                && layer.fi.out == cfg.ffn
                && layer.fo.inp == cfg.ffn
                && layer.fo.out == h;
            if !shapes_ok {
                return Err(ModelError::Input(
                    "weights do not fit the configuration: a layer's linear shapes differ from \
                     hidden / ffn"
                        .into(),
                ));
            }
            layers.push(layer);
        }
        let emb_ln = norm(&w.emb_ln)?;
        Ok(Engine {
            be,
            cfg: cfg.clone(),
            precision,
            word: &w.word,
            pos: &w.pos,
            typ: &w.typ,
            emb_ln,
            layers,
            max_score_elems: DEFAULT_MAX_SCORE_ELEMS,
        })
    }

    /// Checks a batch and builds its host-side inputs (the checks of the CPU engine).
    fn prepare(&self, batch: &[Vec<u32>], pooling: Pooling) -> Result<HostBatch> {
        let c = &self.cfg;
        let h = c.hidden;
        let bsz = batch.len();
        let len = batch.iter().map(Vec::len).max().unwrap_or(0);
        if len == 0 || batch.iter().any(Vec::is_empty) {
            return Err(ModelError::Input(
                "empty token sequence (every input has at least its special tokens)".into(),
            ));
        }
        if len > c.max_tokens() {
            return Err(ModelError::Input(format!(
                "sequence of {len} tokens exceeds the model's {} positions",
                c.max_tokens()
            )));
        }
        if let Some(&bad) = batch.iter().flatten().find(|&&id| id as usize >= c.vocab) {
            return Err(ModelError::Input(format!(
                "token id {bad} outside the vocabulary of {}",
                c.vocab
            )));
        }
        let t = bsz * len;
        let off = c.position_offset();
        let (word, pos, typ) = (self.word, self.pos, &self.typ[..h]);
        let fill = |(r, row): (usize, &mut [f32])| {
            let (b, i) = (r / len, r % len);
            let (id, p) = match batch[b].get(i) {
                Some(&id) => (id as usize, off + i),
                None => (c.pad_id as usize, off.saturating_sub(1)),
            };
            let we = &word[id * h..(id + 1) * h];
            let pe = &pos[p * h..(p + 1) * h];
            for (j, v) in row.iter_mut().enumerate() {
                *v = we[j] + pe[j] + typ[j];
            }
        };
        let mut x = vec![0.0f32; t * h];
        if t * h >= 1 << 16 {
            x.par_chunks_mut(h).enumerate().for_each(fill);
        } else {
            x.chunks_mut(h).enumerate().for_each(fill);
        }
        let mut mask = vec![f32::NEG_INFINITY; t];
        let mut pool = vec![0.0f32; t];
        for (b, ids) in batch.iter().enumerate() {
            let n = ids.len();
            mask[b * len..b * len + n].fill(0.0);
            if !pooling.token_weights(&mut pool[b * len..b * len + n]) {
                return Err(ModelError::Input(format!(
                    "{} pooling is not supported on the CUDA engine (use the CPU engine)",
                    pooling.st_name()
                )));
            }
        }
        Ok(HostBatch {
            bsz,
            len,
            x,
            mask,
            pool,
        })
    }

    fn forward(&self, batch: &[Vec<u32>], pooling: Pooling, normalize: bool) -> Result<Vec<f32>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let hb = self.prepare(batch, pooling)?;
        self.run(&hb, normalize)
    }

    /// The device part of the forward pass.
    fn run(&self, hb: &HostBatch, normalize: bool) -> Result<Vec<f32>> {
        let be = &self.be;
        let c = &self.cfg;
        let (h, eps) = (c.hidden, c.layer_norm_eps);
        let (bsz, len) = (hb.bsz, hb.len);
        let t = bsz * len;
        let mut x = be.upload(&hb.x)?;
        be.layer_norm(&mut x, None, &self.emb_ln.w, &self.emb_ln.b, t, h, eps)?;
        let mask = be.upload(&hb.mask)?;
        let mut qkv = be.zeros(t * 3 * h)?;
        let mut ctx = be.zeros(t * h)?;
        let mut tmp = be.zeros(t * h)?;
        let mut ffn = be.zeros(t * c.ffn)?;
        let mut xb = match self.precision {
            Precision::F32 => None,
            Precision::Bf16 => Some(be.zeros_bf16(t * h.max(c.ffn))?),
        };
        let per_seq = c.heads * len * len;
        let chunk = (self.max_score_elems / per_seq).clamp(1, bsz);
        let mut scores = be.zeros(chunk * per_seq)?;
        for layer in &self.layers {
            self.linear(&layer.qkv, &x, t, &mut qkv, false, &mut xb)?;
            self.attention(&qkv, &mut ctx, &mut scores, &mask, bsz, len, chunk)?;
            self.linear(&layer.ao, &ctx, t, &mut tmp, false, &mut xb)?;
            be.layer_norm(&mut tmp, Some(&x), &layer.aln.w, &layer.aln.b, t, h, eps)?;
            std::mem::swap(&mut x, &mut tmp);
            self.linear(&layer.fi, &x, t, &mut ffn, true, &mut xb)?;
            self.linear(&layer.fo, &ffn, t, &mut tmp, false, &mut xb)?;
            be.layer_norm(&mut tmp, Some(&x), &layer.oln.w, &layer.oln.b, t, h, eps)?;
            std::mem::swap(&mut x, &mut tmp);
        }
        // Pooling: out[b] = pool[b] (1 x len) * x[b] (len x hidden), all sequences in one call.
        let pool = be.upload(&hb.pool)?;
        let mut out = be.zeros(bsz * h)?;
        be.gemm(
            false,
            1,
            h,
            len,
            (&pool, 0, len, len),
            (&x, 0, h, len * h),
            (&mut out, 0, h, h),
            bsz,
        )?;
        if normalize {
            be.l2_normalize(&mut out, bsz, h)?;
        }
        be.download(&out, bsz * h)
    }

    /// `y = gelu?(x W^T + b)` for `rows` rows.
    fn linear(
        &self,
        l: &DevLin<B>,
        x: &B::F,
        rows: usize,
        y: &mut B::F,
        gelu: bool,
        xb: &mut Option<B::H>,
    ) -> Result<()> {
        let be = &self.be;
        match &l.w {
            DevMat::F32(w) => be.gemm(
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
                let xb = xb.as_mut().ok_or_else(|| {
                    ModelError::Gpu("internal error: no bf16 activation buffer".into())
                })?;
                be.to_bf16(x, xb, rows * l.inp)?;
                be.gemm_bf16_nt(rows, l.out, l.inp, xb, w, y)?;
            }
        }
        be.bias_gelu(y, &l.b, rows, l.out, gelu)
    }

    /// `ctx = softmax(Q K^T / sqrt(d) + mask) V` for every sequence and head, `chunk`
    /// sequences at a time (the score buffer holds `chunk * heads * len * len`).
    #[allow(clippy::too_many_arguments)]
    fn attention(
        &self,
        qkv: &B::F,
        ctx: &mut B::F,
        scores: &mut B::F,
        mask: &B::F,
        bsz: usize,
        len: usize,
        chunk: usize,
    ) -> Result<()> {
        let be = &self.be;
        let c = &self.cfg;
        let (h, heads, d) = (c.hidden, c.heads, c.head_dim());
        let scale = 1.0 / (d as f32).sqrt();
        let ll = len * len;
        // Scores laid out [sequence][head][query][key].
        let seq_stride = heads * ll;
        let mut s0 = 0;
        while s0 < bsz {
            let nb = chunk.min(bsz - s0);
            let q0 = s0 * len * 3 * h;
            for head in 0..heads {
                be.gemm(
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
            be.softmax(
                scores,
                nb * heads * len,
                len,
                scale,
                (mask, s0 * len),
                heads * len,
            )?;
            for head in 0..heads {
                be.gemm(
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
}

/// The encoder on a CUDA GPU: [`crate::Encoder`]'s forward pass (same inputs, same outputs)
/// with the weights on the device. Borrows the host embedding tables of the [`Weights`] it was
/// built from (the per-batch gather happens on the host).
///
/// Uses its [`Gpu`] from one thread at a time (the `Gpu`'s stream and cuBLAS handle are
/// shared by all its operations).
pub struct GpuEncoder<'w> {
    engine: Engine<'w, Arc<Gpu>>,
}

impl std::fmt::Debug for GpuEncoder<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuEncoder")
            .field("gpu", &self.engine.be.name())
            .field("config", &self.engine.cfg)
            .field("precision", &self.engine.precision)
            .finish()
    }
}

impl<'w> GpuEncoder<'w> {
    /// Uploads the weights (Q, K, V fused; linear weights as bf16 for [`Precision::Bf16`]).
    /// Fails on weights that do not fit `cfg` or on a device error (out of memory, ...).
    pub fn new(
        gpu: Arc<Gpu>,
        cfg: &Config,
        weights: &'w Weights,
        precision: Precision,
    ) -> Result<Self> {
        Ok(GpuEncoder {
            engine: Engine::new(gpu, cfg, weights, precision)?,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.engine.cfg
    }

    /// The weight precision.
    pub fn precision(&self) -> Precision {
        self.engine.precision
    }

    /// The device.
    pub fn gpu(&self) -> &Arc<Gpu> {
        &self.engine.be
    }

    /// Bounds the attention-score buffer to `elems` f32 values (default 2^28, 1 GiB): a batch
    /// whose `batch * heads * len^2` scores exceed it runs its attention in chunks of
    /// sequences (at least one sequence at a time, whatever the bound).
    pub fn set_max_score_elems(&mut self, elems: usize) {
        self.engine.max_score_elems = elems.max(1);
    }

    /// Runs a padded batch and returns one pooled vector per sequence (`[batch, hidden]`),
    /// L2-normalised when `normalize`: the semantics and the input checks of
    /// [`crate::Encoder::forward`].
    pub fn forward(
        &self,
        batch: &[Vec<u32>],
        pooling: Pooling,
        normalize: bool,
    ) -> Result<Vec<f32>> {
        self.engine.forward(batch, pooling, normalize)
    }
}

/// A model with its GPU engine built: the GPU counterpart of [`crate::Embedder`].
pub struct GpuEmbedder<'m> {
    model: &'m Model,
    encoder: GpuEncoder<'m>,
}

impl std::fmt::Debug for GpuEmbedder<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuEmbedder")
            .field("model", &self.model.name)
            .field("encoder", &self.encoder)
            .finish()
    }
}

impl Model {
    /// An embedder on CUDA device 0 at the given precision (uploads the weights). Errors (never
    /// panics) when CUDA is not available here.
    pub fn gpu_embedder(&self, precision: Precision) -> Result<GpuEmbedder<'_>> {
        self.gpu_embedder_on(open_gpu(0)?, precision)
    }

    /// An embedder on a given device.
    pub fn gpu_embedder_on(&self, gpu: Arc<Gpu>, precision: Precision) -> Result<GpuEmbedder<'_>> {
        Ok(GpuEmbedder {
            model: self,
            encoder: GpuEncoder::new(gpu, &self.config, &self.weights, precision)?,
        })
    }
}

impl<'m> GpuEmbedder<'m> {
    /// The model.
    pub fn model(&self) -> &Model {
        self.model
    }

    /// The engine.
    pub fn encoder(&self) -> &GpuEncoder<'m> {
        &self.encoder
    }

    /// The engine, mutably (e.g. [`GpuEncoder::set_max_score_elems`]).
    pub fn encoder_mut(&mut self) -> &mut GpuEncoder<'m> {
        &mut self.encoder
    }

    /// The embedding size.
    pub fn dim(&self) -> usize {
        self.model.dim()
    }

    /// Embeds texts (prefix added per `kind`): `[texts.len(), dim]` row-major, row `i` for
    /// text `i`, as [`crate::Embedder::embed`]; `batch_size` sequences per batch (128 to 256
    /// suit a GPU).
    pub fn embed(
        &self,
        texts: &[&str],
        kind: Kind,
        batch_size: usize,
        progress: &dyn Fn(usize),
    ) -> Result<Vec<f32>> {
        let ids = self.model.tokenize(texts, kind)?;
        self.embed_ids(&ids, batch_size, progress)
    }

    /// Embeds token id sequences (with special tokens), in order: sorted by length, padded per
    /// batch of `batch_size`, results put back in input order (as
    /// [`crate::Embedder::embed_ids`]). `progress` gets the number of sequences done.
    pub fn embed_ids(
        &self,
        ids: &[Vec<u32>],
        batch_size: usize,
        progress: &dyn Fn(usize),
    ) -> Result<Vec<f32>> {
        let dim = self.dim();
        let n = ids.len();
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by_key(|&i| (ids[i].len(), i));
        let s = &self.model.settings;
        let eng = &self.encoder.engine;
        let batches: Vec<&[usize]> = order.chunks(batch_size.max(1)).collect();
        let prepare = |k: usize| -> Result<Option<HostBatch>> {
            batches
                .get(k)
                .map(|b| {
                    let seqs: Vec<Vec<u32>> = b.iter().map(|&i| ids[i].clone()).collect();
                    eng.prepare(&seqs, s.pooling)
                })
                .transpose()
        };
        let mut out = vec![0.0f32; n * dim];
        let mut done = 0;
        let mut cur = prepare(0)?;
        let mut k = 0;
        while let Some(hb) = cur.take() {
            // The host gathers batch k + 1 while the device runs batch k.
            let (res, next) = rayon::join(
                || self.model.finish(hb.bsz, |norm| eng.run(&hb, norm)),
                || prepare(k + 1),
            );
            let res = res?;
            for (j, &i) in batches[k].iter().enumerate() {
                out[i * dim..(i + 1) * dim].copy_from_slice(&res[j * dim..(j + 1) * dim]);
            }
            done += batches[k].len();
            progress(done);
            cur = next?;
            k += 1;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    //! The orchestration (offsets, strides, chunking, pooling, bf16 rounding) on a host
    //! implementation of [`Backend`] with the semantics of the GPU kernels, against the CPU
    //! engine; the GPU itself is tested in `tests/gpu.rs`.

    use super::*;
    use crate::config::Arch;
    use crate::Encoder;
    use multiret_kernels::Par;

    struct Host;

    impl Backend for Host {
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
                let cpu = Encoder::new(&c, &w, precision);
                let mut eng = Engine::new(Host, &c, &w, precision).unwrap();
                for pooling in [Pooling::Mean, Pooling::Cls] {
                    for normalize in [true, false] {
                        let want = cpu.forward(&seqs, pooling, normalize, Par::Seq).unwrap();
                        // Whole batch; then the attention in chunks of 3 sequences and of 1.
                        for max in [usize::MAX, 3 * c.heads * 32 * 32, 1] {
                            eng.max_score_elems = max;
                            let got = eng.forward(&seqs, pooling, normalize).unwrap();
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
        let eng = Engine::new(Host, &c, &w, Precision::F32).unwrap();
        assert!(eng.forward(&[], Pooling::Mean, true).unwrap().is_empty());
        for bad in [vec![vec![]], vec![vec![0, 99, 2]], vec![vec![4; 40]]] {
            assert!(matches!(
                eng.forward(&bad, Pooling::Mean, true),
                Err(ModelError::Input(_))
            ));
        }
        let mut short = w.clone();
        short.word.pop();
        assert!(matches!(
            Engine::new(Host, &c, &short, Precision::F32),
            Err(ModelError::Input(_))
        ));
    }
}
