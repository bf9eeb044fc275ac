//! The training configuration: [`TrainConfig`], its defaults and their validation.
//!
//! This module is the one home of every default of a training run: [`TrainConfig::defaults`]
//! (a serialisable [`TrainConfig`]) and the `TrainConfig::DEFAULT_*` constants it is built
//! from. Front ends (the `multiret train` CLI first) must read their defaults from here rather
//! than repeat the values.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use multiret_sampler::{PassageUnit, SamplerKind};

use crate::data::{NegativeDraw, NegativeLangs};
use crate::error::{Result, TrainError};
use crate::optim::{AdamWParams, LinearSchedule};
use crate::validation::Select;

/// Where training runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum DeviceChoice {
    /// The CPU (burn-flex).
    #[default]
    Cpu,
    /// CUDA device `n` (needs the `cuda` feature).
    Cuda(usize),
}

/// Everything a training run needs.
///
/// Defaults: [`TrainConfig::defaults`] and the `DEFAULT_*` constants; the CLI must take its
/// defaults from them. A resumed run must share every setting but the ones listed in
/// [`TrainConfig::RESUMABLE_CHANGES`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Model spec ([`Model::load`](multiret_model::Model::load)): a built-in name, an E5S1
    /// file or an HF directory.
    pub model: String,
    /// Model cache directory.
    pub cache_dir: PathBuf,
    /// Training data spec list ([`load_train`](multiret_sampler::load_train)).
    pub train: String,
    /// Directory holding the named datasets.
    pub data_dir: PathBuf,
    /// Positive passage of LAReQA corpora (sentence or paragraph; text pairs are not
    /// supported).
    pub passage: PassageUnit,
    /// Hard negatives kept per query by the mMARCO loader.
    pub mmarco_negatives: usize,
    /// Batch sampler.
    pub sampler: SamplerKind,
    /// Pairs per batch.
    pub batch_size: usize,
    /// Optimiser steps.
    pub steps: u64,
    /// Peak learning rate.
    pub lr: f64,
    /// Warm-up steps (`None`: 10% of `steps`).
    pub warmup: Option<u64>,
    /// InfoNCE temperature.
    pub temperature: f32,
    /// Add the passage-to-query loss.
    pub symmetric: bool,
    /// AdamW hyper-parameters.
    pub adamw: AdamWParams,
    /// Clip the global gradient norm to this value (`None`: no clipping).
    pub grad_clip: Option<f32>,
    /// Gradient-cache chunks per batch (1: the whole batch at once).
    pub accumulate: usize,
    /// Freeze the word embeddings.
    pub freeze_embeddings: bool,
    /// Freeze the first this many transformer layers (0: none).
    #[serde(default)]
    pub freeze_layers: usize,
    /// Mixed precision on the CPU: the dense layers' products in bf16 with f32 accumulation
    /// (parameters, optimiser state, activations and gradients stay f32). No effect on CUDA.
    pub bf16_matmul: bool,
    /// Dense layers on multiret-kernels on the CPU (the default); `false` composes them from
    /// burn-flex's own ops (slower; for comparison and debugging).
    pub cpu_kernels: bool,
    /// Most tokens per text (special tokens included; `None`: the model's positions).
    pub max_len: Option<usize>,
    /// Hard negatives per pair (drawn at random when a pair has more; `None`: all).
    pub max_negatives: Option<usize>,
    /// In-context hard negatives of LAReQA corpora: the other sentences of the gold's
    /// paragraph, this many drawn per pair and language each step (0: none). `max_negatives`,
    /// when set, caps instead.
    #[serde(default)]
    pub context_negatives: usize,
    /// The languages of in-context hard negatives for cross pairs.
    #[serde(default)]
    pub negative_langs: NegativeLangs,
    /// Seed of the sampler, the validation split and the negatives' draws.
    pub seed: u64,
    /// Save a resumable checkpoint every this many steps.
    pub checkpoint_every: Option<u64>,
    /// Periodic checkpoints kept.
    pub keep_checkpoints: usize,
    /// Groups held out for the validation loss (0: no validation).
    pub val_groups: usize,
    /// Validation every this many steps (`None`: 10 times per run).
    pub eval_every: Option<u64>,
    /// Stop after this many validations without improvement; the final checkpoint then holds
    /// the best validated weights.
    pub patience: Option<u32>,
    /// What picks the kept weights among the validated steps: the validation loss, or a
    /// retrieval score on the held-out groups (then the final checkpoint holds the best
    /// validated weights, as under early stopping).
    #[serde(default)]
    pub select: Select,
    /// Weight-space interpolation with the starting model after training (WiSE-FT): each
    /// weight `w` of the grid mixes `(1 - w) start + w trained`; the one with the best
    /// retrieval score by [`select`](Self::select) on the held-out groups is written to
    /// `merged/` (empty: no merge).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub merge_grid: Vec<f32>,
    /// Output directory.
    pub out: PathBuf,
    /// Continue from the newest checkpoint in `out`.
    pub resume: bool,
    /// Run the evaluation hook on the final checkpoint with this dataset.
    pub eval: Option<String>,
    /// Device.
    pub device: DeviceChoice,
    /// Threads on the CPU (`None`: all cores).
    pub threads: Option<usize>,
    /// Show a progress bar (only drawn when stderr is a terminal).
    pub progress: bool,
}

impl TrainConfig {
    /// Default [`model`](Self::model): the built-in multilingual-E5-small.
    pub const DEFAULT_MODEL: &'static str = "e5-small";
    /// Default [`passage`](Self::passage).
    pub const DEFAULT_PASSAGE: PassageUnit = PassageUnit::Sentence;
    /// Default [`mmarco_negatives`](Self::mmarco_negatives).
    pub const DEFAULT_MMARCO_NEGATIVES: usize = 1;
    /// Default probability of a monolingual batch under [`SamplerKind::Hybrid`].
    pub const DEFAULT_ALPHA: f64 = 0.5;
    /// Default [`sampler`](Self::sampler): hybrid with [`DEFAULT_ALPHA`](Self::DEFAULT_ALPHA).
    pub const DEFAULT_SAMPLER: SamplerKind = SamplerKind::Hybrid {
        alpha: Self::DEFAULT_ALPHA,
    };
    /// Default languages per group of the group samplers ([`SamplerKind::Group`],
    /// [`SamplerKind::HybridGroup`]).
    pub const DEFAULT_GROUP_LANGS: usize = 2;
    /// Default [`batch_size`](Self::batch_size).
    pub const DEFAULT_BATCH_SIZE: usize = 32;
    /// Default [`steps`](Self::steps).
    pub const DEFAULT_STEPS: u64 = 1000;
    /// Default [`lr`](Self::lr).
    pub const DEFAULT_LR: f64 = 3e-5;
    /// Default [`temperature`](Self::temperature).
    pub const DEFAULT_TEMPERATURE: f32 = 0.05;
    /// Default [`adamw`](Self::adamw): PyTorch's AdamW defaults (weight decay 0.01).
    pub const DEFAULT_ADAMW: AdamWParams = AdamWParams::PYTORCH;
    /// Default clipping norm ([`grad_clip`](Self::grad_clip) is `Some` of it).
    pub const DEFAULT_GRAD_CLIP: f32 = 1.0;
    /// Default [`accumulate`](Self::accumulate).
    pub const DEFAULT_ACCUMULATE: usize = 1;
    /// Default [`seed`](Self::seed).
    pub const DEFAULT_SEED: u64 = 0;
    /// Default [`context_negatives`](Self::context_negatives): none.
    pub const DEFAULT_CONTEXT_NEGATIVES: usize = 0;
    /// Default [`keep_checkpoints`](Self::keep_checkpoints).
    pub const DEFAULT_KEEP_CHECKPOINTS: usize = 1;
    /// Default [`val_groups`](Self::val_groups): no validation.
    pub const DEFAULT_VAL_GROUPS: usize = 0;
    /// Default [`device`](Self::device).
    pub const DEFAULT_DEVICE: DeviceChoice = DeviceChoice::Cpu;

    /// The settings that may change when a run is resumed (where it writes, how it runs and
    /// what happens after it); a resumed run must share all the others
    /// ([`train`](crate::train) names those that differ).
    pub const RESUMABLE_CHANGES: &'static [&'static str] = &[
        "cache_dir",
        "data_dir",
        "checkpoint_every",
        "keep_checkpoints",
        "out",
        "resume",
        "eval",
        "device",
        "threads",
        "progress",
    ];

    /// Every default of `multiret train` (the one place they are set), with the settings
    /// that have none (`train`, `out`) empty. The cache and data directories are those of
    /// `multiret-data` ([`default_cache_dir`](multiret_data::default_cache_dir),
    /// [`default_data_dir`](multiret_data::default_data_dir)). The optional settings are
    /// `None` (warm-up and validation interval: a tenth of the steps; hard negatives: all;
    /// length: the model's; threads: all cores), but the clipping norm, which is
    /// `Some(`[`DEFAULT_GRAD_CLIP`](Self::DEFAULT_GRAD_CLIP)`)`.
    pub fn defaults() -> Self {
        TrainConfig {
            model: Self::DEFAULT_MODEL.into(),
            cache_dir: multiret_data::default_cache_dir(),
            train: String::new(),
            data_dir: multiret_data::default_data_dir(),
            passage: Self::DEFAULT_PASSAGE,
            mmarco_negatives: Self::DEFAULT_MMARCO_NEGATIVES,
            sampler: Self::DEFAULT_SAMPLER,
            batch_size: Self::DEFAULT_BATCH_SIZE,
            steps: Self::DEFAULT_STEPS,
            lr: Self::DEFAULT_LR,
            warmup: None,
            temperature: Self::DEFAULT_TEMPERATURE,
            symmetric: false,
            adamw: Self::DEFAULT_ADAMW,
            grad_clip: Some(Self::DEFAULT_GRAD_CLIP),
            accumulate: Self::DEFAULT_ACCUMULATE,
            freeze_embeddings: false,
            freeze_layers: 0,
            bf16_matmul: false,
            cpu_kernels: true,
            max_len: None,
            max_negatives: None,
            context_negatives: Self::DEFAULT_CONTEXT_NEGATIVES,
            negative_langs: NegativeLangs::Both,
            seed: Self::DEFAULT_SEED,
            checkpoint_every: None,
            keep_checkpoints: Self::DEFAULT_KEEP_CHECKPOINTS,
            val_groups: Self::DEFAULT_VAL_GROUPS,
            eval_every: None,
            patience: None,
            select: Select::Loss,
            merge_grid: Vec::new(),
            out: PathBuf::new(),
            resume: false,
            eval: None,
            device: Self::DEFAULT_DEVICE,
            threads: None,
            progress: false,
        }
    }

    /// A configuration with the defaults of `multiret train` ([`defaults`](Self::defaults))
    /// for this model, training data and output directory.
    pub fn new(model: &str, train: &str, out: impl Into<PathBuf>) -> Self {
        TrainConfig {
            model: model.into(),
            train: train.into(),
            out: out.into(),
            ..Self::defaults()
        }
    }

    /// How the batches of a corpus draw their hard negatives. A corpus with in-context
    /// negatives ([`Corpus::has_context_negatives`](multiret_sampler::Corpus::has_context_negatives)):
    /// at most `max_negatives`, else `context_negatives`, per pair and language list, in the
    /// languages of `negative_langs`. Any other corpus (the other entries of a mixed
    /// `--train` list): at most `max_negatives` of its own, in the passage's language.
    pub fn negative_draw(&self, context_corpus: bool) -> NegativeDraw {
        if context_corpus && self.context_negatives > 0 {
            NegativeDraw {
                max: self.max_negatives.or(Some(self.context_negatives)),
                langs: self.negative_langs,
            }
        } else {
            NegativeDraw {
                max: self.max_negatives,
                langs: NegativeLangs::Passage,
            }
        }
    }

    /// Whether the run keeps its best validated weights in `best/` and ends with them: under
    /// early stopping, or when a retrieval score selects.
    pub fn keeps_best(&self) -> bool {
        self.patience.is_some() || self.select != Select::Loss
    }

    /// The warm-up steps in force.
    pub fn warmup_steps(&self) -> u64 {
        self.warmup.unwrap_or(self.steps / 10)
    }

    /// The validation interval in force (when there is validation).
    pub fn eval_interval(&self) -> u64 {
        self.eval_every.unwrap_or((self.steps / 10).max(1)).max(1)
    }

    /// The schedule.
    pub fn schedule(&self) -> LinearSchedule {
        LinearSchedule {
            peak: self.lr,
            warmup: self.warmup_steps(),
            total: self.steps,
        }
    }

    /// Checks the values.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(TrainError::Config(m));
        if self.batch_size < 2 {
            return bad(format!(
                "batch size {} (InfoNCE with in-batch negatives needs at least 2)",
                self.batch_size
            ));
        }
        if self.steps == 0 {
            return bad("--steps must be at least 1".into());
        }
        if !(self.lr.is_finite() && self.lr >= 0.0) {
            return bad(format!("learning rate {}", self.lr));
        }
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return bad(format!("temperature {} (must be > 0)", self.temperature));
        }
        if self.warmup_steps() > self.steps {
            return bad(format!(
                "warm-up of {} steps is longer than the run ({})",
                self.warmup_steps(),
                self.steps
            ));
        }
        if let Some(c) = self.grad_clip {
            if !(c.is_finite() && c > 0.0) {
                return bad(format!("gradient clipping norm {c} (must be > 0)"));
            }
        }
        if self.accumulate == 0 || self.accumulate > self.batch_size {
            return bad(format!(
                "--accumulate {} (between 1 and the batch size {})",
                self.accumulate, self.batch_size
            ));
        }
        if self.passage == PassageUnit::SentenceWithParagraph {
            return bad(
                "training on text pairs (sentence with paragraph) is not supported; use the \
                 sentence or the paragraph"
                    .into(),
            );
        }
        if self.max_len.is_some_and(|m| m < 2) {
            return bad("--max-len must leave room for the special tokens (>= 2)".into());
        }
        if self.checkpoint_every == Some(0) || self.eval_every == Some(0) {
            return bad("--checkpoint-every and --eval-every must be at least 1".into());
        }
        if self.keep_checkpoints == 0 {
            return bad("keep at least one checkpoint".into());
        }
        if self.patience.is_some() && self.val_groups == 0 {
            return bad("--patience needs held-out groups (--val-groups)".into());
        }
        if self.select != Select::Loss && self.val_groups == 0 {
            return bad(format!(
                "--select {} needs held-out groups (--val-groups)",
                self.select.name()
            ));
        }
        if !self.merge_grid.is_empty() && self.select == Select::Loss {
            return bad(
                "--merge-grid picks its weight by a retrieval score: give --select mo, cr, mul \
                 or mean (and --val-groups)"
                    .into(),
            );
        }
        if let Some(w) = self.merge_grid.iter().find(|w| !w.is_finite()) {
            return bad(format!("--merge-grid: weight {w} is not a finite number"));
        }
        if self.context_negatives > 0 && self.passage != PassageUnit::Sentence {
            return bad("--context-negatives needs sentence positives (--passage sentence)".into());
        }
        let p = &self.adamw;
        if !(0.0..1.0).contains(&p.beta1) || !(0.0..1.0).contains(&p.beta2) || p.eps <= 0.0 {
            return bad(format!("AdamW parameters {p:?}"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The in-context settings (`--context-negatives`, `--negative-langs`) apply to corpora
    /// with in-context negatives only; `--max-negatives` caps every corpus.
    #[test]
    fn context_negative_settings_apply_to_context_corpora_only() {
        let draw = |max, langs| NegativeDraw { max, langs };
        let mut c = TrainConfig::new("m", "t", "o");
        c.context_negatives = 2;
        c.negative_langs = NegativeLangs::Both;
        assert_eq!(c.negative_draw(true), draw(Some(2), NegativeLangs::Both));
        assert_eq!(c.negative_draw(false), draw(None, NegativeLangs::Passage));
        c.max_negatives = Some(5);
        assert_eq!(c.negative_draw(true), draw(Some(5), NegativeLangs::Both));
        assert_eq!(
            c.negative_draw(false),
            draw(Some(5), NegativeLangs::Passage)
        );
        c.context_negatives = 0;
        assert_eq!(c.negative_draw(true), draw(Some(5), NegativeLangs::Passage));
    }

    #[test]
    fn new_is_the_defaults_with_model_data_and_output() {
        let c = TrainConfig::new("m", "t", "o");
        let d = TrainConfig::defaults();
        assert_eq!((c.model.as_str(), c.train.as_str()), ("m", "t"));
        assert_eq!(c.out, PathBuf::from("o"));
        let reset = TrainConfig {
            model: d.model.clone(),
            train: String::new(),
            out: PathBuf::new(),
            ..c
        };
        assert_eq!(reset, d);
        assert_eq!(d.adamw, AdamWParams::default());
        assert_eq!(d.sampler, SamplerKind::Hybrid { alpha: 0.5 });
        assert_eq!((d.batch_size, d.steps, d.lr), (32, 1000, 3e-5));
        assert_eq!(d.grad_clip, Some(1.0));
    }

    #[test]
    fn defaults_are_valid_once_given_data_and_serialise() {
        let d = TrainConfig::new(TrainConfig::DEFAULT_MODEL, "mlqa-r", "out");
        d.validate().unwrap();
        let back: TrainConfig = serde_json::from_str(&serde_json::to_string(&d).unwrap()).unwrap();
        assert_eq!(back, d);
        let keys = serde_json::to_value(&d).unwrap();
        for k in TrainConfig::RESUMABLE_CHANGES {
            assert!(keys.get(k).is_some(), "{k} is not a setting");
        }
    }
}
