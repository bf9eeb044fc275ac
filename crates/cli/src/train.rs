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
use std::sync::LazyLock;

use anyhow::Context as _;
use clap::{Arg, Args};
use multiret_train::{train_with, NegativeLangs, Select, TrainConfig};

use crate::args::{
    device_name, show_default, CacheArgs, DataDirArgs, DeviceArgs, ModelArgs, PassageArgs,
    PassageChoice, SamplerArgs,
};
use crate::eval;

/// The defaults of `multiret train`: [`TrainConfig::defaults`], which [`TrainArgs::config`]
/// starts from.
static DEFAULTS: LazyLock<TrainConfig> = LazyLock::new(TrainConfig::defaults);

/// The units `train --passage` takes (no text pairs).
const TRAIN_PASSAGES: &[PassageChoice] = &[PassageChoice::Sentence, PassageChoice::Paragraph];

/// Shows in an option's help the default that [`TrainConfig::defaults`] gives it.
fn show_train_default(arg: Arg) -> Arg {
    let d = &*DEFAULTS;
    let value = match arg.get_id().as_str() {
        "lr" => d.lr.to_string(),
        "temperature" => d.temperature.to_string(),
        "seed" => d.seed.to_string(),
        "keep_checkpoints" => d.keep_checkpoints.to_string(),
        "val_groups" => d.val_groups.to_string(),
        "grad_clip" => d.grad_clip.unwrap_or(0.0).to_string(),
        "accumulate" => d.accumulate.to_string(),
        "weight_decay" => d.adamw.weight_decay.to_string(),
        "mmarco_negatives" => d.mmarco_negatives.to_string(),
        "context_negatives" => d.context_negatives.to_string(),
        "select" => d.select.name().to_string(),
        "negative_langs" => d.negative_langs.name().to_string(),
        "device" => device_name(d.device),
        "passage" => {
            let arg = arg.value_parser(PassageChoice::parser_of(TRAIN_PASSAGES));
            return show_default(arg, PassageChoice::name_of(d.passage));
        }
        _ => return arg,
    };
    show_default(arg, value)
}

/// Arguments of `multiret train`. The options left out take [`TrainConfig::defaults`]'s
/// values.
#[derive(Args, Debug, Clone)]
#[command(mut_args(show_train_default))]
pub struct TrainArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Training data: `mlqa-r`, `xquad-r` (inside --data-dir), or a path (a directory of
    /// LANG.json, a .jsonl file, an mMARCO directory); several, weighted: `a:2,b:1`.
    #[arg(long, value_name = "SPEC")]
    pub train: String,
    #[command(flatten)]
    pub sampler: SamplerArgs,
    /// Pairs per batch (every other pair's passages are a query's in-batch negatives).
    #[arg(long, value_name = "N")]
    pub batch_size: usize,
    /// Optimiser steps.
    #[arg(long, value_name = "K")]
    pub steps: u64,
    /// Peak learning rate (AdamW).
    #[arg(long)]
    pub lr: Option<f64>,
    /// InfoNCE temperature.
    #[arg(long)]
    pub temperature: Option<f32>,
    /// Seed of the sampler, the validation split and the negatives' draws.
    #[arg(long, value_name = "S")]
    pub seed: Option<u64>,
    /// Output directory.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Evaluate the final checkpoint on this dataset (as `multiret eval --dataset NAME`) into
    /// DIR/eval.json and DIR/eval.md (which goes into the checkpoint's model card).
    #[arg(long, value_name = "NAME")]
    pub eval: Option<String>,
    /// Continue the run in --out from its newest checkpoint (same flags).
    #[arg(long)]
    pub resume: bool,
    #[command(flatten)]
    pub data: DataDirArgs,
    #[command(flatten)]
    pub cache: CacheArgs,
    /// Write a resumable checkpoint every N steps.
    #[arg(long, value_name = "N")]
    pub checkpoint_every: Option<u64>,
    /// Periodic checkpoints kept (older ones are removed).
    #[arg(long, value_name = "N")]
    pub keep_checkpoints: Option<usize>,
    /// Hold out N groups of the training data for a validation loss.
    #[arg(long, value_name = "N")]
    pub val_groups: Option<usize>,
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
    #[arg(long)]
    pub grad_clip: Option<f32>,
    /// Split each batch into N chunks with gradient caching (the loss still sees the whole
    /// batch; less memory, one more forward pass).
    #[arg(long, value_name = "N")]
    pub accumulate: Option<usize>,
    /// Freeze the word embeddings (no gradient, no update).
    #[arg(long)]
    pub freeze_embeddings: bool,
    /// Freeze the first K transformer layers: no gradient, no update, and no weight-gradient
    /// work for them (the embeddings have --freeze-embeddings).
    #[arg(long, value_name = "K")]
    pub freeze_layers: Option<usize>,
    /// Mixed precision on the CPU: dense-layer products in bf16 with f32 accumulation (AMX or
    /// AVX-512 BF16 where present); parameters, optimiser state and gradients stay f32.
    #[arg(long)]
    pub bf16: bool,
    /// Add the passage-to-query loss.
    #[arg(long)]
    pub symmetric: bool,
    /// AdamW decoupled weight decay.
    #[arg(long)]
    pub weight_decay: Option<f32>,
    #[command(flatten)]
    pub passage: PassageArgs,
    /// Hard negatives per pair (drawn at random when a pair has more) [default: all loaded].
    #[arg(long, value_name = "N")]
    pub max_negatives: Option<usize>,
    /// Hard negatives read per query from mMARCO corpora.
    #[arg(long, value_name = "N")]
    pub mmarco_negatives: Option<usize>,
    /// What picks the kept weights among the validated steps (needs --val-groups): the
    /// validation loss, or the held-out groups' Mo./Cr./Mul. mAP or their mean, scored as
    /// `multiret eval` scores the benchmark at every validation (logged as val_mo, val_cr,
    /// val_mul, val_rank_distance). With a retrieval score the final checkpoint holds the best
    /// validated weights.
    #[arg(long, value_name = "BY", value_parser = ["loss", "mo", "cr", "mul", "mean"])]
    pub select: Option<String>,
    /// Weight-space interpolation with the starting model after training (WiSE-FT): for each
    /// weight w of the comma-separated grid, (1 - w) start + w trained is scored on the
    /// held-out groups; the best by --select (a retrieval score) goes to OUT/merged, every score
    /// to OUT/merge.json, and --eval then evaluates the merge.
    #[arg(long, value_name = "W,W,...", value_delimiter = ',')]
    pub merge_grid: Option<Vec<f32>>,
    /// In-context hard negatives for LAReQA corpora (MLQA-R, XQuAD-R): the other sentences of
    /// the gold's paragraph, N drawn per pair and language each step, shared with every query
    /// of the batch but those on the same paragraph (0: none; needs --passage sentence).
    #[arg(long, value_name = "N")]
    pub context_negatives: Option<usize>,
    /// Languages of the in-context negatives of cross pairs: the passage's, the query's, or
    /// both (a wrong sentence in the query's own language must lose to the right one in
    /// another).
    #[arg(long, value_name = "LANGS", value_parser = ["passage", "query", "both"])]
    pub negative_langs: Option<String>,
    /// Most tokens per text, special tokens included [default: the model's positions].
    #[arg(long, value_name = "N")]
    pub max_len: Option<usize>,
    /// CPU threads [default: all cores].
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    #[command(flatten)]
    pub device: DeviceArgs,
    /// No progress bar and no summary on stderr.
    #[arg(long, short)]
    pub quiet: bool,
}

/// `*slot = value` when the option was given.
fn given<T>(slot: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *slot = v;
    }
}

impl TrainArgs {
    /// The training configuration these arguments describe: [`TrainConfig::defaults`] with
    /// the options given.
    pub fn config(&self) -> anyhow::Result<TrainConfig> {
        let mut c = TrainConfig::new(self.model.spec(), &self.train, &self.out);
        given(&mut c.cache_dir, self.cache.cache_dir.clone());
        given(&mut c.data_dir, self.data.data_dir.clone());
        c.passage = self.passage.unit_or(c.passage);
        given(&mut c.mmarco_negatives, self.mmarco_negatives);
        c.sampler = self.sampler.kind()?;
        c.batch_size = self.batch_size;
        c.steps = self.steps;
        given(&mut c.lr, self.lr);
        given(&mut c.warmup, self.warmup.map(Some));
        given(&mut c.temperature, self.temperature);
        c.symmetric |= self.symmetric;
        given(&mut c.adamw.weight_decay, self.weight_decay);
        given(
            &mut c.grad_clip,
            self.grad_clip.map(|g| (g > 0.0).then_some(g)),
        );
        given(&mut c.accumulate, self.accumulate);
        c.freeze_embeddings |= self.freeze_embeddings;
        given(&mut c.freeze_layers, self.freeze_layers);
        c.bf16_matmul |= self.bf16;
        given(&mut c.max_len, self.max_len.map(Some));
        given(&mut c.max_negatives, self.max_negatives.map(Some));
        given(&mut c.context_negatives, self.context_negatives);
        given(&mut c.merge_grid, self.merge_grid.clone());
        if let Some(s) = &self.select {
            c.select = Select::from_name(s).with_context(|| format!("--select {s}"))?;
        }
        if let Some(l) = &self.negative_langs {
            c.negative_langs = match l.as_str() {
                "passage" => NegativeLangs::Passage,
                "query" => NegativeLangs::Query,
                _ => NegativeLangs::Both,
            };
        }
        given(&mut c.seed, self.seed);
        given(&mut c.checkpoint_every, self.checkpoint_every.map(Some));
        given(&mut c.keep_checkpoints, self.keep_checkpoints);
        given(&mut c.val_groups, self.val_groups);
        given(&mut c.eval_every, self.eval_every.map(Some));
        given(&mut c.patience, self.patience.map(Some));
        c.resume |= self.resume;
        given(&mut c.eval, self.eval.clone().map(Some));
        c.device = self.device.device_or(c.device);
        given(&mut c.threads, self.threads.map(Some));
        c.progress = !self.quiet;
        c.validate()?;
        Ok(c)
    }
}

/// Runs `multiret train`; `--eval NAME` evaluates the final checkpoint with the evaluation of
/// `multiret eval` ([`eval::run_checkpoint`]).
pub fn run(args: &TrainArgs) -> anyhow::Result<()> {
    let config = args.config()?;
    // Training frees and re-allocates the same large buffers every step.
    multiret_train::keep_freed_memory();
    let mut hook = |checkpoint: &Path, dataset: &str, out: &Path| {
        eval::run_checkpoint(
            checkpoint,
            dataset,
            &config.data_dir,
            &config.cache_dir,
            out,
        )
        .map_err(|e| format!("{e:#}"))
    };
    // What needs the retrieval scores, for the error when the training data has none.
    let needed = if !config.merge_grid.is_empty() {
        Some("--merge-grid".to_string())
    } else {
        (config.select != Select::Loss).then(|| format!("--select {}", config.select.name()))
    };
    let mut scorer = if config.val_groups > 0 {
        Some(eval::validation_scorer(
            &config.train,
            &config.data_dir,
            needed.as_deref(),
        )?)
    } else {
        None
    };
    let retrieval = scorer.as_deref_mut();
    let summary = train_with(&config, Some(&mut hook), retrieval).with_context(|| {
        format!(
            "training {} on {} into {}",
            config.model,
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
        line.push_str(&format!(", kept step {step} (validation loss {v:.4})"));
    }
    eprintln!("{line}");
    eprintln!("final checkpoint: {}", s.checkpoint.display());
    if let Some((dir, w)) = &s.merged {
        eprintln!(
            "merged with the starting model at w = {w}: {}",
            dir.display()
        );
    }
    if let Some(r) = &s.eval_report {
        eprintln!("evaluation: {}", r.display());
    }
}
