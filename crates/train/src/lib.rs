//! # multiret-train
//!
//! Fine-tuning of multiret encoders on [burn](https://burn.dev) 0.21: InfoNCE with in-batch
//! (and hard) negatives over the batches of `multiret-sampler` (X-X-mono, X-Y, mixed, hybrid;
//! docs/method.md §2-§3), AdamW with PyTorch's semantics, linear warm-up and decay, global-norm
//! clipping, gradient caching, frozen word embeddings, atomic HF-format checkpoints, exact
//! resume, validation loss with early stopping.
//!
//! - [`TrainableEncoder`]: the architecture of `multiret-model` as a burn module, built from and
//!   exported to the engine's [`Weights`](multiret_model::Weights) exactly
//!   ([`TrainableEncoder::from_weights`], [`TrainableEncoder::to_weights`]); its forward pass agrees with the
//!   engine's within 1e-4.
//! - [`info_nce`]: the loss; [`loss_and_grads`]: one step's loss and gradients (directly, or
//!   with gradient caching over `chunks`).
//! - [`optim`]: AdamW configured as PyTorch's, the schedule, `clip_grad_norm`.
//! - [`checkpoint`]: atomic checkpoint directories.
//! - [`train`] with a [`TrainConfig`]: the whole loop (what `multiret train` runs).
//!   [`TrainConfig::defaults`] and the `TrainConfig::DEFAULT_*` constants hold every default
//!   (front ends read theirs from there); [`TrainerState`] is what a checkpoint resumes from,
//!   [`StepLog`] one line of `log.jsonl`.
//!
//! # Design
//! - **Backends.** The CPU runs on burn-flex ([`FlexTrain`]): it measured 1.5x faster than
//!   burn-ndarray on e5-small, and its GELU op is the erf form in both directions (burn's
//!   default GELU backward, which burn-ndarray and the CubeCL backends use, differentiates the
//!   tanh approximation; the encoder composes GELU from `erf` there). The `cuda` feature adds
//!   `CudaTrain` (burn-cuda with fusion, no autotuning; it builds without a CUDA toolkit).
//!   On CUDA, f32 matrix products run on TF32 tensor cores, so the forward pass agrees with
//!   the engine within about 3e-4 rather than 1e-4.
//! - **CPU fast path.** On burn-flex, three kinds of custom autodiff operation on
//!   multiret-kernels, each with a hand-written backward pass, carry nearly all of a step:
//!   - the dense layers (`act(x W + b)`: the forward GEMM with the bias fused, vector GELU,
//!     `dZ = dY ⊙ gelu'(Z)`, `dX = dZ Wᵀ`, `dW = Xᵀ dZ`, `db = Σ dZ`);
//!   - multi-head attention over each sequence's real length (scores, softmax, context and
//!     their backward, one op per layer; only the probabilities are saved);
//!   - LayerNorm of a residual sum (one op, saving `x̂` and `1/σ`).
//!
//!   Each is proptested against an f64 reference (finite differences for the gradients), and
//!   the whole encoder against the same layers composed from burn ops (1e-4 of each
//!   gradient's scale). [`TrainConfig::bf16_matmul`] (`multiret train --bf16`) adds mixed
//!   precision: the dense products in bf16 (AMX where present) with f32 accumulation,
//!   everything else f32. Measured against PyTorch 2.15 on the same batches
//!   (`train-report`, docs/benchmarks.md): 3.5x in f32 and 2.1x in bf16 at batch 32 with the
//!   word embeddings frozen. Binaries that train call [`keep_freed_memory`] so that a step's
//!   large buffers are reused rather than mapped afresh.
//! - **Layout.** On the fast path a batch is packed: the real tokens of its sequences one
//!   after another, no padding ([`TokenBatch`]), and one forward pass per side. Elsewhere
//!   (CUDA, or [`TrainConfig::cpu_kernels`] off) each side of a batch (queries, passages) is cut into
//!   length groups ([`length_buckets`]) and each group is one padded forward pass.
//! - **Accumulation** ([`TrainConfig::accumulate`]) is gradient caching, not the usual sum of
//!   per-chunk losses: InfoNCE's negatives are the rest of the batch, and chunked losses would
//!   see fewer of them. The loss and its gradient with respect to every embedding are computed
//!   over the whole batch, then each chunk is re-encoded with a graph and back-propagated with
//!   its slice of those gradients. The gradient is the full batch's; it costs one more
//!   forward pass.
//! - **Optimiser.** burn's AdamW computes PyTorch's update; [`optim::adamw_config`] sets
//!   PyTorch's defaults (eps 1e-8, weight decay 0.01), which burn's own differ from. Weight
//!   decay applies to every trainable tensor, as `torch.optim.AdamW(model.parameters())` does.
//!   Clipping is PyTorch's `clip_grad_norm_` (one norm over all gradients).
//! - **Schedule.** HF's `get_linear_schedule_with_warmup` (the first update of a warm-up has
//!   learning rate 0); warm-up defaults to a tenth of the steps.
//! - **Reproducibility.** The sampler, the validation split and the draws of hard negatives
//!   are seeded; the CPU kernels are deterministic, so a seed gives the same losses, and a
//!   resumed run (model, optimiser moments, sampler position, generator position from the
//!   checkpoint) repeats the uninterrupted run bit for bit.
//! - **No dropout**: the encoder trains without dropout (so gradient caching and resume are
//!   exact).

pub mod checkpoint;
mod config;
mod data;
mod encoder;
mod error;
mod fast;
mod loss;
mod memory;
pub mod optim;
mod replay;
mod session;
mod state;
mod step;
mod trainer;
pub mod validation;

pub use config::{DeviceChoice, TrainConfig};
pub use data::{tokenize_batch, NegativeDraw, NegativeLangs, TokenizedBatch};
pub use encoder::{
    l2_normalize, length_buckets, Dense, EncoderLayer, EncoderMeta, LayerNormP, TokenBatch,
    TrainableEncoder, BUCKET_OVERHEAD_TOKENS,
};
pub use error::{Result, TrainError};
pub use loss::{
    info_nce, info_nce_masked, info_nce_reference, info_nce_reference_masked, BatchMask,
};
pub use memory::keep_freed_memory;
pub use optim::{AdamWOptimizer, AdamWParams, LinearSchedule};
pub use replay::Replay;
pub use session::{first_batches, update, TrainSummary};
pub use state::{StepLog, TrainerState, TRAINER_STATE_FORMAT};
pub use step::{loss_and_grads, loss_only, LossConfig};
pub use trainer::{train, train_with, EvalHook};
pub use validation::{RetrievalHook, RetrievalScores, Select};

pub use multiret_sampler::{split_validation, PassageUnit, SamplerKind};

/// Training on the CPU with burn-flex.
pub type FlexTrain = burn::backend::Autodiff<burn::backend::Flex>;
/// Training on CUDA with burn-cuda.
#[cfg(feature = "cuda")]
pub type CudaTrain = burn::backend::Autodiff<burn::backend::Cuda>;
