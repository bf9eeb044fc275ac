//! The trainable encoder: the architecture of `multiret-model` (BERT / XLM-R, post-LN,
//! erf GELU, mean or CLS pooling, L2 normalisation) as a burn module.
//!
//! Hidden states are kept as `[tokens, hidden]` rows (`tokens = batch * len`), as the inference
//! engine does; only attention reshapes to `[batch, heads, len, head_dim]`. Linear weights are
//! stored `[in, out]` (HF's `[out, in]` transposed) so that a layer is one `x · W` product.
//! Parameter ids are fixed (`1..=n` in [`tensor_specs`] order), so an optimiser state saved by
//! one process applies to the same encoder rebuilt by another.

use burn::module::{Module, Param, ParamId};
use burn::prelude::*;
use burn::tensor::activation;
use multiret_model::config::{Config, EncodeSettings, Pooling};
use multiret_model::weights::{tensor_specs, Layer, Linear, Norm, Weights};

use crate::error::{Result, TrainError};

/// A dense layer `y = x W + b` with `W` stored `[in, out]`.
#[derive(Module, Debug)]
pub struct Dense<B: Backend> {
    /// `[in, out]`.
    pub w: Param<Tensor<B, 2>>,
    /// `[out]`.
    pub b: Param<Tensor<B, 1>>,
}

impl<B: Backend> Dense<B> {
    /// `act(x W + b)`, GELU when `gelu`; on multiret-kernels where `meta` allows it.
    fn forward(&self, x: Tensor<B, 2>, gelu: bool, meta: &EncoderMeta) -> Tensor<B, 2> {
        crate::fast::dense(
            x,
            self.w.val(),
            self.b.val(),
            gelu,
            meta.kernels.then_some(if meta.bf16 {
                crate::fast::Matmul::Bf16
            } else {
                crate::fast::Matmul::F32
            }),
            meta.fused_gelu,
        )
    }
}

/// LayerNorm parameters.
#[derive(Module, Debug)]
pub struct LayerNormP<B: Backend> {
    /// Gamma, `[hidden]`.
    pub w: Param<Tensor<B, 1>>,
    /// Beta, `[hidden]`.
    pub b: Param<Tensor<B, 1>>,
}

impl<B: Backend> LayerNormP<B> {
    /// LayerNorm of `a + r`; one fused operation on burn-flex when `kernels`.
    fn forward(&self, a: Tensor<B, 2>, r: Tensor<B, 2>, eps: f32, kernels: bool) -> Tensor<B, 2> {
        crate::fast::add_layer_norm(a, r, self.w.val(), self.b.val(), eps, kernels)
    }
}

/// One post-LN encoder layer.
#[derive(Module, Debug)]
pub struct EncoderLayer<B: Backend> {
    /// Query projection.
    pub q: Dense<B>,
    /// Key projection.
    pub k: Dense<B>,
    /// Value projection.
    pub v: Dense<B>,
    /// Attention output projection.
    pub ao: Dense<B>,
    /// LayerNorm after attention.
    pub aln: LayerNormP<B>,
    /// FFN input projection.
    pub fi: Dense<B>,
    /// FFN output projection.
    pub fo: Dense<B>,
    /// LayerNorm after the FFN.
    pub oln: LayerNormP<B>,
}

/// Sizes and settings the forward pass needs (not parameters).
#[derive(Debug, Clone)]
pub struct EncoderMeta {
    /// Architecture sizes.
    pub config: Config,
    /// Pooling.
    pub pooling: Pooling,
    /// Whether embeddings are L2-normalised.
    pub normalize: bool,
    /// Whether the backend's own GELU op is the exact erf form in both directions (burn-flex);
    /// otherwise GELU is composed from `erf` so that autodiff differentiates the erf form
    /// (burn's default `gelu_backward`, used by burn-ndarray and the CubeCL backends, is the
    /// derivative of the tanh approximation).
    pub fused_gelu: bool,
    /// Whether dense layers run on multiret-kernels when the backend is burn-flex (the
    /// default), and whether in f32 or mixed bf16 precision. Off, they are composed from burn
    /// ops.
    pub kernels: bool,
    /// Mixed precision in the kernels' dense layers: bf16 products with f32 accumulation,
    /// f32 parameters, activations and gradients.
    pub bf16: bool,
}

/// The encoder as a burn module.
#[derive(Module, Debug)]
pub struct TrainableEncoder<B: Backend> {
    /// Word embeddings `[vocab, hidden]`.
    pub word: Param<Tensor<B, 2>>,
    /// Position embeddings `[max_pos, hidden]`.
    pub pos: Param<Tensor<B, 2>>,
    /// Token-type embeddings `[type_vocab, hidden]`.
    pub typ: Param<Tensor<B, 2>>,
    /// Embedding LayerNorm.
    pub emb_ln: LayerNormP<B>,
    /// The layers.
    pub layers: Vec<EncoderLayer<B>>,
    /// Sizes and settings.
    #[module(skip)]
    pub meta: EncoderMeta,
}

/// A batch of token sequences, as tensors on a device, in one of two layouts:
///
/// - **packed** (burn-flex with the kernels): the real tokens only, sequence after sequence,
///   `rows = tokens`; attention runs per sequence over its real length;
/// - **padded** (every other backend): each sequence padded to the longest,
///   `rows = batch * len`, with an additive key mask.
#[derive(Debug, Clone)]
pub struct TokenBatch<B: Backend> {
    /// Sequences.
    pub batch: usize,
    /// The longest sequence.
    pub len: usize,
    /// Real (non-padding) tokens.
    pub tokens: usize,
    /// Rows of the hidden states: `tokens` packed, `batch * len` padded.
    pub rows: usize,
    /// Token ids `[rows]` (padding: `pad_id`).
    pub ids: Tensor<B, 1, Int>,
    /// Position ids `[rows]`.
    pub positions: Tensor<B, 1, Int>,
    /// Padded layout: the additive attention mask `[batch, 1, 1, len]`, 0 on real keys and
    /// -1e9 on padding. `None` when packed.
    pub mask: Option<Tensor<B, 4>>,
    /// Packed layout: the sequences' lengths and the heads. `None` when padded.
    pub(crate) packed: Option<crate::fast::Packed>,
    /// Pooling weights `[batch, rows]`: row `b` holds sequence `b`'s token weights (1/n on
    /// its real tokens for mean pooling, one-hot on its first token for CLS) at its rows.
    pub pool: Tensor<B, 2>,
}

/// A large negative added to padded keys: `exp` of it underflows to exactly 0, like -inf,
/// without the NaN risks of infinities in the backward pass.
const MASK_NEG: f32 = -1e9;

impl<B: Backend> TokenBatch<B> {
    /// Lays out `seqs` (token ids with special tokens), packed or padded to their longest
    /// length. Packing needs burn-flex: on another backend `packed` is ignored.
    ///
    /// Errors on an empty batch, an empty sequence, a sequence longer than the model's
    /// positions, or an id outside the vocabulary.
    pub fn new(
        seqs: &[Vec<u32>],
        config: &Config,
        pooling: Pooling,
        packed: bool,
        device: &B::Device,
    ) -> Result<Self> {
        let bsz = seqs.len();
        if bsz == 0 {
            return Err(TrainError::Config("empty batch".into()));
        }
        // The engine's batch checks (empty sequence, too long, id outside the vocabulary).
        let padded = multiret_model::engine::PaddedBatch::new(seqs, config)
            .map_err(|e| TrainError::Config(e.to_string()))?;
        let packed = packed && crate::fast::is_flex::<B>();
        let len = padded.len;
        let tokens: usize = seqs.iter().map(Vec::len).sum();
        let (rows, width) = if packed {
            (tokens, tokens)
        } else {
            (bsz * len, len)
        };
        let mut ids = Vec::with_capacity(rows);
        let mut pos = Vec::with_capacity(rows);
        let mut mask = Vec::with_capacity(if packed { 0 } else { bsz * len });
        let mut pool = vec![0.0f32; bsz * rows];
        let mut start = 0;
        for (b, s) in seqs.iter().enumerate() {
            let n = s.len();
            let real = if packed { n } else { len };
            for i in 0..real {
                let (id, p) = padded.token(b, i, config);
                ids.push(id as i64);
                pos.push(p as i64);
                if !packed {
                    mask.push(if i < n { 0.0f32 } else { MASK_NEG });
                }
            }
            let at = b * rows + start;
            if !pooling.token_weights(&mut pool[at..at + n]) {
                return Err(TrainError::Config(format!(
                    "{} pooling cannot be trained (a weighted sum of token states is needed: \
                     mean, cls, mean_sqrt_len_tokens, weightedmean or lasttoken)",
                    pooling.st_name()
                )));
            }
            start += if packed { n } else { width };
        }
        Ok(TokenBatch {
            batch: bsz,
            len,
            tokens,
            rows,
            ids: Tensor::from_data(TensorData::new(ids, [rows]), device),
            positions: Tensor::from_data(TensorData::new(pos, [rows]), device),
            mask: (!packed)
                .then(|| Tensor::from_data(TensorData::new(mask, [bsz, 1, 1, len]), device)),
            packed: packed.then(|| crate::fast::Packed {
                lens: seqs.iter().map(Vec::len).collect(),
                heads: config.heads,
                head_dim: config.head_dim(),
            }),
            pool: Tensor::from_data(TensorData::new(pool, [bsz, rows]), device),
        })
    }

    /// Whether the batch is packed (see [`TokenBatch`]).
    pub fn is_packed(&self) -> bool {
        self.packed.is_some()
    }
}

fn tensor2<B: Backend>(data: &[f32], rows: usize, cols: usize, device: &B::Device) -> Tensor<B, 2> {
    Tensor::from_data(TensorData::new(data.to_vec(), [rows, cols]), device)
}

fn tensor1<B: Backend>(data: &[f32], device: &B::Device) -> Tensor<B, 1> {
    Tensor::from_data(TensorData::new(data.to_vec(), [data.len()]), device)
}

/// Hands out the fixed parameter ids.
struct Ids(u64);

impl Ids {
    fn param<B: Backend, const D: usize>(&mut self, t: Tensor<B, D>) -> Param<Tensor<B, D>> {
        self.0 += 1;
        Param::initialized(ParamId::from(self.0), t.require_grad())
    }
}

fn read<B: Backend, const D: usize>(p: &Param<Tensor<B, D>>) -> Vec<f32> {
    p.val()
        .into_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .expect("f32 tensor data")
}

impl<B: Backend> TrainableEncoder<B> {
    /// Builds the encoder from engine weights, with E5 settings (mean pooling, normalised);
    /// see [`TrainableEncoder::with_settings`]. Every parameter requires gradients.
    pub fn from_weights(config: &Config, weights: &Weights, device: &B::Device) -> Result<Self> {
        // The engine's check of every size (one definition for every encoder).
        weights
            .check(config)
            .map_err(|e| TrainError::Config(e.to_string()))?;
        let h = config.hidden;
        let mut ids = Ids(0);
        // The order of `ids.param` calls is `tensor_specs` order.
        let word = ids.param(tensor2(&weights.word, config.vocab, h, device));
        let pos = ids.param(tensor2(&weights.pos, config.max_pos, h, device));
        let typ = ids.param(tensor2(&weights.typ, config.type_vocab, h, device));
        let norm = |ids: &mut Ids, n: &Norm| LayerNormP {
            w: ids.param(tensor1(&n.w, device)),
            b: ids.param(tensor1(&n.b, device)),
        };
        let emb_ln = norm(&mut ids, &weights.emb_ln);
        let dense = |ids: &mut Ids, l: &Linear| Dense {
            w: ids.param(tensor2(
                &crate::fast::transpose(&l.w, l.out, l.inp, 0.0),
                l.inp,
                l.out,
                device,
            )),
            b: ids.param(tensor1(&l.b, device)),
        };
        let mut layers = Vec::with_capacity(config.layers);
        for l in &weights.layers {
            let q = dense(&mut ids, &l.q);
            let k = dense(&mut ids, &l.k);
            let v = dense(&mut ids, &l.v);
            let ao = dense(&mut ids, &l.ao);
            let aln = norm(&mut ids, &l.aln);
            let fi = dense(&mut ids, &l.fi);
            let fo = dense(&mut ids, &l.fo);
            let oln = norm(&mut ids, &l.oln);
            layers.push(EncoderLayer {
                q,
                k,
                v,
                ao,
                aln,
                fi,
                fo,
                oln,
            });
        }
        debug_assert_eq!(ids.0 as usize, tensor_specs(config).len());
        Ok(TrainableEncoder {
            word,
            pos,
            typ,
            emb_ln,
            layers,
            meta: EncoderMeta {
                config: config.clone(),
                pooling: Pooling::Mean,
                normalize: true,
                // burn-flex's GELU is the exact erf form in both directions.
                fused_gelu: crate::fast::is_flex::<B>(),
                kernels: true,
                bf16: false,
            },
        })
    }

    /// Runs dense layers on multiret-kernels (`true`, the default) or on burn's own ops.
    pub fn with_kernels(mut self, kernels: bool) -> Self {
        self.meta.kernels = kernels;
        self
    }

    /// Runs the dense layers' products in bf16 with f32 accumulation (`true`; CPU kernels path
    /// only) or in f32 (`false`, the default).
    pub fn with_bf16_matmul(mut self, bf16: bool) -> Self {
        self.meta.bf16 = bf16;
        self
    }

    /// Sets pooling and normalisation from a model's encoding settings.
    pub fn with_settings(mut self, settings: &EncodeSettings) -> Self {
        self.meta.pooling = settings.pooling;
        self.meta.normalize = settings.normalize;
        self
    }

    /// The weights, in the engine's layout (an exact copy of the parameters).
    pub fn to_weights(&self) -> Weights {
        let dense = |d: &Dense<B>| {
            let w = read(&d.w);
            let [inp, out] = d.w.val().dims();
            Linear {
                out,
                inp,
                w: crate::fast::transpose(&w, inp, out, 0.0),
                b: read(&d.b),
            }
        };
        let norm = |n: &LayerNormP<B>| Norm {
            w: read(&n.w),
            b: read(&n.b),
        };
        Weights {
            word: read(&self.word).into(),
            pos: read(&self.pos),
            typ: read(&self.typ),
            emb_ln: norm(&self.emb_ln),
            layers: self
                .layers
                .iter()
                .map(|l| Layer {
                    q: dense(&l.q),
                    k: dense(&l.k),
                    v: dense(&l.v),
                    ao: dense(&l.ao),
                    aln: norm(&l.aln),
                    fi: dense(&l.fi),
                    fo: dense(&l.fo),
                    oln: norm(&l.oln),
                })
                .collect(),
        }
    }

    /// Freezes (or unfreezes) the word embeddings: they get no gradient and no update.
    pub fn freeze_word_embeddings(mut self, frozen: bool) -> Self {
        self.word = self.word.set_require_grad(!frozen);
        self
    }

    /// Freezes the first `k` transformer layers (all their parameters: no gradient, no update,
    /// and no weight-gradient work in the backward pass). Errors when the encoder has fewer
    /// than `k` layers.
    pub fn freeze_lower_layers(mut self, k: usize) -> Result<Self> {
        if k > self.layers.len() {
            return Err(TrainError::Config(format!(
                "--freeze-layers {k}: the model has {} layers",
                self.layers.len()
            )));
        }
        self.layers = self
            .layers
            .into_iter()
            .enumerate()
            .map(|(i, l)| if i < k { l.no_grad() } else { l })
            .collect();
        Ok(self)
    }

    /// A batch of `seqs` for this encoder: packed where the fast path runs (burn-flex with the
    /// kernels), padded otherwise.
    pub fn batch(&self, seqs: &[Vec<u32>], device: &B::Device) -> Result<TokenBatch<B>> {
        TokenBatch::new(
            seqs,
            &self.meta.config,
            self.meta.pooling,
            self.meta.kernels,
            device,
        )
    }

    /// Token states `[rows, hidden]` after the last layer, in the batch's layout.
    pub fn hidden_states(&self, batch: &TokenBatch<B>) -> Tensor<B, 2> {
        let c = &self.meta.config;
        let (h, eps, fused) = (c.hidden, c.layer_norm_eps, self.meta.kernels);
        let word = self.word.val().select(0, batch.ids.clone());
        let pos = self.pos.val().select(0, batch.positions.clone());
        let typ = self.typ.val().slice(s![0..1, ..]);
        let mut x = self.emb_ln.forward(word, pos + typ, eps, fused);
        let (bsz, len, heads) = (batch.batch, batch.len, c.heads);
        let d = c.head_dim();
        let scale = 1.0 / (d as f64).sqrt();
        let split = |t: Tensor<B, 2>| t.reshape([bsz, len, heads, d]).swap_dims(1, 2);
        for l in &self.layers {
            let m = &self.meta;
            let q = l.q.forward(x.clone(), false, m);
            let k = l.k.forward(x.clone(), false, m);
            let v = l.v.forward(x.clone(), false, m);
            let ctx = match (&batch.packed, &batch.mask) {
                (Some(p), _) => crate::fast::packed_attention(q, k, v, p),
                (None, Some(mask)) => {
                    let (q, k, v) = (split(q), split(k), split(v));
                    let scores = q.matmul(k.swap_dims(2, 3)).mul_scalar(scale) + mask.clone();
                    let p = activation::softmax(scores, 3);
                    p.matmul(v).swap_dims(1, 2).reshape([bsz * len, h])
                }
                (None, None) => unreachable!("a padded batch has a mask"),
            };
            x = l.aln.forward(l.ao.forward(ctx, false, m), x, eps, fused);
            let f = l.fi.forward(x.clone(), true, m);
            x = l.oln.forward(l.fo.forward(f, false, m), x, eps, fused);
        }
        x
    }

    /// Pooled (and, per the settings, L2-normalised) embeddings `[batch, hidden]`.
    pub fn forward(&self, batch: &TokenBatch<B>) -> Tensor<B, 2> {
        let pooled = batch.pool.clone().matmul(self.hidden_states(batch));
        if self.meta.normalize {
            l2_normalize(pooled)
        } else {
            pooled
        }
    }

    /// Embeds token sequences (with special tokens): `[seqs.len(), hidden]`, row `i` for
    /// sequence `i`. Packed (the fast path), they are one forward pass. Padded, they are
    /// grouped by length ([`length_buckets`]) so that little compute goes to padding; each
    /// group is one padded forward pass.
    pub fn encode(&self, seqs: &[Vec<u32>], device: &B::Device) -> Result<Tensor<B, 2>> {
        if seqs.is_empty() {
            return Err(TrainError::Config("empty batch".into()));
        }
        if self.meta.kernels && crate::fast::is_flex::<B>() {
            // Packed batches carry no padding: one pass, in input order.
            return Ok(self.forward(&self.batch(seqs, device)?));
        }
        let lens: Vec<usize> = seqs.iter().map(Vec::len).collect();
        let buckets = length_buckets(&lens, BUCKET_OVERHEAD_TOKENS);
        if buckets.len() == 1 {
            return Ok(self.forward(&self.batch(seqs, device)?));
        }
        let mut parts = Vec::with_capacity(buckets.len());
        let mut inverse = vec![0i64; seqs.len()];
        let mut at = 0;
        for b in &buckets {
            let group: Vec<Vec<u32>> = b.iter().map(|&i| seqs[i].clone()).collect();
            parts.push(self.forward(&self.batch(&group, device)?));
            for &i in b {
                inverse[i] = at;
                at += 1;
            }
        }
        let sorted = Tensor::cat(parts, 0);
        let n = seqs.len();
        Ok(sorted.select(0, Tensor::from_data(TensorData::new(inverse, [n]), device)))
    }

    /// [`TrainableEncoder::encode`] to the host: `[seqs.len(), hidden]` row-major.
    pub fn embed_ids(&self, seqs: &[Vec<u32>], device: &B::Device) -> Result<Vec<f32>> {
        Ok(self
            .encode(seqs, device)?
            .into_data()
            .convert::<f32>()
            .into_vec::<f32>()
            .expect("f32 tensor data"))
    }

    /// Number of scalar parameters.
    pub fn parameters(&self) -> usize {
        self.num_params()
    }
}

/// The fixed cost of one extra padded forward pass, in tokens, for [`length_buckets`].
pub const BUCKET_OVERHEAD_TOKENS: usize = 64;

/// Groups sequences of lengths `lens` for padded forward passes: sorts them by decreasing
/// length (ties by index) and cuts the sorted list into contiguous groups minimising
/// `Σ (sequences × longest) + overhead × groups`, i.e. padded tokens plus a fixed cost per
/// pass (an exact dynamic programme). Returns the groups of indices, longest first.
pub fn length_buckets(lens: &[usize], overhead: usize) -> Vec<Vec<usize>> {
    let n = lens.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(lens[i]), i));
    // best[j]: the cost of the first j sorted sequences; cut[j]: where their last group starts.
    let mut best = vec![0usize; n + 1];
    let mut cut = vec![0usize; n + 1];
    for j in 1..=n {
        let mut b = usize::MAX;
        for i in 0..j {
            // The group order[i..j] is padded to its first (longest) length.
            let c = best[i] + (j - i) * lens[order[i]] + overhead;
            if c < b {
                b = c;
                cut[j] = i;
            }
        }
        best[j] = b;
    }
    let mut groups = Vec::new();
    let mut j = n;
    while j > 0 {
        let i = cut[j];
        groups.push(order[i..j].to_vec());
        j = i;
    }
    groups.reverse();
    groups
}

/// `x / max(||x||, 1e-12)` per row.
pub fn l2_normalize<B: Backend>(x: Tensor<B, 2>) -> Tensor<B, 2> {
    let norm = x.clone().square().sum_dim(1).sqrt().clamp_min(1e-12);
    x / norm
}
