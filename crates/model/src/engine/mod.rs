//! The one encoder engine: the batch checks, the embedding gather, the layer loop and the
//! pooling rules are written once here, over a [`Backend`] whose operations are what a layer
//! needs (a linear layer with its fused bias / GELU epilogue, attention, add + LayerNorm,
//! pooling with L2 normalisation). [`cpu`] runs them on multiret-kernels (with the fused AMX
//! bf16 paths), `cuda` (feature `cuda`) on cuBLAS and NVRTC kernels.
//!
//! Three encoders exist in the workspace, and their names keep them apart:
//! - this engine ([`crate::Encoder`] on the CPU, `GpuEncoder` on CUDA): inference;
//! - multiret-train's `TrainableEncoder`: the burn module that training differentiates;
//! - multiret-eval's `TextEmbedder`: the trait through which an evaluation gets embeddings.

pub mod cpu;
#[cfg(feature = "cuda")]
pub mod cuda;

use multiret_kernels::Par;
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

/// A batch of token id sequences (special tokens included), checked against a
/// configuration and padded to its longest sequence. The one definition of what a batch may
/// hold, for every engine and the trainer's token batches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaddedBatch {
    /// The sequences.
    pub seqs: Vec<Vec<u32>>,
    /// The padded length (the longest sequence).
    pub len: usize,
}

impl PaddedBatch {
    /// Checks `seqs` against `config`: errors ([`ModelError::Input`]) on an empty sequence, a
    /// sequence longer than the model's positions, or an id outside the vocabulary. An empty
    /// batch is allowed (`len` 0).
    pub fn new(seqs: &[Vec<u32>], config: &Config) -> Result<PaddedBatch> {
        let len = seqs.iter().map(Vec::len).max().unwrap_or(0);
        if seqs.iter().any(Vec::is_empty) {
            return Err(ModelError::Input(
                "empty token sequence (every input has at least its special tokens)".into(),
            ));
        }
        if len > config.max_tokens() {
            return Err(ModelError::Input(format!(
                "sequence of {len} tokens exceeds the model's {} positions",
                config.max_tokens()
            )));
        }
        if let Some(&bad) = seqs
            .iter()
            .flatten()
            .find(|&&id| id as usize >= config.vocab)
        {
            return Err(ModelError::Input(format!(
                "token id {bad} outside the vocabulary of {}",
                config.vocab
            )));
        }
        Ok(PaddedBatch {
            seqs: seqs.to_vec(),
            len,
        })
    }

    /// Sequences in the batch.
    pub fn size(&self) -> usize {
        self.seqs.len()
    }

    /// Rows of the padded batch (`size * len`).
    pub fn rows(&self) -> usize {
        self.seqs.len() * self.len
    }

    /// The real length of sequence `b`.
    pub fn real(&self, b: usize) -> usize {
        self.seqs[b].len()
    }

    /// The token id and position id of padded row `i` of sequence `b` (padding: the pad id
    /// at the position before the first, as HF models pad).
    pub fn token(&self, b: usize, i: usize, config: &Config) -> (usize, usize) {
        let off = config.position_offset();
        match self.seqs[b].get(i) {
            Some(&id) => (id as usize, off + i),
            None => (config.pad_id as usize, off.saturating_sub(1)),
        }
    }

    /// The key mask of sequence `b`: 0 on its real tokens, `-inf` on the padding.
    pub fn mask_row(&self, b: usize) -> Vec<f32> {
        let n = self.real(b);
        (0..self.len)
            .map(|i| if i < n { 0.0 } else { f32::NEG_INFINITY })
            .collect()
    }

    /// The pooling weights of every padded row (`[size, len]`, zero on padding), for the
    /// modes that are a weighted sum ([`Pooling::token_weights`]); `None` for max pooling.
    pub fn pool_weights(&self, pooling: Pooling) -> Option<Vec<f32>> {
        let mut w = vec![0.0f32; self.rows()];
        for (b, row) in w.chunks_mut(self.len.max(1)).enumerate().take(self.size()) {
            if !pooling.token_weights(&mut row[..self.real(b)]) {
                return None;
            }
        }
        Some(w)
    }

    /// `word + position + type` embedding rows of the padded batch (`[rows, hidden]`), in
    /// parallel when `par` allows and the batch is large.
    pub fn embed(&self, config: &Config, w: &Weights, par: Par) -> Vec<f32> {
        let h = config.hidden;
        let (len, typ) = (self.len, &w.typ[..h]);
        let fill = |(r, row): (usize, &mut [f32])| {
            let (id, p) = self.token(r / len, r % len, config);
            let we = &w.word[id * h..(id + 1) * h];
            let pe = &w.pos[p * h..(p + 1) * h];
            for (j, v) in row.iter_mut().enumerate() {
                *v = we[j] + pe[j] + typ[j];
            }
        };
        let mut x = vec![0.0f32; self.rows() * h];
        if par.degree() > 1 && x.len() >= 1 << 16 {
            x.par_chunks_mut(h).enumerate().for_each(fill);
        } else {
            x.chunks_mut(h).enumerate().for_each(fill);
        }
        x
    }
}

impl PaddedBatch {
    /// Checks the gathered embedding rows `x` (from [`PaddedBatch::embed`]) for NaN and
    /// infinite values. Owned tables were checked when loaded; a memory-mapped word table is
    /// checked here, row by row as batches use it, so that a corrupted file is an error naming
    /// it and the token, never silently different numbers.
    pub fn check_rows(&self, x: &[f32], config: &Config, w: &Weights) -> Result<()> {
        let h = config.hidden.max(1);
        let Some(r) = x
            .chunks(h)
            .position(|row| row.iter().any(|v| !v.is_finite()))
        else {
            return Ok(());
        };
        let len = self.len.max(1);
        let (id, _) = self.token(r / len, r % len, config);
        let file = w
            .word
            .source()
            .map_or("the model".to_string(), |p| p.display().to_string());
        Err(ModelError::Input(format!(
            "{file}: the embedding row of token id {id} holds NaN or infinite values"
        )))
    }
}

/// The operations of one layer, on a device. Buffers hold `rows x cols` row-major f32 values.
pub trait Backend {
    /// An activation buffer.
    type Buf;
    /// A linear layer in the backend's format (`[out, in]` weight and bias).
    type Lin;
    /// LayerNorm parameters.
    type Norm;
    /// Per-batch working memory (masks, score buffers, bf16 activations), made by
    /// [`Backend::workspace`] and reused by every layer of the batch.
    type Work;

    /// Prepares a linear layer: the parts' weights stacked (Q, K, V fuse into one), at the
    /// precision asked. The parts share their input size ([`Weights::check`] holds).
    fn linear(&self, parts: &[&Linear], precision: Precision) -> Result<Self::Lin>;
    /// Prepares LayerNorm parameters.
    fn norm(&self, n: &Norm) -> Result<Self::Norm>;
    /// A buffer of `n` values (contents unspecified).
    fn buffer(&self, n: usize) -> Result<Self::Buf>;
    /// Copies host values into the start of a buffer that holds at least as many.
    fn write(&self, buf: &mut Self::Buf, x: &[f32]) -> Result<()>;
    /// The working memory of a batch, for layers prepared at `precision`.
    fn workspace(
        &self,
        batch: &PaddedBatch,
        config: &Config,
        precision: Precision,
    ) -> Result<Self::Work>;
    /// Whether [`Backend::pool`] supports `pooling`.
    fn supports(&self, pooling: Pooling) -> bool;
    /// `y = gelu?(x W^T + b)` for `rows` rows.
    #[allow(clippy::too_many_arguments)]
    fn apply_linear(
        &self,
        l: &Self::Lin,
        x: &Self::Buf,
        rows: usize,
        y: &mut Self::Buf,
        gelu: bool,
        work: &mut Self::Work,
        par: Par,
    ) -> Result<()>;
    /// `x = LayerNorm(x + residual)` (or of `x` alone) over `rows` rows of `cols`.
    #[allow(clippy::too_many_arguments)]
    fn layer_norm(
        &self,
        x: &mut Self::Buf,
        residual: Option<&Self::Buf>,
        n: &Self::Norm,
        rows: usize,
        cols: usize,
        eps: f32,
    ) -> Result<()>;
    /// Multi-head self-attention of every sequence: `ctx = softmax(Q K^T / sqrt(d) + mask) V`
    /// from the fused `qkv` (`[rows, 3 * hidden]`); rows of padding may hold anything after.
    fn attention(
        &self,
        qkv: &Self::Buf,
        ctx: &mut Self::Buf,
        batch: &PaddedBatch,
        config: &Config,
        work: &mut Self::Work,
        par: Par,
    ) -> Result<()>;
    /// One pooled vector per sequence (`[size, hidden]`, on the host), L2-normalised when
    /// `normalize`.
    fn pool(
        &self,
        x: &Self::Buf,
        batch: &PaddedBatch,
        pooling: Pooling,
        normalize: bool,
        config: &Config,
        work: &mut Self::Work,
    ) -> Result<Vec<f32>>;
}

struct Layer<B: Backend> {
    qkv: B::Lin,
    ao: B::Lin,
    aln: B::Norm,
    fi: B::Lin,
    fo: B::Lin,
    oln: B::Norm,
}

/// A padded batch with its embedding rows gathered on the host: the host half of a forward
/// pass ([`Engine::prepare`]), which a GPU pipeline overlaps with the device half of the
/// previous batch ([`Engine::run`]).
pub struct Prepared {
    batch: PaddedBatch,
    x: Vec<f32>,
}

impl Prepared {
    /// Sequences in the batch.
    pub fn size(&self) -> usize {
        self.batch.size()
    }
}

/// The activation buffers of a forward pass, reused from batch to batch (faer's caller-owned
/// workspace): [`Engine::scratch`] makes an empty one, [`Engine::run_with`] grows it to the
/// largest batch seen, so a run of batches allocates (and faults in) its buffers once.
pub struct Scratch<B: Backend> {
    /// Rows (`batch * len`) the buffers hold.
    rows: usize,
    x: Option<B::Buf>,
    qkv: Option<B::Buf>,
    ctx: Option<B::Buf>,
    tmp: Option<B::Buf>,
    ffn: Option<B::Buf>,
}

impl<B: Backend> Scratch<B> {
    /// f32 values the buffers need for `rows` rows (`batch * len`) of a configuration: the
    /// size of a workspace, as faer's `*_scratch()` functions state theirs.
    pub fn size(config: &Config, rows: usize) -> usize {
        rows * (6 * config.hidden + config.ffn)
    }

    /// Rows the buffers hold now.
    pub fn rows(&self) -> usize {
        self.rows
    }
}

/// The forward pass on a [`Backend`]: the weights prepared once, the embedding tables kept on
/// the host (`'w`: borrowed from the [`Weights`], or owned).
pub struct Engine<'w, B: Backend> {
    be: B,
    cfg: Config,
    precision: Precision,
    tables: std::borrow::Cow<'w, Weights>,
    emb_ln: B::Norm,
    layers: Vec<Layer<B>>,
}

impl<'w, B: Backend> Engine<'w, B> {
    /// Checks the weights against the configuration ([`Weights::check`]) and prepares them on
    /// the backend. `tables` holds the host embedding tables (its layers are not used after
    /// preparation; pass [`Weights::tables_only`] to own only the tables).
    pub fn new(
        be: B,
        cfg: &Config,
        w: &Weights,
        tables: std::borrow::Cow<'w, Weights>,
        precision: Precision,
    ) -> Result<Self> {
        w.check(cfg)?;
        let mut layers = Vec::with_capacity(w.layers.len());
        for l in &w.layers {
            layers.push(Layer {
                qkv: be.linear(&[&l.q, &l.k, &l.v], precision)?,
                ao: be.linear(&[&l.ao], precision)?,
                aln: be.norm(&l.aln)?,
                fi: be.linear(&[&l.fi], precision)?,
                fo: be.linear(&[&l.fo], precision)?,
                oln: be.norm(&l.oln)?,
            });
        }
        let emb_ln = be.norm(&w.emb_ln)?;
        Ok(Engine {
            be,
            cfg: cfg.clone(),
            precision,
            tables,
            emb_ln,
            layers,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The weight precision.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// The backend.
    pub fn backend(&self) -> &B {
        &self.be
    }

    /// The backend, mutably (its settings).
    pub fn backend_mut(&mut self) -> &mut B {
        &mut self.be
    }

    /// The host half of a forward pass: the checks of [`PaddedBatch::new`] and of the pooling
    /// mode, then the embedding gather.
    pub fn prepare(&self, seqs: &[Vec<u32>], pooling: Pooling, par: Par) -> Result<Prepared> {
        let batch = PaddedBatch::new(seqs, &self.cfg)?;
        if !self.be.supports(pooling) {
            return Err(ModelError::Input(format!(
                "{} pooling is not supported on this engine (use the CPU engine)",
                pooling.st_name()
            )));
        }
        let x = batch.embed(&self.cfg, &self.tables, par);
        batch.check_rows(&x, &self.cfg, &self.tables)?;
        Ok(Prepared { batch, x })
    }

    /// Grows a workspace to hold `rows` rows (`batch * len`); a larger one is left as it is.
    /// Reserving the largest batch of a run up front makes every batch reuse one allocation.
    pub fn reserve(&self, s: &mut Scratch<B>, rows: usize) -> Result<()> {
        if s.rows >= rows && s.x.is_some() {
            return Ok(());
        }
        let (be, h) = (&self.be, self.cfg.hidden);
        s.x = Some(be.buffer(rows * h)?);
        s.qkv = Some(be.buffer(rows * 3 * h)?);
        s.ctx = Some(be.buffer(rows * h)?);
        s.tmp = Some(be.buffer(rows * h)?);
        s.ffn = Some(be.buffer(rows * self.cfg.ffn)?);
        s.rows = rows;
        Ok(())
    }

    /// An empty workspace for [`Engine::run_with`].
    pub fn scratch(&self) -> Scratch<B> {
        Scratch {
            rows: 0,
            x: None,
            qkv: None,
            ctx: None,
            tmp: None,
            ffn: None,
        }
    }

    /// The device half of a forward pass: one pooled vector per sequence (`[size, hidden]`),
    /// L2-normalised when `normalize`.
    pub fn run(
        &self,
        p: &Prepared,
        pooling: Pooling,
        normalize: bool,
        par: Par,
    ) -> Result<Vec<f32>> {
        self.run_with(p, pooling, normalize, par, &mut self.scratch())
    }

    /// [`Engine::run`] in a caller's workspace, grown when this batch needs more rows.
    pub fn run_with(
        &self,
        p: &Prepared,
        pooling: Pooling,
        normalize: bool,
        par: Par,
        s: &mut Scratch<B>,
    ) -> Result<Vec<f32>> {
        let (be, c, batch) = (&self.be, &self.cfg, &p.batch);
        if batch.size() == 0 {
            return Ok(Vec::new());
        }
        let (h, eps, t) = (c.hidden, c.layer_norm_eps, batch.rows());
        self.reserve(s, t)?;
        let missing = || ModelError::Input("internal error: an unallocated workspace".into());
        let mut work = be.workspace(batch, c, self.precision)?;
        let x = s.x.as_mut().ok_or_else(missing)?;
        be.write(x, &p.x)?;
        be.layer_norm(x, None, &self.emb_ln, t, h, eps)?;
        let (mut x, mut tmp) = (
            s.x.take().ok_or_else(missing)?,
            s.tmp.take().ok_or_else(missing)?,
        );
        let (qkv, ctx, ffn) = (
            s.qkv.as_mut().ok_or_else(missing)?,
            s.ctx.as_mut().ok_or_else(missing)?,
            s.ffn.as_mut().ok_or_else(missing)?,
        );
        let mut layers = || -> Result<()> {
            for l in &self.layers {
                be.apply_linear(&l.qkv, &x, t, qkv, false, &mut work, par)?;
                be.attention(qkv, ctx, batch, c, &mut work, par)?;
                be.apply_linear(&l.ao, ctx, t, &mut tmp, false, &mut work, par)?;
                be.layer_norm(&mut tmp, Some(&x), &l.aln, t, h, eps)?;
                std::mem::swap(&mut x, &mut tmp);
                be.apply_linear(&l.fi, &x, t, ffn, true, &mut work, par)?;
                be.apply_linear(&l.fo, ffn, t, &mut tmp, false, &mut work, par)?;
                be.layer_norm(&mut tmp, Some(&x), &l.oln, t, h, eps)?;
                std::mem::swap(&mut x, &mut tmp);
            }
            Ok(())
        };
        let done = layers();
        let out = done.and_then(|()| be.pool(&x, batch, pooling, normalize, c, &mut work));
        // The buffers go back to the workspace whatever happened.
        s.x = Some(x);
        s.tmp = Some(tmp);
        out
    }

    /// Runs a batch: one pooled vector per sequence (`[batch, hidden]`), L2-normalised when
    /// `normalize`. Errors on an empty sequence, a sequence longer than the model's
    /// positions, an id outside the vocabulary, or a pooling mode the backend lacks.
    pub fn forward(
        &self,
        seqs: &[Vec<u32>],
        pooling: Pooling,
        normalize: bool,
        par: Par,
    ) -> Result<Vec<f32>> {
        self.forward_with(seqs, pooling, normalize, par, &mut self.scratch())
    }

    /// [`Engine::forward`] in a caller's workspace (see [`Scratch`]).
    pub fn forward_with(
        &self,
        seqs: &[Vec<u32>],
        pooling: Pooling,
        normalize: bool,
        par: Par,
        scratch: &mut Scratch<B>,
    ) -> Result<Vec<f32>> {
        let p = self.prepare(seqs, pooling, par)?;
        self.run_with(&p, pooling, normalize, par, scratch)
    }
}
