//! The GPU API of a build without the `cuda` feature (candle's dummy backend pattern): the
//! same types and signatures as the CUDA build's `gpu` module, so that callers and tests
//! compile one way; every entry point reports that this build has no CUDA, and no value of
//! [`Gpu`], [`GpuEncoder`] or [`GpuEmbedder`] can exist.

use std::convert::Infallible;
use std::marker::PhantomData;
use std::sync::Arc;

use crate::config::{Config, Pooling};
use crate::engine::Precision;
use crate::error::{ModelError, Result};
use crate::model::{Kind, Model};
use crate::weights::Weights;

/// Why nothing here runs on a GPU.
pub const NO_CUDA: &str = "this build has no CUDA support (rebuild with --features cuda)";

fn no_cuda() -> ModelError {
    ModelError::Gpu(NO_CUDA.into())
}

/// A CUDA device (none can be opened in this build).
#[derive(Debug)]
pub struct Gpu {
    never: Infallible,
}

impl Gpu {
    /// The device's name.
    pub fn name(&self) -> &str {
        match self.never {}
    }

    /// A one-line description of the device.
    pub fn describe(&self) -> String {
        match self.never {}
    }
}

/// Whether the GPU path can run here: never in this build.
pub fn available() -> std::result::Result<(), String> {
    Err(NO_CUDA.into())
}

/// Opens a CUDA device: an error in this build.
pub fn open_gpu(_ordinal: usize) -> Result<Arc<Gpu>> {
    Err(no_cuda())
}

/// The encoder on a CUDA GPU (none in this build).
#[derive(Debug)]
pub struct GpuEncoder<'w> {
    never: Infallible,
    _w: PhantomData<&'w Weights>,
}

impl<'w> GpuEncoder<'w> {
    /// Uploads the weights: an error in this build.
    pub fn new(
        gpu: Arc<Gpu>,
        _cfg: &Config,
        _weights: &'w Weights,
        _precision: Precision,
    ) -> Result<Self> {
        match gpu.never {}
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        match self.never {}
    }

    /// The weight precision.
    pub fn precision(&self) -> Precision {
        match self.never {}
    }

    /// The device.
    pub fn gpu(&self) -> &Arc<Gpu> {
        match self.never {}
    }

    /// Bounds the attention-score buffer.
    pub fn set_max_score_elems(&mut self, _elems: usize) {
        match self.never {}
    }

    /// Runs a padded batch.
    pub fn forward(
        &self,
        _batch: &[Vec<u32>],
        _pooling: Pooling,
        _normalize: bool,
    ) -> Result<Vec<f32>> {
        match self.never {}
    }
}

/// A model with its GPU engine built (none in this build).
#[derive(Debug)]
pub struct GpuEmbedder<'m> {
    never: Infallible,
    _m: PhantomData<&'m Model>,
}

impl Model {
    /// An embedder on CUDA device 0: an error in this build.
    pub fn gpu_embedder(&self, _precision: Precision) -> Result<GpuEmbedder<'_>> {
        Err(no_cuda())
    }

    /// An embedder on a given device: an error in this build.
    pub fn gpu_embedder_on(&self, gpu: Arc<Gpu>, _precision: Precision) -> Result<GpuEmbedder<'_>> {
        match gpu.never {}
    }
}

impl<'m> GpuEmbedder<'m> {
    /// The model.
    pub fn model(&self) -> &Model {
        match self.never {}
    }

    /// The engine.
    pub fn encoder(&self) -> &GpuEncoder<'m> {
        match self.never {}
    }

    /// The engine, mutably.
    pub fn encoder_mut(&mut self) -> &mut GpuEncoder<'m> {
        match self.never {}
    }

    /// The embedding size.
    pub fn dim(&self) -> usize {
        match self.never {}
    }

    /// Embeds texts.
    pub fn embed(
        &self,
        _texts: &[&str],
        _kind: Kind,
        _batch_size: usize,
        _progress: &dyn Fn(usize),
    ) -> Result<Vec<f32>> {
        match self.never {}
    }

    /// Embeds token id sequences.
    pub fn embed_ids(
        &self,
        _ids: &[Vec<u32>],
        _batch_size: usize,
        _progress: &dyn Fn(usize),
    ) -> Result<Vec<f32>> {
        match self.never {}
    }
}
