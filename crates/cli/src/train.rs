//! `multiret train`: fine-tune an encoder with InfoNCE over X-X-mono / X-Y / mixed / hybrid
//! batches (docs/method.md §2-§3), on the CPU or on CUDA.
//!
//! Writes into `--out`: `log.jsonl` (one JSON object per step: `step`, `loss`, `lr`,
//! `tokens_per_s`, `tokens`, `grad_norm`, `kind`, `elapsed_s`, and `val_loss` on validation
//! steps), `train_config.json`, `checkpoint-STEP/` every `--checkpoint-every` steps (resumable:
//! HF files, optimiser and training state), `best/` (with `--patience`), the final
//! `checkpoint/` (an HF directory: `multiret eval --model DIR/checkpoint` and Python
//! `transformers` load it), and `eval.json` with `--eval`. Every directory is written
//! atomically. `--resume` continues the newest checkpoint exactly where it stopped.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use clap::{Args, ValueEnum};
use multiret_train::{
    train, AdamWParams, DeviceChoice, EvalHook, PassageUnit, SamplerKind, TrainConfig,
};

/// The batching scheme (docs/method.md §3).
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrainSampler {
    /// X-X-mono: one language per batch.
    Mono,
    /// X-Y: query and passage languages differ in every pair.
    Cross,
    /// X-X: every pair monolingual, languages mixed within a batch.
    Mixed,
    /// Mono with probability `--alpha`, else cross.
    Hybrid,
}

/// The positive passage of LAReQA corpora.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrainPassage {
    /// The gold sentence.
    Sentence,
    /// The whole paragraph.
    Paragraph,
}

/// Arguments of `multiret train`.
#[derive(Args, Debug, Clone)]
pub struct TrainArgs {
    /// Model to start from: `e5-small` (built in), an E5S1 `.bin` with a `tokenizer.json`
    /// beside it, or an HF directory.
    #[arg(long, value_name = "SPEC", default_value = "e5-small")]
    pub model: String,
    /// Training data: `mlqa-r`, `xquad-r` (inside --data-dir), or a path (a directory of
    /// LANG.json, a .jsonl file, an mMARCO directory); several, weighted: `a:2,b:1`.
    #[arg(long, value_name = "SPEC")]
    pub train: String,
    /// Batching scheme.
    #[arg(long, value_enum)]
    pub sampler: TrainSampler,
    /// Probability of a monolingual batch under `--sampler hybrid` [default: 0.5].
    #[arg(long)]
    pub alpha: Option<f64>,
    /// Pairs per batch (every other pair's passages are a query's in-batch negatives).
    #[arg(long, value_name = "N")]
    pub batch_size: usize,
    /// Optimiser steps.
    #[arg(long, value_name = "K")]
    pub steps: u64,
    /// Peak learning rate (AdamW).
    #[arg(long, default_value_t = 3e-5)]
    pub lr: f64,
    /// InfoNCE temperature.
    #[arg(long, default_value_t = 0.05)]
    pub temperature: f32,
    /// Seed of the sampler, the validation split and the negatives' draws.
    #[arg(long, value_name = "S", default_value_t = 0)]
    pub seed: u64,
    /// Output directory.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Evaluate the final checkpoint on this dataset (as `multiret eval --dataset NAME`) into
    /// DIR/eval.json.
    #[arg(long, value_name = "NAME")]
    pub eval: Option<String>,
    /// Continue the run in --out from its newest checkpoint (same flags).
    #[arg(long)]
    pub resume: bool,
    /// Directory holding mlqa-r/ and xquad-r/ [default: the repository's data/, then
    /// ~/.cache/multiret/data (under MULTIRET_CACHE when set)].
    #[arg(long, value_name = "DIR", env = "MULTIRET_DATA")]
    pub data_dir: Option<PathBuf>,
    /// Model cache [default: ~/.cache/multiret].
    #[arg(long, value_name = "DIR", env = "MULTIRET_CACHE")]
    pub cache_dir: Option<PathBuf>,
    /// Write a resumable checkpoint every N steps.
    #[arg(long, value_name = "N")]
    pub checkpoint_every: Option<u64>,
    /// Periodic checkpoints kept (older ones are removed).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub keep_checkpoints: usize,
    /// Hold out N groups of the training data for a validation loss.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub val_groups: usize,
    /// Validation loss every N steps [default: a tenth of --steps].
    #[arg(long, value_name = "N")]
    pub eval_every: Option<u64>,
    /// Early stopping: stop after P validations without improvement; the final checkpoint
    /// then holds the best validated weights.
    #[arg(long, value_name = "P")]
    pub patience: Option<u32>,
    /// Linear warm-up steps [default: a tenth of --steps]; then linear decay to 0.
    #[arg(long, value_name = "N")]
    pub warmup: Option<u64>,
    /// Clip the global gradient norm to this value (0: no clipping).
    #[arg(long, default_value_t = 1.0)]
    pub grad_clip: f32,
    /// Split each batch into N chunks with gradient caching (the loss still sees the whole
    /// batch; less memory, one more forward pass).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub accumulate: usize,
    /// Freeze the word embeddings (no gradient, no update).
    #[arg(long)]
    pub freeze_embeddings: bool,
    /// Mixed precision on the CPU: dense-layer products in bf16 with f32 accumulation (AMX or
    /// AVX-512 BF16 where present); parameters, optimiser state and gradients stay f32.
    #[arg(long)]
    pub bf16: bool,
    /// Add the passage-to-query loss.
    #[arg(long)]
    pub symmetric: bool,
    /// AdamW decoupled weight decay.
    #[arg(long, default_value_t = 0.01)]
    pub weight_decay: f32,
    /// Positive passage of LAReQA corpora.
    #[arg(long, value_enum, default_value_t = TrainPassage::Sentence)]
    pub passage: TrainPassage,
    /// Hard negatives per pair (drawn at random when a pair has more) [default: all loaded].
    #[arg(long, value_name = "N")]
    pub max_negatives: Option<usize>,
    /// Hard negatives read per query from mMARCO corpora.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub mmarco_negatives: usize,
    /// Most tokens per text, special tokens included [default: the model's positions].
    #[arg(long, value_name = "N")]
    pub max_len: Option<usize>,
    /// CPU threads [default: all cores].
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// `cpu`, `cuda` or `cuda:N` (needs a build with the `cuda` feature of multiret-train).
    #[arg(long, value_name = "DEVICE", default_value = "cpu", value_parser = parse_device)]
    pub device: DeviceChoice,
    /// No progress bar and no summary on stderr.
    #[arg(long, short)]
    pub quiet: bool,
}

fn parse_device(s: &str) -> Result<DeviceChoice, String> {
    match s {
        "cpu" => Ok(DeviceChoice::Cpu),
        "cuda" => Ok(DeviceChoice::Cuda(0)),
        _ => match s.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(i)) => Ok(DeviceChoice::Cuda(i)),
            _ => Err(format!("unknown device `{s}` (cpu, cuda or cuda:N)")),
        },
    }
}

impl TrainArgs {
    /// The training configuration these arguments describe.
    pub fn config(&self) -> anyhow::Result<TrainConfig> {
        let sampler = match (self.sampler, self.alpha) {
            (TrainSampler::Hybrid, alpha) => SamplerKind::Hybrid {
                alpha: alpha.unwrap_or(0.5),
            },
            (_, Some(_)) => bail!("--alpha only applies to --sampler hybrid"),
            (TrainSampler::Mono, None) => SamplerKind::Mono,
            (TrainSampler::Cross, None) => SamplerKind::Cross,
            (TrainSampler::Mixed, None) => SamplerKind::Mixed,
        };
        let mut c = TrainConfig::new(&self.model, &self.train, &self.out);
        if let Some(d) = &self.cache_dir {
            c.cache_dir = d.clone();
        }
        if let Some(d) = &self.data_dir {
            c.data_dir = d.clone();
        }
        c.passage = match self.passage {
            TrainPassage::Sentence => PassageUnit::Sentence,
            TrainPassage::Paragraph => PassageUnit::Paragraph,
        };
        c.mmarco_negatives = self.mmarco_negatives;
        c.sampler = sampler;
        c.batch_size = self.batch_size;
        c.steps = self.steps;
        c.lr = self.lr;
        c.warmup = self.warmup;
        c.temperature = self.temperature;
        c.symmetric = self.symmetric;
        c.adamw = AdamWParams {
            weight_decay: self.weight_decay,
            ..AdamWParams::default()
        };
        c.grad_clip = (self.grad_clip > 0.0).then_some(self.grad_clip);
        c.accumulate = self.accumulate;
        c.freeze_embeddings = self.freeze_embeddings;
        c.bf16_matmul = self.bf16;
        c.max_len = self.max_len;
        c.max_negatives = self.max_negatives;
        c.seed = self.seed;
        c.checkpoint_every = self.checkpoint_every;
        c.keep_checkpoints = self.keep_checkpoints;
        c.val_groups = self.val_groups;
        c.eval_every = self.eval_every;
        c.patience = self.patience;
        c.resume = self.resume;
        c.eval = self.eval.clone();
        c.device = self.device;
        c.threads = self.threads;
        c.progress = !self.quiet;
        c.validate()?;
        Ok(c)
    }
}

/// Runs `multiret train` without an evaluation hook (`--eval` is refused): the binary passes
/// its hook through [`run_with_eval`]; this entry serves library-level callers and tests.
#[allow(dead_code)] // used by crates/train/tests/cli.rs, which includes this file
pub fn run(args: &TrainArgs) -> anyhow::Result<()> {
    if args.eval.is_some() {
        bail!("--eval needs the evaluation hook of the `multiret` binary (run_with_eval)");
    }
    run_with_eval(args, None)
}

/// Runs `multiret train` with an evaluation hook for `--eval`: it is called once with the
/// final checkpoint directory, the dataset name and the path of `eval.json` to write.
pub fn run_with_eval(args: &TrainArgs, eval: Option<&mut EvalHook<'_>>) -> anyhow::Result<()> {
    let config = args.config()?;
    let summary = train(&config, eval).with_context(|| {
        format!(
            "training {} on {} into {}",
            args.model,
            args.train,
            args.out.display()
        )
    })?;
    if !args.quiet {
        report(&summary, &config.out);
    }
    Ok(())
}

fn report(s: &multiret_train::TrainSummary, out: &Path) {
    if !s.recovered.is_empty() {
        eprintln!(
            "cleaned up {} leftover temporary checkpoint director{} in {}",
            s.recovered.len(),
            if s.recovered.len() == 1 { "y" } else { "ies" },
            out.display()
        );
    }
    if s.already_finished {
        eprintln!(
            "the run in {} had already finished ({} steps); final checkpoint: {}",
            out.display(),
            s.steps,
            s.checkpoint.display()
        );
        return;
    }
    if let Some(step) = s.resumed_from {
        eprintln!("resumed at step {step}");
    }
    let mut line = format!(
        "{} steps{}, {:.0} tokens/s",
        s.steps,
        if s.stopped_early {
            " (stopped early)"
        } else {
            ""
        },
        s.tokens_per_s
    );
    if let Some(l) = s.last_loss {
        line.push_str(&format!(", last loss {l:.4}"));
    }
    if let Some((v, step)) = s.best_val {
        line.push_str(&format!(", best validation loss {v:.4} at step {step}"));
    }
    eprintln!("{line}");
    eprintln!("final checkpoint: {}", s.checkpoint.display());
    if let Some(r) = &s.eval_report {
        eprintln!("evaluation: {}", r.display());
    }
}
