//! The inference engine: embeddings, post-LN self-attention and FFN layers on the kernels,
//! pooling. f32 weights, or bf16 weights with f32 activations and accumulation.

use half::bf16;
use multiret_kernels::gemm::{gemm_f32, gemm_f32_bf16, Epilogue};
use multiret_kernels::norm::{add_layer_norm_rows, l2_normalize_rows, layer_norm_rows};
use multiret_kernels::softmax::softmax_rows;
use multiret_kernels::{MatMut, MatRef, Par};
use rayon::prelude::*;

use crate::config::{Config, Pooling};
use crate::error::{ModelError, Result};
use crate::weights::{Linear, Norm, Weights};

/// Weight precision of the linear layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// f32 weights and arithmetic.
    #[default]
    F32,
    /// bf16 weights; activations rounded to bf16 at each linear layer's input; f32
    /// accumulation, attention, LayerNorm and softmax.
    Bf16,
}

enum Mat {
    F32(Vec<f32>),
    Bf16(Vec<bf16>),
}

struct Lin {
    out: usize,
    inp: usize,
    w: Mat,
    b: Vec<f32>,
}

impl Lin {
    fn new(parts: &[&Linear], precision: Precision) -> Lin {
        let inp = parts[0].inp;
        let out = parts.iter().map(|p| p.out).sum();
        let w: Vec<f32> = parts.iter().flat_map(|p| p.w.iter().copied()).collect();
        let b: Vec<f32> = parts.iter().flat_map(|p| p.b.iter().copied()).collect();
        let w = match precision {
            Precision::F32 => Mat::F32(w),
            Precision::Bf16 => Mat::Bf16(w.iter().map(|&x| bf16::from_f32(x)).collect()),
        };
        Lin { out, inp, w, b }
    }

    /// `y = epi(x W^T + b)` for `rows` rows.
    fn forward(&self, x: &[f32], rows: usize, y: &mut [f32], gelu: bool, par: Par) -> Result<()> {
        let a = MatRef::row_major(&x[..rows * self.inp], rows, self.inp)?;
        let c = MatMut::row_major(&mut y[..rows * self.out], rows, self.out)?;
        let epi = if gelu {
            Epilogue::BiasGelu(&self.b)
        } else {
            Epilogue::Bias(&self.b)
        };
        match &self.w {
            Mat::F32(w) => gemm_f32(
                1.0,
                a,
                MatRef::row_major(w, self.out, self.inp)?.t(),
                0.0,
                c,
                epi,
                par,
            )?,
            Mat::Bf16(w) => gemm_f32_bf16(
                1.0,
                a,
                MatRef::row_major(w, self.out, self.inp)?.t(),
                0.0,
                c,
                epi,
                par,
            )?,
        }
        Ok(())
    }
}

struct EncLayer {
    qkv: Lin,
    ao: Lin,
    aln: Norm,
    fi: Lin,
    fo: Lin,
    oln: Norm,
}

/// A ready-to-run encoder.
pub struct Encoder {
    cfg: Config,
    word: Vec<f32>,
    pos: Vec<f32>,
    typ: Vec<f32>,
    emb_ln: Norm,
    layers: Vec<EncLayer>,
    precision: Precision,
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder")
            .field("config", &self.cfg)
            .field("precision", &self.precision)
            .finish()
    }
}

impl Encoder {
    /// Builds the engine (fusing Q, K and V; converting to bf16 when asked).
    pub fn new(cfg: &Config, w: &Weights, precision: Precision) -> Encoder {
        let layers = w
            .layers
            .iter()
            .map(|l| EncLayer {
                qkv: Lin::new(&[&l.q, &l.k, &l.v], precision),
                ao: Lin::new(&[&l.ao], precision),
                aln: l.aln.clone(),
                fi: Lin::new(&[&l.fi], precision),
                fo: Lin::new(&[&l.fo], precision),
                oln: l.oln.clone(),
            })
            .collect();
        Encoder {
            cfg: cfg.clone(),
            word: w.word.clone(),
            pos: w.pos.clone(),
            typ: w.typ.clone(),
            emb_ln: w.emb_ln.clone(),
            layers,
            precision,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The weight precision.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Runs a padded batch and returns one pooled vector per sequence (`[batch, hidden]`),
    /// L2-normalised when `normalize`.
    pub fn forward(
        &self,
        batch: &[Vec<u32>],
        pooling: Pooling,
        normalize: bool,
        par: Par,
    ) -> Result<Vec<f32>> {
        let c = &self.cfg;
        let h = c.hidden;
        let bsz = batch.len();
        if bsz == 0 {
            return Ok(Vec::new());
        }
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
        let mut x = vec![0.0f32; t * h];
        let off = c.position_offset();
        for (b, ids) in batch.iter().enumerate() {
            for i in 0..len {
                let row = &mut x[(b * len + i) * h..(b * len + i + 1) * h];
                let (id, p) = match ids.get(i) {
                    Some(&id) => (id as usize, off + i),
                    None => (c.pad_id as usize, off.saturating_sub(1)),
                };
                let we = &self.word[id * h..(id + 1) * h];
                let pe = &self.pos[p * h..(p + 1) * h];
                let te = &self.typ[..h];
                for j in 0..h {
                    row[j] = we[j] + pe[j] + te[j];
                }
            }
        }
        layer_norm_rows(&mut x, &self.emb_ln.w, &self.emb_ln.b, c.layer_norm_eps)?;
        let masks: Vec<Vec<f32>> = batch
            .iter()
            .map(|ids| {
                (0..len)
                    .map(|i| {
                        if i < ids.len() {
                            0.0
                        } else {
                            f32::NEG_INFINITY
                        }
                    })
                    .collect()
            })
            .collect();
        let mut qkv = vec![0.0f32; t * 3 * h];
        let mut ctx = vec![0.0f32; t * h];
        let mut tmp = vec![0.0f32; t * h];
        let mut ffn = vec![0.0f32; t * c.ffn];
        for layer in &self.layers {
            layer.qkv.forward(&x, t, &mut qkv, false, par)?;
            self.attention(&qkv, &mut ctx, bsz, len, &masks, par)?;
            layer.ao.forward(&ctx, t, &mut tmp, false, par)?;
            add_layer_norm_rows(&mut tmp, &x, &layer.aln.w, &layer.aln.b, c.layer_norm_eps)?;
            std::mem::swap(&mut x, &mut tmp);
            layer.fi.forward(&x, t, &mut ffn, true, par)?;
            layer.fo.forward(&ffn, t, &mut tmp, false, par)?;
            add_layer_norm_rows(&mut tmp, &x, &layer.oln.w, &layer.oln.b, c.layer_norm_eps)?;
            std::mem::swap(&mut x, &mut tmp);
        }
        let mut out = vec![0.0f32; bsz * h];
        let mut weights = Vec::new();
        for (b, ids) in batch.iter().enumerate() {
            let dst = &mut out[b * h..(b + 1) * h];
            let rows = &x[b * len * h..(b * len + ids.len()) * h];
            weights.resize(ids.len(), 0.0);
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

    /// Multi-head self-attention of every sequence: `ctx = softmax(Q K^T / sqrt(d) + mask) V`.
    fn attention(
        &self,
        qkv: &[f32],
        ctx: &mut [f32],
        bsz: usize,
        len: usize,
        masks: &[Vec<f32>],
        par: Par,
    ) -> Result<()> {
        let c = &self.cfg;
        let (h, d) = (c.hidden, c.head_dim());
        let scale = 1.0 / (d as f32).sqrt();
        let run = |b: usize, ctx_b: &mut [f32]| -> Result<()> {
            let mut scores = vec![0.0f32; len * len];
            let base = &qkv[b * len * 3 * h..(b + 1) * len * 3 * h];
            // Only the rows of real tokens matter; padded query rows are skipped.
            let rows = masks[b].iter().take_while(|&&m| m == 0.0).count();
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
        let ctx = &mut ctx[..bsz * len * h];
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
}
