//! The CPU backend of the engine, on multiret-kernels: the linear layers through the GEMM with
//! the bias (and GELU) fused into its epilogue, f32 weights or bf16 weights on AMX / AVX-512
//! BF16 with f32 accumulation; attention per sequence over its real rows; and [`Encoder`],
//! the engine on it.

use std::borrow::Cow;

use half::bf16;
use multiret_kernels::gemm::{gemm_f32, gemm_f32_bf16, Epilogue};
use multiret_kernels::norm::{add_layer_norm_rows, l2_normalize_rows, layer_norm_rows};
use multiret_kernels::softmax::softmax_rows;
use multiret_kernels::{MatMut, MatRef, Par};
use rayon::prelude::*;

use super::{Backend, Engine, PaddedBatch, Precision, Scratch};
use crate::config::{Config, Pooling};
use crate::error::Result;
use crate::weights::{Linear, Norm, Weights};

/// Linear weights on the CPU.
pub enum CpuMat {
    /// f32, `[out, in]`.
    F32(Vec<f32>),
    /// bf16, `[out, in]`.
    Bf16(Vec<bf16>),
}

/// A linear layer on the CPU.
pub struct CpuLinear {
    out: usize,
    inp: usize,
    w: CpuMat,
    b: Vec<f32>,
}

/// The CPU backend (stateless: parallelism comes with each call).
#[derive(Debug, Clone, Copy, Default)]
pub struct Cpu;

/// The per-batch working memory of the CPU backend: the key mask of each sequence.
pub struct CpuWork {
    masks: Vec<Vec<f32>>,
}

impl Backend for Cpu {
    type Buf = Vec<f32>;
    type Lin = CpuLinear;
    type Norm = Norm;
    type Work = CpuWork;

    fn linear(&self, parts: &[&Linear], precision: Precision) -> Result<CpuLinear> {
        let inp = parts[0].inp;
        let out = parts.iter().map(|p| p.out).sum();
        let w: Vec<f32> = parts.iter().flat_map(|p| p.w.iter().copied()).collect();
        let b: Vec<f32> = parts.iter().flat_map(|p| p.b.iter().copied()).collect();
        let w = match precision {
            Precision::F32 => CpuMat::F32(w),
            Precision::Bf16 => CpuMat::Bf16(w.iter().map(|&x| bf16::from_f32(x)).collect()),
        };
        Ok(CpuLinear { out, inp, w, b })
    }

    fn norm(&self, n: &Norm) -> Result<Norm> {
        Ok(n.clone())
    }

    fn buffer(&self, n: usize) -> Result<Vec<f32>> {
        Ok(vec![0.0; n])
    }

    fn write(&self, buf: &mut Vec<f32>, x: &[f32]) -> Result<()> {
        buf[..x.len()].copy_from_slice(x);
        Ok(())
    }

    fn workspace(
        &self,
        batch: &PaddedBatch,
        _config: &Config,
        _precision: Precision,
    ) -> Result<CpuWork> {
        Ok(CpuWork {
            masks: (0..batch.size()).map(|b| batch.mask_row(b)).collect(),
        })
    }

    fn supports(&self, _pooling: Pooling) -> bool {
        true
    }

    fn apply_linear(
        &self,
        l: &CpuLinear,
        x: &Vec<f32>,
        rows: usize,
        y: &mut Vec<f32>,
        gelu: bool,
        _work: &mut CpuWork,
        par: Par,
    ) -> Result<()> {
        let a = MatRef::row_major(&x[..rows * l.inp], rows, l.inp)?;
        let c = MatMut::row_major(&mut y[..rows * l.out], rows, l.out)?;
        let epi = if gelu {
            Epilogue::BiasGelu(&l.b)
        } else {
            Epilogue::Bias(&l.b)
        };
        match &l.w {
            CpuMat::F32(w) => gemm_f32(
                1.0,
                a,
                MatRef::row_major(w, l.out, l.inp)?.t(),
                0.0,
                c,
                epi,
                par,
            )?,
            CpuMat::Bf16(w) => gemm_f32_bf16(
                1.0,
                a,
                MatRef::row_major(w, l.out, l.inp)?.t(),
                0.0,
                c,
                epi,
                par,
            )?,
        }
        Ok(())
    }

    fn layer_norm(
        &self,
        x: &mut Vec<f32>,
        residual: Option<&Vec<f32>>,
        n: &Norm,
        rows: usize,
        cols: usize,
        eps: f32,
    ) -> Result<()> {
        let xs = &mut x[..rows * cols];
        match residual {
            Some(r) => add_layer_norm_rows(xs, &r[..rows * cols], &n.w, &n.b, eps)?,
            None => layer_norm_rows(xs, &n.w, &n.b, eps)?,
        }
        Ok(())
    }

    fn attention(
        &self,
        qkv: &Vec<f32>,
        ctx: &mut Vec<f32>,
        batch: &PaddedBatch,
        c: &Config,
        work: &mut CpuWork,
        par: Par,
    ) -> Result<()> {
        let (h, d, len) = (c.hidden, c.head_dim(), batch.len);
        let scale = 1.0 / (d as f32).sqrt();
        let masks = &work.masks;
        let run = |b: usize, ctx_b: &mut [f32]| -> Result<()> {
            let mut scores = vec![0.0f32; len * len];
            let base = &qkv[b * len * 3 * h..(b + 1) * len * 3 * h];
            // Only the rows of real tokens matter; padded query rows are skipped.
            let rows = batch.real(b);
            for head in 0..c.heads {
                let q = MatRef::new(&base[head * d..], rows, d, 3 * h, 1)?;
                let k = MatRef::new(&base[h + head * d..], len, d, 3 * h, 1)?;
                let v = MatRef::new(&base[2 * h + head * d..], len, d, 3 * h, 1)?;
                let s = MatMut::row_major(&mut scores[..rows * len], rows, len)?;
                gemm_f32(1.0, q, k.t(), 0.0, s, Epilogue::None, Par::Seq)?;
                softmax_rows(&mut scores[..rows * len], len, scale, Some(&masks[b]))?;
                let p = MatRef::row_major(&scores[..rows * len], rows, len)?;
                let o = MatMut::new(&mut ctx_b[head * d..], rows, d, h, 1)?;
                gemm_f32(1.0, p, v, 0.0, o, Epilogue::None, Par::Seq)?;
            }
            Ok(())
        };
        let ctx = &mut ctx[..batch.rows() * h];
        if par.degree() > 1 {
            ctx.par_chunks_mut(len * h)
                .enumerate()
                .try_for_each(|(b, cb)| run(b, cb))
        } else {
            ctx.chunks_mut(len * h)
                .enumerate()
                .try_for_each(|(b, cb)| run(b, cb))
        }
    }

    fn pool(
        &self,
        x: &Vec<f32>,
        batch: &PaddedBatch,
        pooling: Pooling,
        normalize: bool,
        c: &Config,
        _work: &mut CpuWork,
    ) -> Result<Vec<f32>> {
        let (h, len) = (c.hidden, batch.len);
        let mut out = vec![0.0f32; batch.size() * h];
        let mut weights = Vec::new();
        for (b, dst) in out.chunks_mut(h).enumerate() {
            let n = batch.real(b);
            let rows = &x[b * len * h..(b * len + n) * h];
            weights.resize(n, 0.0);
            if pooling.token_weights(&mut weights) {
                for (row, &w) in rows.chunks_exact(h).zip(&weights) {
                    if w != 0.0 {
                        for (d, r) in dst.iter_mut().zip(row) {
                            *d += w * r;
                        }
                    }
                }
            } else {
                // Max pooling: the elementwise maximum over the real tokens.
                dst.fill(f32::NEG_INFINITY);
                for row in rows.chunks_exact(h) {
                    for (d, &r) in dst.iter_mut().zip(row) {
                        *d = d.max(r);
                    }
                }
            }
        }
        if normalize {
            l2_normalize_rows(&mut out, h)?;
        }
        Ok(out)
    }
}

/// The inference engine on the CPU: embeddings, post-LN self-attention and FFN layers on the
/// kernels, pooling. f32 weights, or bf16 weights with f32 activations and accumulation.
pub struct Encoder {
    engine: Engine<'static, Cpu>,
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder")
            .field("config", self.engine.config())
            .field("precision", &self.engine.precision())
            .finish()
    }
}

impl Encoder {
    /// Builds the engine (fusing Q, K and V; converting to bf16 when asked). Errors when the
    /// weights do not fit the configuration ([`Weights::check`]).
    pub fn new(cfg: &Config, w: &Weights, precision: Precision) -> Result<Encoder> {
        let tables = Cow::Owned(w.tables_only());
        Ok(Encoder {
            engine: Engine::new(Cpu, cfg, w, tables, precision)?,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        self.engine.config()
    }

    /// The weight precision.
    pub fn precision(&self) -> Precision {
        self.engine.precision()
    }

    /// Runs a padded batch and returns one pooled vector per sequence (`[batch, hidden]`),
    /// L2-normalised when `normalize` (see [`Engine::forward`]).
    pub fn forward(
        &self,
        batch: &[Vec<u32>],
        pooling: Pooling,
        normalize: bool,
        par: Par,
    ) -> Result<Vec<f32>> {
        self.engine.forward(batch, pooling, normalize, par)
    }

    /// A workspace for [`Encoder::forward_with`] that holds batches of up to `rows` rows
    /// (`batch * len`) without growing.
    pub fn scratch(&self, rows: usize) -> Result<Scratch<Cpu>> {
        let mut s = self.engine.scratch();
        self.engine.reserve(&mut s, rows)?;
        Ok(s)
    }

    /// [`Encoder::forward`] in a caller's workspace, reused from batch to batch.
    pub fn forward_with(
        &self,
        batch: &[Vec<u32>],
        pooling: Pooling,
        normalize: bool,
        par: Par,
        scratch: &mut Scratch<Cpu>,
    ) -> Result<Vec<f32>> {
        self.engine
            .forward_with(batch, pooling, normalize, par, scratch)
    }
}
