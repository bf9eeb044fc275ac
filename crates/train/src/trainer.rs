//! The training loop: data, steps, logging, checkpoints, resume, validation, early stopping.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::AutodiffModule;
use burn::tensor::backend::AutodiffBackend;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use multiret_model::{Kind, Model, ModelCard, Tokenizer, Weights};
use multiret_sampler::{
    load_train, BatchKind, Corpus, Example, Group, LoadOptions, MmarcoOptions, PairRef,
    PassageUnit, Sampler, SamplerConfig, SamplerKind, SamplerState,
};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::checkpoint::{self, BEST_DIR, FINAL_DIR, OPTIMIZER_FILE, PERIODIC_PREFIX, STATE_FILE};
use crate::encoder::Encoder;
use crate::error::{Result, TrainError};
use crate::optim::{clip_grad_norm, grad_norm, AdamWOptimizer, AdamWParams, LinearSchedule};
use crate::step::{loss_and_grads, loss_only, LossConfig};

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

/// The evaluation hook: called once on the final checkpoint with (checkpoint directory,
/// dataset name, output JSON path); an `Err` carries a message. When it also leaves a Markdown
/// report beside the JSON (the same path with `.md`), that report becomes the Evaluation
/// section of the checkpoint's model card.
pub type EvalHook<'a> = dyn FnMut(&Path, &str, &Path) -> std::result::Result<(), String> + 'a;

/// Everything a training run needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Model spec ([`Model::load`]): a built-in name, an E5S1 file or an HF directory.
    pub model: String,
    /// Model cache directory.
    pub cache_dir: PathBuf,
    /// Training data spec list ([`load_train`]).
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
    /// A configuration with the defaults of `multiret train`.
    pub fn new(model: &str, train: &str, out: impl Into<PathBuf>) -> Self {
        TrainConfig {
            model: model.into(),
            cache_dir: multiret_model::default_cache_dir(),
            train: train.into(),
            data_dir: multiret_data::default_data_dir(),
            passage: PassageUnit::Sentence,
            mmarco_negatives: 1,
            sampler: SamplerKind::Hybrid { alpha: 0.5 },
            batch_size: 32,
            steps: 1000,
            lr: 3e-5,
            warmup: None,
            temperature: 0.05,
            symmetric: false,
            adamw: AdamWParams::default(),
            grad_clip: Some(1.0),
            accumulate: 1,
            freeze_embeddings: false,
            bf16_matmul: false,
            cpu_kernels: true,
            max_len: None,
            max_negatives: None,
            seed: 0,
            checkpoint_every: None,
            keep_checkpoints: 1,
            val_groups: 0,
            eval_every: None,
            patience: None,
            out: out.into(),
            resume: false,
            eval: None,
            device: DeviceChoice::Cpu,
            threads: None,
            progress: false,
        }
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
        let p = &self.adamw;
        if !(0.0..1.0).contains(&p.beta1) || !(0.0..1.0).contains(&p.beta2) || p.eps <= 0.0 {
            return bad(format!("AdamW parameters {p:?}"));
        }
        Ok(())
    }

    /// The settings that define the run: a resumed run must have the same.
    fn run_key(&self) -> RunKey {
        RunKey {
            model: self.model.clone(),
            train: self.train.clone(),
            passage: self.passage,
            mmarco_negatives: self.mmarco_negatives,
            sampler: self.sampler,
            batch_size: self.batch_size,
            steps: self.steps,
            lr: self.lr,
            warmup: self.warmup_steps(),
            temperature: self.temperature,
            symmetric: self.symmetric,
            adamw: self.adamw,
            grad_clip: self.grad_clip,
            accumulate: self.accumulate,
            freeze_embeddings: self.freeze_embeddings,
            bf16_matmul: self.bf16_matmul,
            cpu_kernels: self.cpu_kernels,
            max_len: self.max_len,
            max_negatives: self.max_negatives,
            seed: self.seed,
            val_groups: self.val_groups,
            eval_every: (self.val_groups > 0).then(|| self.eval_interval()),
            patience: self.patience,
        }
    }
}

/// The settings a resumed run must share with the run it continues.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct RunKey {
    model: String,
    train: String,
    passage: PassageUnit,
    mmarco_negatives: usize,
    sampler: SamplerKind,
    batch_size: usize,
    steps: u64,
    lr: f64,
    warmup: u64,
    temperature: f32,
    symmetric: bool,
    adamw: AdamWParams,
    grad_clip: Option<f32>,
    accumulate: usize,
    freeze_embeddings: bool,
    #[serde(default)]
    bf16_matmul: bool,
    #[serde(default = "yes")]
    cpu_kernels: bool,
    max_len: Option<usize>,
    max_negatives: Option<usize>,
    seed: u64,
    val_groups: usize,
    eval_every: Option<u64>,
    patience: Option<u32>,
}

impl RunKey {
    /// The names of the settings that differ.
    fn diff(&self, other: &RunKey) -> Vec<String> {
        let a = serde_json::to_value(self).expect("json");
        let b = serde_json::to_value(other).expect("json");
        let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
            return vec!["<all>".into()];
        };
        a.iter()
            .filter(|(k, v)| b.get(*k) != Some(*v))
            .map(|(k, v)| format!("{k} (saved {}, now {})", v, b.get(k).unwrap_or(&"-".into())))
            .collect()
    }
}

/// The state saved with a checkpoint (`trainer_state.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    /// Layout version.
    pub format: u32,
    /// Optimiser steps done.
    pub step: u64,
    /// The step whose weights the checkpoint holds (the best validated one in a final
    /// checkpoint after early stopping, else `step`).
    pub weights_step: u64,
    /// The run is over (all steps done, or stopped early).
    pub finished: bool,
    /// The run was stopped by early stopping.
    pub stopped_early: bool,
    /// The sampler, positioned at the next batch.
    pub sampler: SamplerState,
    /// Word position of the loop's ChaCha8 generator (a decimal `u128`).
    pub rng_word_pos: String,
    /// Best validation loss so far.
    pub best_val_loss: Option<f64>,
    /// Step of the best validation loss.
    pub best_step: Option<u64>,
    /// Validations since the last improvement.
    pub bad_evals: u32,
    /// Real tokens (queries and passages) processed.
    pub tokens_seen: u64,
    /// Training seconds so far (all sessions).
    pub elapsed_s: f64,
    run: RunKey,
}

/// Layout version of [`TrainerState`].
pub const TRAINER_STATE_FORMAT: u32 = 1;

/// One line of `log.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepLog {
    /// Optimiser steps done (from 1).
    pub step: u64,
    /// The batch loss.
    pub loss: f32,
    /// The learning rate of this step's update.
    pub lr: f64,
    /// Real tokens per second over the step (forward, backward and update).
    pub tokens_per_s: f64,
    /// Real tokens in the batch.
    pub tokens: usize,
    /// Global gradient norm before clipping.
    pub grad_norm: f32,
    /// The batch kind.
    pub kind: BatchKind,
    /// Seconds since the start of the run (all sessions).
    pub elapsed_s: f64,
    /// Validation loss, on the steps that ran validation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_loss: Option<f64>,
}

/// What a run did.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainSummary {
    /// Steps done (all sessions).
    pub steps: u64,
    /// The step training continued from, when resumed.
    pub resumed_from: Option<u64>,
    /// The run had already finished: nothing was done.
    pub already_finished: bool,
    /// Stopped by early stopping.
    pub stopped_early: bool,
    /// The loss of the last step run in this session.
    pub last_loss: Option<f32>,
    /// Best validation loss and its step.
    pub best_val: Option<(f64, u64)>,
    /// Mean tokens per second over this session's steps.
    pub tokens_per_s: f64,
    /// The final checkpoint.
    pub checkpoint: PathBuf,
    /// The evaluation report, when the hook ran.
    pub eval_report: Option<PathBuf>,
    /// Temporary or set-aside directories cleaned up at start.
    pub recovered: Vec<PathBuf>,
}

/// One batch, tokenised.
#[derive(Debug, Clone)]
pub struct TokenizedBatch {
    /// Query ids.
    pub queries: Vec<Vec<u32>>,
    /// Positive ids (one per query), then hard negative ids.
    pub passages: Vec<Vec<u32>>,
    /// The batch kind.
    pub kind: BatchKind,
}

impl TokenizedBatch {
    /// Real tokens.
    pub fn tokens(&self) -> usize {
        self.queries
            .iter()
            .chain(&self.passages)
            .map(Vec::len)
            .sum()
    }
}

/// Uniform integer in `0..n` (`n >= 1`), unbiased.
fn bounded(rng: &mut ChaCha8Rng, n: u64) -> u64 {
    let threshold = n.wrapping_neg() % n;
    loop {
        let m = u128::from(rng.next_u64()) * u128::from(n);
        if (m as u64) >= threshold {
            return (m >> 64) as u64;
        }
    }
}

/// Resolves and tokenises a batch. Negatives beyond `max_negatives` are dropped at random.
pub fn tokenize_batch(
    model: &Model,
    corpus: &Corpus,
    pairs: &[PairRef],
    kind: BatchKind,
    max_len: usize,
    max_negatives: Option<usize>,
    rng: &mut ChaCha8Rng,
) -> Result<TokenizedBatch> {
    let mut queries = Vec::with_capacity(pairs.len());
    let mut positives = Vec::with_capacity(pairs.len());
    let mut negatives = Vec::new();
    for p in pairs {
        let t = corpus.texts(p)?;
        if t.positive_context.is_some() {
            return Err(TrainError::Config(
                "training on text pairs (a positive with a context) is not supported".into(),
            ));
        }
        queries.push(model.prefixed(&t.query, Kind::Query));
        positives.push(model.prefixed(&t.positive, Kind::Passage));
        let mut negs: Vec<_> = t.negatives.iter().collect();
        if let Some(k) = max_negatives {
            // Partial Fisher-Yates: the first k of a random permutation, in drawn order.
            let k = k.min(negs.len());
            for i in 0..k {
                let j = i + bounded(rng, (negs.len() - i) as u64) as usize;
                negs.swap(i, j);
            }
            negs.truncate(k);
        }
        negatives.extend(negs.iter().map(|n| model.prefixed(n, Kind::Passage)));
    }
    let enc = |texts: &[String]| -> Result<Vec<Vec<u32>>> {
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        Ok(model.encode_texts_up_to(&refs, max_len)?)
    };
    let mut passages = enc(&positives)?;
    passages.extend(enc(&negatives)?);
    Ok(TokenizedBatch {
        queries: enc(&queries)?,
        passages,
        kind,
    })
}

/// Splits `n` held-out groups off the corpora (in proportion to their sizes, chosen at random
/// by `seed`): returns the training corpora (without them) and the validation corpora (one
/// per corpus that gave groups). Corpora that give groups are rebuilt in memory.
pub fn split_validation(
    corpora: Vec<Corpus>,
    n: usize,
    seed: u64,
) -> Result<(Vec<Corpus>, Vec<Corpus>)> {
    if n == 0 {
        return Ok((corpora, Vec::new()));
    }
    let total: usize = corpora.iter().map(Corpus::len).sum();
    if n >= total {
        return Err(TrainError::Config(format!(
            "--val-groups {n}: the training data has only {total} groups"
        )));
    }
    // Largest-remainder apportionment.
    let mut alloc: Vec<usize> = corpora.iter().map(|c| n * c.len() / total).collect();
    let mut order: Vec<usize> = (0..corpora.len()).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse((n * corpora[i].len()) % total), i));
    let mut left = n - alloc.iter().sum::<usize>();
    for &i in &order {
        if left == 0 {
            break;
        }
        alloc[i] += 1;
        left -= 1;
    }
    let mut train = Vec::with_capacity(corpora.len());
    let mut val = Vec::new();
    for (ci, (corpus, k)) in corpora.into_iter().zip(alloc).enumerate() {
        if k == 0 {
            train.push(corpus);
            continue;
        }
        if k >= corpus.len() {
            return Err(TrainError::Config(format!(
                "--val-groups {n} would hold out all of corpus `{}`",
                corpus.name()
            )));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x7661_6c69_6400_0000 ^ ci as u64);
        let mut idx: Vec<usize> = (0..corpus.len()).collect();
        for i in 0..k {
            let j = i + bounded(&mut rng, (idx.len() - i) as u64) as usize;
            idx.swap(i, j);
        }
        let mut held = vec![false; corpus.len()];
        for &g in &idx[..k] {
            held[g] = true;
        }
        let (mut tr, mut va) = (Vec::new(), Vec::new());
        for (g, &is_val) in held.iter().enumerate() {
            let mut versions = BTreeMap::new();
            for &l in corpus.group_langs(g) {
                let t = corpus.texts(&PairRef {
                    group: g,
                    query_lang: l,
                    passage_lang: l,
                })?;
                versions.insert(
                    corpus.language(l).to_string(),
                    Example {
                        query: t.query.into_owned(),
                        positive: t.positive.into_owned(),
                        positive_context: t.positive_context.map(|c| c.into_owned()),
                        negatives: t.negatives.into_iter().map(|n| n.into_owned()).collect(),
                    },
                );
            }
            let group = Group {
                id: corpus.group_id(g).to_string(),
                versions,
            };
            if is_val {
                va.push(group);
            } else {
                tr.push(group);
            }
        }
        let name = corpus.name().to_string();
        train.push(Corpus::from_groups(name.clone(), tr)?);
        val.push(Corpus::from_groups(format!("{name}:val"), va)?);
    }
    Ok((train, val))
}

/// The fixed validation batches: `ceil(groups / b)` batches of the training sampler's kind
/// (`b` = the batch size, or fewer when the held-out groups cannot fill it).
fn validation_batches(
    model: &Model,
    val: &[Corpus],
    cfg: &TrainConfig,
    max_len: usize,
) -> Result<Vec<TokenizedBatch>> {
    if val.is_empty() {
        return Ok(Vec::new());
    }
    let groups: usize = val.iter().map(Corpus::len).sum();
    let smallest = val.iter().map(Corpus::len).min().unwrap_or(0);
    let b = cfg.batch_size.min(smallest).max(2);
    let sampler_cfg = SamplerConfig::new(cfg.sampler, b, cfg.seed ^ 0x7661_6c5f_6261_7463);
    let mut sampler = Sampler::new(val, sampler_cfg).map_err(|e| {
        TrainError::Config(format!(
            "the {groups} held-out groups cannot form validation batches of {b}: {e} (raise \
             --val-groups)"
        ))
    })?;
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x7661_6c5f_6e65_6773);
    (0..groups.div_ceil(b))
        .map(|_| {
            let batch = sampler.next_batch();
            tokenize_batch(
                model,
                &val[batch.corpus],
                &batch.pairs,
                batch.kind,
                max_len,
                cfg.max_negatives,
                &mut rng,
            )
        })
        .collect()
}

fn read_state(dir: &Path) -> Result<TrainerState> {
    let p = dir.join(STATE_FILE);
    let text = std::fs::read_to_string(&p).map_err(|e| TrainError::io(&p, e))?;
    let st: TrainerState = serde_json::from_str(&text)
        .map_err(|e| TrainError::checkpoint(&p, format!("not a training state: {e}")))?;
    if st.format != TRAINER_STATE_FORMAT {
        return Err(TrainError::checkpoint(
            &p,
            format!(
                "state format {} (this build reads {TRAINER_STATE_FORMAT})",
                st.format
            ),
        ));
    }
    Ok(st)
}

fn write_json_line(file: &mut std::fs::File, path: &Path, v: &impl Serialize) -> Result<()> {
    let mut line = serde_json::to_string(v).expect("json");
    line.push('\n');
    file.write_all(line.as_bytes())
        .and_then(|()| file.flush())
        .map_err(|e| TrainError::io(path, e))
}

/// Keeps the lines of `log.jsonl` up to `step` (a resumed run rewrites what follows).
fn truncate_log(path: &Path, step: u64) -> Result<()> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(());
    };
    let mut kept = String::new();
    for line in text.lines() {
        let v: serde_json::Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(_) => break, // a line cut by the interruption
        };
        if v.get("step")
            .and_then(|s| s.as_u64())
            .is_some_and(|s| s <= step)
        {
            kept.push_str(line);
            kept.push('\n');
        }
    }
    let tmp = path.with_extension("jsonl.tmp");
    std::fs::write(&tmp, kept).map_err(|e| TrainError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| TrainError::io(path, e))
}

fn empty_weights() -> Weights {
    Weights {
        word: Vec::new(),
        pos: Vec::new(),
        typ: Vec::new(),
        emb_ln: multiret_model::weights::Norm {
            w: Vec::new(),
            b: Vec::new(),
        },
        layers: Vec::new(),
    }
}

/// Runs training as configured. `eval` is called on the final checkpoint when
/// [`TrainConfig::eval`] is set (an error when it is set and no hook is given).
pub fn train(cfg: &TrainConfig, eval: Option<&mut EvalHook<'_>>) -> Result<TrainSummary> {
    cfg.validate()?;
    if cfg.eval.is_some() && eval.is_none() {
        return Err(TrainError::Config(
            "an evaluation dataset was given but this build has no evaluation hook".into(),
        ));
    }
    let go = move || -> Result<TrainSummary> {
        match cfg.device {
            DeviceChoice::Cpu => run::<crate::FlexTrain>(cfg, &Default::default()),
            DeviceChoice::Cuda(_i) => {
                #[cfg(feature = "cuda")]
                {
                    let device = burn::backend::cuda::CudaDevice::new(_i);
                    run::<crate::CudaTrain>(cfg, &device)
                }
                #[cfg(not(feature = "cuda"))]
                Err(TrainError::Device(
                    "this build has no CUDA backend (rebuild multiret-train with --features cuda)"
                        .into(),
                ))
            }
        }
    };
    let mut summary = match cfg.threads {
        Some(n) => rayon::ThreadPoolBuilder::new()
            .num_threads(n.max(1))
            .build()
            .map_err(|e| TrainError::Config(format!("thread pool: {e}")))?
            .install(go)?,
        None => go()?,
    };
    if let (Some(name), Some(hook), false) = (&cfg.eval, eval, summary.already_finished) {
        let report = cfg.out.join("eval.json");
        hook(&summary.checkpoint, name, &report).map_err(TrainError::Eval)?;
        let md = report.with_extension("md");
        if md.is_file() {
            let text = std::fs::read_to_string(&md).map_err(|e| TrainError::io(&md, e))?;
            let model = Model::load_hf_dir(&summary.checkpoint)?;
            let mut card = training_card(cfg);
            card.training.push((
                "steps".into(),
                format!("{} of {}", summary.steps, cfg.steps),
            ));
            card.evaluation = Some(format!("`multiret eval --dataset {name}`:\n\n{text}"));
            model.write_card(&summary.checkpoint, &card)?;
        }
        summary.eval_report = Some(report);
    }
    Ok(summary)
}

/// Which checkpoint a run starts from.
enum Start {
    Fresh,
    Resume(PathBuf, TrainerState),
    Finished(PathBuf, TrainerState),
}

fn find_start(cfg: &TrainConfig) -> Result<Start> {
    let out = &cfg.out;
    let final_dir = out.join(FINAL_DIR);
    let periodic = checkpoint::periodic_checkpoints(out);
    let has_run = out.join("log.jsonl").exists()
        || !periodic.is_empty()
        || final_dir.exists()
        || out.join(BEST_DIR).exists();
    if !cfg.resume {
        if has_run {
            return Err(TrainError::Config(format!(
                "{} already holds a training run; pass --resume to continue it or choose \
                 another --out",
                out.display()
            )));
        }
        return Ok(Start::Fresh);
    }
    if final_dir.join(STATE_FILE).is_file() {
        let st = read_state(&final_dir)?;
        if st.finished {
            return Ok(Start::Finished(final_dir, st));
        }
    }
    match periodic.last() {
        Some((_, p)) => {
            let st = read_state(p)?;
            Ok(Start::Resume(p.clone(), st))
        }
        None => Ok(Start::Fresh),
    }
}

struct Session<B: AutodiffBackend> {
    device: B::Device,
    /// The model without its weights: name, configuration, settings, tokenizer.
    shell: Model,
    /// The model card of the checkpoints, less the step count (see [`Session::card`]).
    card: ModelCard,
    /// Steps the run was configured for.
    total_steps: u64,
    encoder: Option<Encoder<B>>,
    optim: AdamWOptimizer<B, Encoder<B>>,
    sampler: Sampler,
    rng: ChaCha8Rng,
    state: TrainerState,
}

impl<B: AutodiffBackend> Session<B> {
    fn encoder(&self) -> &Encoder<B> {
        self.encoder
            .as_ref()
            .expect("encoder present between steps")
    }

    fn model_with(&self, weights: Weights) -> Model {
        Model {
            name: self.shell.name.clone(),
            config: self.shell.config.clone(),
            settings: self.shell.settings.clone(),
            tokenizer: self.shell.tokenizer.clone(),
            weights,
            head: self.shell.head.clone(),
        }
    }

    /// The model card of a checkpoint at the current step.
    fn card(&self) -> ModelCard {
        let mut card = self.card.clone();
        card.training.push((
            "steps".into(),
            format!(
                "{} of {}",
                self.state.weights_step.max(self.state.step),
                self.total_steps
            ),
        ));
        card
    }

    fn sync_state(&mut self) {
        self.state.sampler = self.sampler.state();
        self.state.rng_word_pos = self.rng.get_word_pos().to_string();
    }

    /// Writes a checkpoint directory: the HF files and the training state (and the optimiser
    /// state when `resumable`).
    fn save(&self, dest: &Path, resumable: bool) -> Result<()> {
        let model = self.model_with(self.encoder().to_weights());
        let optim = if resumable {
            Some(self.optim.to_bytes()?)
        } else {
            None
        };
        let state = serde_json::to_string_pretty(&self.state).expect("json");
        let card = self.card();
        checkpoint::write_dir_atomic(dest, |tmp| {
            model.save_hf_dir(tmp, &card)?;
            if let Some(bytes) = &optim {
                checkpoint::write_file(tmp, OPTIMIZER_FILE, bytes)?;
            }
            checkpoint::write_file(tmp, STATE_FILE, state.as_bytes())
        })
    }
}

fn run<B: AutodiffBackend>(cfg: &TrainConfig, device: &B::Device) -> Result<TrainSummary> {
    let out = &cfg.out;
    std::fs::create_dir_all(out).map_err(|e| TrainError::io(out, e))?;
    let recovered = checkpoint::recover(out)?;
    let start = find_start(cfg)?;
    if let Start::Finished(dir, st) = &start {
        if st.run != cfg.run_key() {
            return Err(TrainError::checkpoint(
                dir,
                format!(
                    "finished with other settings: {}",
                    st.run.diff(&cfg.run_key()).join(", ")
                ),
            ));
        }
        return Ok(TrainSummary {
            steps: st.step,
            resumed_from: Some(st.step),
            already_finished: true,
            stopped_early: st.stopped_early,
            last_loss: None,
            best_val: st.best_val_loss.zip(st.best_step),
            tokens_per_s: 0.0,
            checkpoint: dir.clone(),
            eval_report: None,
            recovered,
        });
    }

    // The model: the base spec, or the checkpoint being resumed.
    let mut model = match &start {
        Start::Resume(dir, _) => Model::load_hf_dir(dir)?,
        _ => Model::load(&cfg.model, &cfg.cache_dir)?,
    };
    if !matches!(model.tokenizer, Tokenizer::Hf(_)) {
        return Err(TrainError::Config(format!(
            "model `{}` has no tokenizer.json, which HF checkpoints need (place one beside the \
             .bin file)",
            cfg.model
        )));
    }
    if !model.head.is_empty() {
        return Err(TrainError::Config(format!(
            "model `{}` has {} Dense module(s) after pooling; training such a head is not \
             supported yet",
            cfg.model,
            model.head.dense.len()
        )));
    }
    let max_len = cfg.max_len.unwrap_or(usize::MAX).min(model.max_tokens());
    let weights = std::mem::replace(&mut model.weights, empty_weights());
    let encoder = Encoder::<B>::from_weights(&model.config, &weights, device)?
        .with_settings(&model.settings)
        .freeze_word_embeddings(cfg.freeze_embeddings)
        .with_bf16_matmul(cfg.bf16_matmul)
        .with_kernels(cfg.cpu_kernels);
    drop(weights);

    // Data.
    let options = LoadOptions {
        unit: cfg.passage,
        mmarco: MmarcoOptions {
            max_negatives: cfg.mmarco_negatives,
            ..MmarcoOptions::default()
        },
    };
    let (corpora, weights) = load_train(&cfg.train, &cfg.data_dir, &options)?;
    let n_corpora = corpora.len();
    let (corpora, val) = split_validation(corpora, cfg.val_groups, cfg.seed)?;
    let val_batches = validation_batches(&model, &val, cfg, max_len)?;
    drop(val);
    let mut sampler_cfg = SamplerConfig::new(cfg.sampler, cfg.batch_size, cfg.seed);
    if let Some(w) = weights {
        debug_assert_eq!(w.len(), n_corpora);
        sampler_cfg = sampler_cfg.with_weights(w);
    }

    let mut optim = AdamWOptimizer::<B, Encoder<B>>::new(&cfg.adamw);
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x6e65_6761_7469_7665);
    let (sampler, state, resumed_from) = match &start {
        Start::Resume(dir, st) => {
            if st.run != cfg.run_key() {
                return Err(TrainError::checkpoint(
                    dir,
                    format!(
                        "saved with other settings: {}",
                        st.run.diff(&cfg.run_key()).join(", ")
                    ),
                ));
            }
            let op = dir.join(OPTIMIZER_FILE);
            let bytes = std::fs::read(&op).map_err(|e| TrainError::io(&op, e))?;
            optim = optim.load_bytes(bytes, device)?;
            let pos: u128 = st.rng_word_pos.parse().map_err(|_| {
                TrainError::checkpoint(dir, format!("bad rng_word_pos {:?}", st.rng_word_pos))
            })?;
            rng.set_word_pos(pos);
            let sampler = Sampler::resume(&corpora, &st.sampler)?;
            truncate_log(&out.join("log.jsonl"), st.step)?;
            (sampler, st.clone(), Some(st.step))
        }
        _ => {
            let sampler = Sampler::new(&corpora, sampler_cfg)?;
            let state = TrainerState {
                format: TRAINER_STATE_FORMAT,
                step: 0,
                weights_step: 0,
                finished: false,
                stopped_early: false,
                sampler: sampler.state(),
                rng_word_pos: "0".into(),
                best_val_loss: None,
                best_step: None,
                bad_evals: 0,
                tokens_seen: 0,
                elapsed_s: 0.0,
                run: cfg.run_key(),
            };
            // A resumed run with nothing to resume starts over: drop what its first steps left.
            let _ = std::fs::remove_file(out.join("log.jsonl"));
            let _ = std::fs::remove_dir_all(out.join(BEST_DIR));
            (sampler, state, None)
        }
    };
    let config_json = serde_json::to_string_pretty(cfg).expect("json");
    multiret_data::write_atomic(&out.join("train_config.json"), config_json.as_bytes())?;

    let card = training_card(cfg);
    let mut s = Session::<B> {
        device: device.clone(),
        card,
        total_steps: cfg.steps,
        shell: model,
        encoder: Some(encoder),
        optim,
        sampler,
        rng,
        state,
    };

    let log_path = out.join("log.jsonl");
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| TrainError::io(&log_path, e))?;

    let bar = if cfg.progress && std::io::stderr().is_terminal() {
        let bar = ProgressBar::with_draw_target(Some(cfg.steps), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "{bar:30} {pos}/{len} {msg} [{elapsed_precise} < {eta_precise}]",
            )
            .expect("template"),
        );
        bar.set_position(s.state.step);
        bar
    } else {
        ProgressBar::hidden()
    };

    let schedule = cfg.schedule();
    let loss_cfg = LossConfig {
        temperature: cfg.temperature,
        symmetric: cfg.symmetric,
    };
    let session_start = Instant::now();
    let elapsed_before = s.state.elapsed_s;
    let (mut session_tokens, mut session_secs) = (0u64, 0f64);
    let mut last_loss = None;
    let val_on = !val_batches.is_empty();
    let eval_interval = cfg.eval_interval();

    while s.state.step < cfg.steps && !s.state.stopped_early {
        let t0 = Instant::now();
        let batch = s.sampler.next_batch();
        let tb = tokenize_batch(
            &s.shell,
            &corpora[batch.corpus],
            &batch.pairs,
            batch.kind,
            max_len,
            cfg.max_negatives,
            &mut s.rng,
        )?;
        let tokens = tb.tokens();
        let enc = s.encoder.take().expect("encoder");
        let (loss, mut grads) = loss_and_grads(
            &enc,
            &tb.queries,
            &tb.passages,
            loss_cfg,
            cfg.accumulate,
            &s.device,
        )?;
        let step = s.state.step + 1;
        if !loss.is_finite() {
            return Err(TrainError::NonFinite { step, loss });
        }
        let norm = match cfg.grad_clip {
            Some(c) => clip_grad_norm::<B, _>(&enc, &mut grads, c),
            None => grad_norm::<B, _>(&enc, &grads),
        };
        let lr = schedule.lr(s.state.step);
        s.encoder = Some(s.optim.step(lr, enc, grads));
        let secs = t0.elapsed().as_secs_f64();
        s.state.step = step;
        s.state.weights_step = step;
        s.state.tokens_seen += tokens as u64;
        session_tokens += tokens as u64;
        session_secs += secs;
        last_loss = Some(loss);

        let mut val_loss = None;
        if val_on && (step.is_multiple_of(eval_interval) || step == cfg.steps) {
            let inner = s.encoder().valid();
            let mut sum = 0.0f64;
            for vb in &val_batches {
                sum += loss_only(&inner, &vb.queries, &vb.passages, loss_cfg, &s.device)? as f64;
            }
            let v = sum / val_batches.len() as f64;
            val_loss = Some(v);
            if s.state.best_val_loss.is_none_or(|b| v < b) {
                s.state.best_val_loss = Some(v);
                s.state.best_step = Some(step);
                s.state.bad_evals = 0;
                if cfg.patience.is_some() {
                    s.state.elapsed_s = elapsed_before + session_start.elapsed().as_secs_f64();
                    s.sync_state();
                    s.save(&out.join(BEST_DIR), false)?;
                }
            } else {
                s.state.bad_evals += 1;
                if cfg.patience.is_some_and(|p| s.state.bad_evals >= p) {
                    s.state.stopped_early = true;
                }
            }
        }
        s.state.elapsed_s = elapsed_before + session_start.elapsed().as_secs_f64();
        let entry = StepLog {
            step,
            loss,
            lr,
            tokens_per_s: tokens as f64 / secs.max(1e-9),
            tokens,
            grad_norm: norm,
            kind: tb.kind,
            elapsed_s: s.state.elapsed_s,
            val_loss,
        };
        write_json_line(&mut log, &log_path, &entry)?;
        bar.set_position(step);
        bar.set_message(format!(
            "loss {loss:.4} lr {lr:.2e} {:.0} tok/s{}",
            entry.tokens_per_s,
            val_loss.map(|v| format!(" val {v:.4}")).unwrap_or_default()
        ));

        let last = step == cfg.steps || s.state.stopped_early;
        if !last && cfg.checkpoint_every.is_some_and(|k| step.is_multiple_of(k)) {
            s.sync_state();
            s.save(&out.join(format!("{PERIODIC_PREFIX}{step}")), true)?;
            checkpoint::prune(out, cfg.keep_checkpoints)?;
        }
    }
    bar.finish_and_clear();

    // The final checkpoint: the best validated weights after early stopping, else the last.
    s.state.finished = true;
    s.sync_state();
    let final_dir = out.join(FINAL_DIR);
    let best_dir = out.join(BEST_DIR);
    if cfg.patience.is_some() && best_dir.join(STATE_FILE).is_file() {
        let best = read_state(&best_dir)?;
        let mut state = s.state.clone();
        state.weights_step = best.weights_step;
        let state = serde_json::to_string_pretty(&state).expect("json");
        checkpoint::write_dir_atomic(&final_dir, |tmp| {
            checkpoint::copy_dir(&best_dir, tmp, &[STATE_FILE])?;
            checkpoint::write_file(tmp, STATE_FILE, state.as_bytes())
        })?;
    } else {
        s.save(&final_dir, false)?;
    }

    Ok(TrainSummary {
        steps: s.state.step,
        resumed_from,
        already_finished: false,
        stopped_early: s.state.stopped_early,
        last_loss,
        best_val: s.state.best_val_loss.zip(s.state.best_step),
        tokens_per_s: if session_secs > 0.0 {
            session_tokens as f64 / session_secs
        } else {
            0.0
        },
        checkpoint: final_dir,
        eval_report: None,
        recovered,
    })
}

/// The model card of a run's checkpoints: the base model and the settings that define the
/// training.
fn training_card(cfg: &TrainConfig) -> ModelCard {
    let base = match multiret_model::fetch::Builtin::from_name(&cfg.model) {
        Some(b) => b.hf_id().to_string(),
        None => cfg.model.clone(),
    };
    let sampler = match cfg.sampler {
        SamplerKind::Hybrid { alpha } => {
            format!("hybrid (monolingual batch with probability {alpha})")
        }
        SamplerKind::Mono => "X-X-mono (one language per batch)".to_string(),
        SamplerKind::Cross => "X-Y (cross-lingual pairs)".to_string(),
        SamplerKind::Mixed => "X-X mixed (monolingual pairs, languages mixed)".to_string(),
    };
    let mut training = vec![
        ("training data".to_string(), cfg.train.clone()),
        ("sampler".to_string(), sampler),
        ("batch size".to_string(), cfg.batch_size.to_string()),
        ("learning rate".to_string(), cfg.lr.to_string()),
        ("temperature".to_string(), cfg.temperature.to_string()),
        ("symmetric loss".to_string(), cfg.symmetric.to_string()),
        (
            "frozen word embeddings".to_string(),
            cfg.freeze_embeddings.to_string(),
        ),
        ("seed".to_string(), cfg.seed.to_string()),
    ];
    if let Some(m) = cfg.max_len {
        training.push(("max tokens".to_string(), m.to_string()));
    }
    ModelCard {
        base_model: Some(base),
        training,
        evaluation: None,
    }
}

/// `true`: the default of settings added after a state format was fixed.
fn yes() -> bool {
    true
}
