//! AdamW with PyTorch's semantics, the linear warm-up / linear decay schedule, global-norm
//! gradient clipping, and the optimiser state as bytes.
//!
//! burn 0.21's `AdamW` computes exactly PyTorch's update (`torch.optim.AdamW`, no amsgrad):
//! `m = β1 m + (1-β1) g`, `v = β2 v + (1-β2) g²`, `p = p (1 - lr·wd) - lr · m̂ / (sqrt(v̂) + eps)`
//! with bias-corrected `m̂ = m / (1-β1^t)`, `v̂ = v / (1-β2^t)`, but its defaults differ
//! (eps 1e-5, weight decay 1e-4): [`adamw_config`] sets PyTorch's (eps 1e-8, weight decay
//! 0.01, betas 0.9 / 0.999). As in PyTorch, a parameter without a gradient (a frozen one) is
//! neither decayed nor moved. burn's own clipping is per tensor; [`clip_grad_norm`] is
//! PyTorch's `clip_grad_norm_` (one norm over all gradients).

use burn::module::{AutodiffModule, ModuleVisitor, Param};
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::{AdamW, AdamWConfig, GradientsParams, Optimizer};
use burn::prelude::*;
use burn::record::{FullPrecisionSettings, NamedMpkBytesRecorder, Recorder};
use burn::tensor::backend::AutodiffBackend;
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

/// AdamW hyper-parameters (PyTorch's defaults, with weight decay 0.01).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AdamWParams {
    /// β1.
    pub beta1: f32,
    /// β2.
    pub beta2: f32,
    /// ε.
    pub eps: f32,
    /// Decoupled weight decay (applied as `p -= lr · wd · p`).
    pub weight_decay: f32,
}

impl AdamWParams {
    /// `torch.optim.AdamW`'s defaults: betas 0.9 / 0.999, eps 1e-8, weight decay 0.01.
    pub const PYTORCH: AdamWParams = AdamWParams {
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.01,
    };
}

impl Default for AdamWParams {
    /// [`AdamWParams::PYTORCH`].
    fn default() -> Self {
        Self::PYTORCH
    }
}

/// burn's AdamW configured with these parameters (no clipping inside: see [`clip_grad_norm`]).
pub fn adamw_config(p: &AdamWParams) -> AdamWConfig {
    AdamWConfig::new()
        .with_beta_1(p.beta1)
        .with_beta_2(p.beta2)
        .with_epsilon(p.eps)
        .with_weight_decay(p.weight_decay)
        .with_amsgrad(false)
        .with_cautious_weight_decay(false)
}

/// Linear warm-up from 0 to `peak` over `warmup` steps, then linear decay to 0 at `total`
/// (HF `get_linear_schedule_with_warmup`; `step` counts the updates already made, so the first
/// update has `lr(0)`, which is 0 when there is a warm-up).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LinearSchedule {
    /// Peak learning rate.
    pub peak: f64,
    /// Warm-up steps.
    pub warmup: u64,
    /// Total steps.
    pub total: u64,
}

impl LinearSchedule {
    /// The learning rate of update number `step` (from 0).
    pub fn lr(&self, step: u64) -> f64 {
        if step < self.warmup {
            return self.peak * step as f64 / self.warmup.max(1) as f64;
        }
        let left = self.total.saturating_sub(step) as f64;
        self.peak * (left / self.total.saturating_sub(self.warmup).max(1) as f64).max(0.0)
    }
}

struct NormVisitor<'a, B: AutodiffBackend> {
    grads: &'a GradientsParams,
    /// Per-tensor norms, summed on the device (one read at the end).
    sq: Option<Tensor<B::InnerBackend, 1>>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for NormVisitor<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if let Some(g) = self.grads.get::<B::InnerBackend, D>(param.id) {
            let s = g.square().sum();
            self.sq = Some(match self.sq.take() {
                Some(acc) => acc + s,
                None => s,
            });
        }
    }
}

struct ScaleVisitor<'a> {
    grads: &'a mut GradientsParams,
    coef: f32,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for ScaleVisitor<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if let Some(g) = self.grads.remove::<B::InnerBackend, D>(param.id) {
            self.grads.register(param.id, g.mul_scalar(self.coef));
        }
    }
}

/// The global L2 norm of the gradients of `module`'s parameters.
pub fn grad_norm<B: AutodiffBackend, M: AutodiffModule<B>>(
    module: &M,
    grads: &GradientsParams,
) -> f32 {
    let mut v = NormVisitor::<B> { grads, sq: None };
    module.visit(&mut v);
    match v.sq {
        Some(sq) => {
            let total: f32 = sq.into_scalar().elem();
            total.sqrt()
        }
        None => 0.0,
    }
}

/// PyTorch's `clip_grad_norm_`: when the global norm exceeds `max_norm`, every gradient is
/// multiplied by `max_norm / (norm + 1e-6)`. Returns the norm before clipping.
pub fn clip_grad_norm<B: AutodiffBackend, M: AutodiffModule<B>>(
    module: &M,
    grads: &mut GradientsParams,
    max_norm: f32,
) -> f32 {
    let norm = grad_norm::<B, M>(module, grads);
    let coef = max_norm / (norm + 1e-6);
    if coef < 1.0 {
        let mut v = ScaleVisitor { grads, coef };
        module.visit(&mut v);
    }
    norm
}

/// AdamW on burn's optimiser adaptor, for module `M`.
pub struct AdamWOptimizer<B: AutodiffBackend, M: AutodiffModule<B>> {
    inner: OptimizerAdaptor<AdamW, M, B>,
}

impl<B: AutodiffBackend, M: AutodiffModule<B>> std::fmt::Debug for AdamWOptimizer<B, M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdamWOptimizer")
    }
}

impl<B: AutodiffBackend, M: AutodiffModule<B>> AdamWOptimizer<B, M> {
    /// A fresh optimiser (no moments yet).
    pub fn new(params: &AdamWParams) -> Self {
        AdamWOptimizer {
            inner: adamw_config(params).init(),
        }
    }

    /// One update with learning rate `lr`.
    pub fn step(&mut self, lr: f64, module: M, grads: GradientsParams) -> M {
        self.inner.step(lr, module, grads)
    }

    /// The state (moments and step counts per parameter id), as bytes (named MessagePack,
    /// full precision: saving and loading is exact).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        NamedMpkBytesRecorder::<FullPrecisionSettings>::default()
            .record(self.inner.to_record(), ())
            .map_err(|e| TrainError::Config(format!("serialising the optimiser state: {e}")))
    }

    /// Restores a state written by [`AdamWOptimizer::to_bytes`].
    pub fn load_bytes(self, bytes: Vec<u8>, device: &B::Device) -> Result<Self> {
        let record = Recorder::<B>::load(
            &NamedMpkBytesRecorder::<FullPrecisionSettings>::default(),
            bytes,
            device,
        )
        .map_err(|e| TrainError::Config(format!("reading the optimiser state: {e}")))?;
        Ok(AdamWOptimizer {
            inner: self.inner.load_record(record),
        })
    }
}
