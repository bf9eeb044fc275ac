//! # multiret-train
//!
//! Fine-tuning of multiret encoders on [burn](https://burn.dev) 0.21: InfoNCE with in-batch
//! (and hard) negatives over the batches of `multiret-sampler` (X-X-mono, X-Y, mixed, hybrid;
//! docs/method.md §2-§3), AdamW with PyTorch's semantics, linear warm-up and decay, global-norm
//! clipping, gradient caching, frozen word embeddings, atomic HF-format checkpoints, exact
//! resume, validation loss with early stopping.
//!
//! - [`Encoder`]: the architecture of `multiret-model` as a burn module, built from and
//!   exported to the engine's [`Weights`](multiret_model::Weights) exactly
//!   ([`Encoder::from_weights`], [`Encoder::to_weights`]).
//! - [`info_nce`]: the loss; [`loss_and_grads`]: one step's loss and gradients (directly, or
//!   with gradient caching over `chunks`).
//! - [`optim`]: AdamW configured as PyTorch's, the schedule, `clip_grad_norm`.
//! - [`train`] with a [`TrainConfig`]: the whole loop (what `multiret train` runs).
//!
//! Backends: the CPU runs on burn-flex ([`FlexTrain`]; it measured 1.5x faster than
//! burn-ndarray on e5-small, whose GELU backward is also the tanh approximation's); the `cuda`
//! feature adds [`CudaTrain`] (burn-cuda; builds without a CUDA toolkit).

pub mod checkpoint;
mod encoder;
mod error;
mod loss;
pub mod optim;
mod step;
mod trainer;

pub use encoder::{
    l2_normalize, length_buckets, Dense, Encoder, EncoderLayer, EncoderMeta, LayerNormP,
    TokenBatch, BUCKET_OVERHEAD_TOKENS,
};
pub use error::{Result, TrainError};
pub use loss::{info_nce, info_nce_reference};
pub use optim::{AdamWOptimizer, AdamWParams, LinearSchedule};
pub use step::{loss_and_grads, loss_only, LossConfig};
pub use trainer::{
    split_validation, tokenize_batch, train, DeviceChoice, EvalHook, StepLog, TokenizedBatch,
    TrainConfig, TrainSummary, TrainerState, TRAINER_STATE_FORMAT,
};

pub use multiret_sampler::{PassageUnit, SamplerKind};

/// Training on the CPU with burn-flex.
pub type FlexTrain = burn::backend::Autodiff<burn::backend::Flex>;
/// Training on CUDA with burn-cuda.
#[cfg(feature = "cuda")]
pub type CudaTrain = burn::backend::Autodiff<burn::backend::Cuda>;
