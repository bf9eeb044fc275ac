//! The encoder on a CUDA GPU (feature `cuda`): [`GpuEncoder`], the engine of
//! [`crate::engine`] on its CUDA backend ([`crate::engine::cuda`]), and [`GpuEmbedder`], the
//! GPU counterpart of [`crate::Embedder`].
//!
//! The embedding tables stay on the host: each batch's `word + position + type` rows are
//! gathered there (in parallel, overlapping the device's work on the previous batch) and
//! uploaded; everything after runs on the device, and only `[batch, hidden]` comes back.
//!
//! ```no_run
//! use multiret_model::{Kind, Model, Precision};
//! let model = Model::load("e5-small", &multiret_model::default_cache_dir())?;
//! let emb = model.gpu_embedder(Precision::Bf16)?;
//! let v = emb.embed(&["Where is the Eiffel tower?"], Kind::Query, 128, &|_| {})?;
//! assert_eq!(v.len(), 384);
//! # Ok::<(), multiret_model::ModelError>(())
//! ```

use std::borrow::Cow;
use std::sync::Arc;

use multiret_kernels::cuda;
use multiret_kernels::Par;

use crate::config::{Config, Pooling};
use crate::engine::cuda::{gpu_err, Cuda};
use crate::engine::{Engine, Precision, Prepared};
use crate::error::{ModelError, Result};
use crate::model::{Kind, Model};
use crate::weights::Weights;

/// The CUDA device handle of [`multiret_kernels::cuda`].
pub use multiret_kernels::cuda::Gpu;

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

/// The encoder on a CUDA GPU: [`crate::Encoder`]'s forward pass (same inputs, same outputs)
/// with the weights on the device. Borrows the host embedding tables of the [`Weights`] it was
/// built from (the per-batch gather happens on the host).
///
/// Uses its [`Gpu`] from one thread at a time (the `Gpu`'s stream and cuBLAS handle are
/// shared by all its operations).
pub struct GpuEncoder<'w> {
    engine: Engine<'w, Cuda<Arc<Gpu>>>,
}

impl std::fmt::Debug for GpuEncoder<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuEncoder")
            .field("gpu", &self.gpu().name())
            .field("config", self.engine.config())
            .field("precision", &self.engine.precision())
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
            engine: Engine::new(
                Cuda::new(gpu),
                cfg,
                weights,
                Cow::Borrowed(weights),
                precision,
            )?,
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

    /// The device.
    pub fn gpu(&self) -> &Arc<Gpu> {
        &self.engine.backend().dev
    }

    /// Bounds the attention-score buffer to `elems` f32 values (default 2^28, 1 GiB): a batch
    /// whose `batch * heads * len^2` scores exceed it runs its attention in chunks of
    /// sequences (at least one sequence at a time, whatever the bound).
    pub fn set_max_score_elems(&mut self, elems: usize) {
        self.engine.backend_mut().max_score_elems = elems.max(1);
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
        self.engine.forward(batch, pooling, normalize, Par::all())
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
        let prepare = |k: usize| -> Result<Option<Prepared>> {
            batches
                .get(k)
                .map(|b| {
                    let seqs: Vec<Vec<u32>> = b.iter().map(|&i| ids[i].clone()).collect();
                    eng.prepare(&seqs, s.pooling, Par::all())
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
                || {
                    self.model
                        .finish(hb.size(), |norm| eng.run(&hb, s.pooling, norm, Par::Seq))
                },
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
