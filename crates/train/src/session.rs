//! A training session: opening a run (fresh, resumed, or already finished), its steps with
//! validation and periodic checkpoints, and the final checkpoint.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::AutodiffModule;
use burn::tensor::backend::AutodiffBackend;
use multiret_model::{Model, ModelCard, Tokenizer, Weights};
use multiret_sampler::{Sampler, SamplerKind};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::checkpoint::{
    self, BEST_DIR, FINAL_DIR, MERGED_DIR, MERGE_FILE, OPTIMIZER_FILE, PERIODIC_PREFIX, STATE_FILE,
};
use crate::config::TrainConfig;
use crate::data::{TokenizedBatch, TrainData};
use crate::encoder::TrainableEncoder;
use crate::error::{Result, TrainError};
use crate::optim::{clip_grad_norm, grad_norm, AdamWOptimizer};
use crate::state::{truncate_log, LogWriter, RunKey, StepLog, TrainerState, LOG_FILE};
use crate::step::{loss_and_grads, loss_only, LossConfig};
use crate::validation::{RetrievalHook, RetrievalScores, Select};

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
    /// The merge with the starting model (`--merge-grid`): its directory and weight.
    pub merged: Option<(PathBuf, f32)>,
    /// The evaluation report, when the hook ran.
    pub eval_report: Option<PathBuf>,
    /// Temporary or set-aside directories cleaned up at start.
    pub recovered: Vec<PathBuf>,
}

/// A run opened by [`Session::open`].
pub(crate) enum Opened<'a, B: AutodiffBackend> {
    /// The run had finished with the same settings: nothing to do.
    Finished(TrainSummary),
    /// Ready for its next step.
    Ready(Box<Session<'a, B>>),
}

/// A run in progress: the model being trained, its optimiser, data, sampler and generator,
/// and the state saved with its checkpoints.
pub(crate) struct Session<'a, B: AutodiffBackend> {
    cfg: &'a TrainConfig,
    /// Scores the current weights on the held-out groups at each validation.
    retrieval: Option<&'a mut RetrievalHook<'a>>,
    device: B::Device,
    /// The model without its weights: name, configuration, settings, tokenizer.
    shell: Model,
    data: TrainData,
    /// The encoder (taken out during an update).
    encoder: Option<TrainableEncoder<B>>,
    optim: AdamWOptimizer<B, TrainableEncoder<B>>,
    sampler: Sampler,
    rng: ChaCha8Rng,
    state: TrainerState,
    log: LogWriter,
    resumed_from: Option<u64>,
    recovered: Vec<PathBuf>,
    /// When this session started, and the training seconds of the sessions before.
    started: Instant,
    elapsed_before: f64,
    /// Tokens and seconds of this session's steps.
    session_tokens: u64,
    session_secs: f64,
    last_loss: Option<f32>,
}

/// Which checkpoint a run starts from.
enum Start {
    Fresh,
    Resume(PathBuf, TrainerState),
    Finished(PathBuf, TrainerState),
}

impl<'a, B: AutodiffBackend> Session<'a, B> {
    /// Opens the run of `cfg` in its output directory: cleans up what an interruption left
    /// ([`checkpoint::recover`]), then starts afresh, or (with [`TrainConfig::resume`])
    /// continues the newest checkpoint, whose settings must be the same ([`RunKey`]).
    pub(crate) fn open(
        cfg: &'a TrainConfig,
        device: &B::Device,
        retrieval: Option<&'a mut RetrievalHook<'a>>,
    ) -> Result<Opened<'a, B>> {
        if cfg.select != Select::Loss && retrieval.is_none() {
            return Err(TrainError::Config(format!(
                "--select {} needs a retrieval validation hook, which this caller does not give",
                cfg.select.name()
            )));
        }
        let out = &cfg.out;
        std::fs::create_dir_all(out).map_err(|e| TrainError::io(out, e))?;
        let recovered = checkpoint::recover(out)?;
        let run = RunKey::of(cfg);
        let start = find_start(cfg)?;
        match &start {
            Start::Finished(dir, st) => {
                st.run.ensure_same(&run, dir, "finished")?;
                // A merge that an error or an interruption left undone is made now.
                let (merged, merged_now) = match merged_before(cfg) {
                    _ if cfg.merge_grid.is_empty() => (None, false),
                    Some(m) => (Some(m), false),
                    None => {
                        let tuned = Model::load_hf_dir(dir)?;
                        let max_len = cfg.max_len.unwrap_or(usize::MAX).min(tuned.max_tokens());
                        let data = TrainData::load(cfg, &tuned, max_len)?;
                        let m = merge(cfg, &tuned, dir, &data.held_out, retrieval)?;
                        (Some(m), true)
                    }
                };
                return Ok(Opened::Finished(TrainSummary {
                    steps: st.step,
                    resumed_from: Some(st.step),
                    already_finished: !merged_now,
                    stopped_early: st.stopped_early,
                    last_loss: None,
                    best_val: st.best_val_loss.zip(st.best_step),
                    tokens_per_s: 0.0,
                    checkpoint: dir.clone(),
                    merged,
                    eval_report: None,
                    recovered,
                }));
            }
            Start::Resume(dir, st) => st.run.ensure_same(&run, dir, "saved")?,
            Start::Fresh => {}
        }

        let (shell, encoder, max_len) = load_model::<B>(cfg, &start, device)?;
        let data = TrainData::load(cfg, &shell, max_len)?;
        let mut optim = AdamWOptimizer::<B, TrainableEncoder<B>>::new(&cfg.adamw);
        let mut rng = batch_rng(cfg);
        let (sampler, state, resumed_from) = match start {
            Start::Resume(dir, mut st) => {
                let op = dir.join(OPTIMIZER_FILE);
                let bytes = std::fs::read(&op).map_err(|e| TrainError::io(&op, e))?;
                optim = optim.load_bytes(bytes, device)?;
                rng.set_word_pos(st.word_pos(&dir)?);
                let sampler = data.sampler(Some(&st.sampler))?;
                truncate_log(out, st.step)?;
                st.run = run;
                let from = st.step;
                (sampler, st, Some(from))
            }
            _ => {
                let sampler = data.sampler(None)?;
                let state = TrainerState::fresh(sampler.state(), run);
                // A resumed run with nothing to resume starts over: drop what its first steps
                // left.
                let _ = std::fs::remove_file(out.join(LOG_FILE));
                let _ = std::fs::remove_dir_all(out.join(BEST_DIR));
                let _ = std::fs::remove_dir_all(out.join(MERGED_DIR));
                let _ = std::fs::remove_file(out.join(MERGE_FILE));
                (sampler, state, None)
            }
        };
        let config_json = serde_json::to_string_pretty(cfg).expect("json");
        multiret_data::write_atomic(&out.join("train_config.json"), config_json.as_bytes())?;
        let log = LogWriter::open(out)?;
        Ok(Opened::Ready(Box::new(Session {
            cfg,
            retrieval,
            device: device.clone(),
            shell,
            data,
            encoder: Some(encoder),
            optim,
            sampler,
            rng,
            elapsed_before: state.elapsed_s,
            state,
            log,
            resumed_from,
            recovered,
            started: Instant::now(),
            session_tokens: 0,
            session_secs: 0.0,
            last_loss: None,
        })))
    }

    /// Optimiser steps done (all sessions).
    pub(crate) fn steps_done(&self) -> u64 {
        self.state.step
    }

    /// All steps are done, or early stopping stopped the run.
    pub(crate) fn is_done(&self) -> bool {
        self.state.step >= self.cfg.steps || self.state.stopped_early
    }

    /// One step: an optimiser update on the next batch, the validation loss when it is due,
    /// the line of `log.jsonl`, and a periodic checkpoint when one is due. Returns the line.
    pub(crate) fn step(&mut self) -> Result<StepLog> {
        let cfg = self.cfg;
        let t0 = Instant::now();
        let batch = self.sampler.next_batch();
        let tb = self.data.tokenize(&self.shell, &batch, &mut self.rng)?;
        let tokens = tb.tokens();
        let enc = self.encoder.take().expect("encoder");
        let lr = cfg.schedule().lr(self.state.step);
        let step = self.state.step + 1;
        let (enc, loss, norm) = update(cfg, enc, &mut self.optim, &tb, lr, step, &self.device)?;
        self.encoder = Some(enc);
        let secs = t0.elapsed().as_secs_f64();
        self.state.step = step;
        self.state.weights_step = step;
        self.state.tokens_seen += tokens as u64;
        self.session_tokens += tokens as u64;
        self.session_secs += secs;
        self.last_loss = Some(loss);

        let (val_loss, val) = match self.validate()? {
            Some((l, r)) => (Some(l), r),
            None => (None, None),
        };
        self.tick();
        let entry = StepLog {
            step,
            loss,
            lr,
            tokens_per_s: tokens as f64 / secs.max(1e-9),
            tokens,
            grad_norm: norm,
            kind: tb.kind,
            elapsed_s: self.state.elapsed_s,
            val_loss,
            val,
        };
        self.log.append(&entry)?;
        let last = step == cfg.steps || self.state.stopped_early;
        if !last && cfg.checkpoint_every.is_some_and(|k| step.is_multiple_of(k)) {
            self.sync_state();
            self.save(&cfg.out.join(format!("{PERIODIC_PREFIX}{step}")), true)?;
            checkpoint::prune(&cfg.out, cfg.keep_checkpoints)?;
        }
        Ok(entry)
    }

    /// The validation loss after the current step, when it is due (every
    /// [`TrainConfig::eval_interval`] steps and after the last), and the retrieval scores on
    /// the held-out groups when there is a hook: keeps the best validation by
    /// [`TrainConfig::select`] (its weights in `best/` when [`TrainConfig::keeps_best`]) and
    /// stops the run after [`TrainConfig::patience`] validations without improvement.
    fn validate(&mut self) -> Result<Option<(f64, Option<RetrievalScores>)>> {
        let (cfg, step) = (self.cfg, self.state.step);
        let due = step.is_multiple_of(cfg.eval_interval()) || step == cfg.steps;
        if self.data.validation.is_empty() || !due {
            return Ok(None);
        }
        let inner = self.encoder().valid();
        let mut sum = 0.0f64;
        for vb in &self.data.validation {
            let loss = loss_only(
                &inner,
                &vb.queries,
                &vb.passages,
                &vb.mask,
                loss_config(cfg),
                &self.device,
            )?;
            sum += loss as f64;
        }
        let v = sum / self.data.validation.len() as f64;
        let scores = if self.retrieval.is_some() {
            let model = Model {
                weights: self.encoder().to_weights(),
                ..self.shell_clone()
            };
            let held_out = &self.data.held_out;
            match self.retrieval.as_mut() {
                Some(hook) => hook(model, held_out).map_err(TrainError::Eval)?,
                None => None,
            }
        } else {
            None
        };
        let score = cfg.select.score(v, scores.as_ref()).ok_or_else(|| {
            TrainError::Config(format!(
                "--select {} needs retrieval scores, and the training data ({}) is not a \
                 LAReQA dataset the validation can score",
                cfg.select.name(),
                cfg.train
            ))
        })?;
        if !v.is_finite() {
            return Err(TrainError::NonFiniteValidation {
                step,
                what: "loss".into(),
                value: v,
            });
        }
        if !score.is_finite() {
            return Err(TrainError::NonFiniteValidation {
                step,
                what: format!("score ({})", cfg.select.name()),
                value: score,
            });
        }
        // Runs saved before `best_score` existed selected by the loss: their best is -loss.
        let best = self
            .state
            .best_score
            .or(self.state.best_val_loss.map(|l| -l));
        let improved = best.is_none_or(|b| score > b);
        if improved {
            self.state.best_score = Some(score);
            self.state.best_val_loss = Some(v);
            self.state.best_step = Some(step);
            self.state.bad_evals = 0;
            if cfg.keeps_best() {
                self.tick();
                self.sync_state();
                self.save(&cfg.out.join(BEST_DIR), false)?;
            }
        } else {
            self.state.bad_evals += 1;
            if cfg.patience.is_some_and(|p| self.state.bad_evals >= p) {
                self.state.stopped_early = true;
            }
        }
        Ok(Some((v, scores)))
    }

    /// The model without its weights (name, configuration, settings, tokenizer, head), with
    /// an empty weight set for the caller to fill.
    fn shell_clone(&self) -> Model {
        Model {
            name: self.shell.name.clone(),
            config: self.shell.config.clone(),
            settings: self.shell.settings.clone(),
            tokenizer: self.shell.tokenizer.clone(),
            weights: empty_weights(),
            head: self.shell.head.clone(),
        }
    }

    /// Writes the final checkpoint (the best validated weights after early stopping, else the
    /// last ones) and sums the session up.
    pub(crate) fn finish(mut self) -> Result<TrainSummary> {
        self.state.finished = true;
        self.sync_state();
        let final_dir = self.cfg.out.join(FINAL_DIR);
        let best_dir = self.cfg.out.join(BEST_DIR);
        if self.cfg.keeps_best() && best_dir.join(STATE_FILE).is_file() {
            let best = TrainerState::read(&best_dir)?;
            let mut state = self.state.clone();
            state.weights_step = best.weights_step;
            let state = state.to_json();
            checkpoint::write_dir_atomic(&final_dir, |tmp| {
                checkpoint::copy_dir(&best_dir, tmp, &[STATE_FILE])?;
                checkpoint::write_file(tmp, STATE_FILE, state.as_bytes())
            })?;
        } else {
            self.save(&final_dir, false)?;
        }
        let merged = if self.cfg.merge_grid.is_empty() {
            None
        } else {
            let tuned = Model::load_hf_dir(&final_dir)?;
            let hook = self.retrieval.as_deref_mut();
            Some(merge(
                self.cfg,
                &tuned,
                &final_dir,
                &self.data.held_out,
                hook,
            )?)
        };
        Ok(TrainSummary {
            steps: self.state.step,
            resumed_from: self.resumed_from,
            already_finished: false,
            stopped_early: self.state.stopped_early,
            last_loss: self.last_loss,
            best_val: self.state.best_val_loss.zip(self.state.best_step),
            tokens_per_s: if self.session_secs > 0.0 {
                self.session_tokens as f64 / self.session_secs
            } else {
                0.0
            },
            checkpoint: final_dir,
            merged,
            eval_report: None,
            recovered: self.recovered,
        })
    }

    /// Writes a checkpoint directory: the HF files and the training state (and the optimiser
    /// state when `resumable`).
    fn save(&self, dest: &Path, resumable: bool) -> Result<()> {
        let model = Model {
            weights: self.encoder().to_weights(),
            ..self.shell_clone()
        };
        let optim = if resumable {
            Some(self.optim.to_bytes()?)
        } else {
            None
        };
        let state = self.state.to_json();
        let steps = self.state.weights_step.max(self.state.step);
        let card = training_card(self.cfg, steps);
        checkpoint::write_dir_atomic(dest, |tmp| {
            model.save_hf_dir(tmp, &card)?;
            if let Some(bytes) = &optim {
                checkpoint::write_file(tmp, OPTIMIZER_FILE, bytes)?;
            }
            checkpoint::write_file(tmp, STATE_FILE, state.as_bytes())
        })
    }

    fn encoder(&self) -> &TrainableEncoder<B> {
        self.encoder
            .as_ref()
            .expect("encoder present between steps")
    }

    /// Training seconds of all sessions, into the state.
    fn tick(&mut self) {
        self.state.elapsed_s = self.elapsed_before + self.started.elapsed().as_secs_f64();
    }

    /// The sampler's and the generator's positions, into the state.
    fn sync_state(&mut self) {
        self.state.sampler = self.sampler.state();
        self.state.rng_word_pos = self.rng.get_word_pos().to_string();
    }
}

/// Where the run of `cfg` starts: afresh (also when `--resume` finds no checkpoint), from
/// its newest periodic checkpoint, or nowhere (its final checkpoint says it finished).
fn find_start(cfg: &TrainConfig) -> Result<Start> {
    let out = &cfg.out;
    let final_dir = out.join(FINAL_DIR);
    let periodic = checkpoint::periodic_checkpoints(out);
    let has_run = out.join(LOG_FILE).exists()
        || !periodic.is_empty()
        || final_dir.exists()
        || out.join(BEST_DIR).exists()
        || out.join(MERGED_DIR).exists()
        || out.join(MERGE_FILE).exists();
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
        let st = TrainerState::read(&final_dir)?;
        if st.finished {
            return Ok(Start::Finished(final_dir, st));
        }
    }
    match periodic.last() {
        Some((_, p)) => {
            let st = TrainerState::read(p)?;
            Ok(Start::Resume(p.clone(), st))
        }
        None => Ok(Start::Fresh),
    }
}

/// The model a run trains (the checkpoint it resumes, else [`TrainConfig::model`]): the
/// model without its weights, the encoder holding them, and the most tokens per text.
fn load_model<B: AutodiffBackend>(
    cfg: &TrainConfig,
    start: &Start,
    device: &B::Device,
) -> Result<(Model, TrainableEncoder<B>, usize)> {
    let mut model = match start {
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
    let layers = model.config.layers;
    if cfg.freeze_embeddings && cfg.freeze_layers >= layers && layers > 0 {
        return Err(TrainError::Config(format!(
            "--freeze-layers {} freezes every layer of the model, and with --freeze-embeddings \
             only the position embeddings and the embedding LayerNorm would train; freeze fewer \
             layers",
            cfg.freeze_layers
        )));
    }
    let weights = std::mem::replace(&mut model.weights, empty_weights());
    let encoder = TrainableEncoder::<B>::from_weights(&model.config, &weights, device)?
        .with_settings(&model.settings)
        .freeze_word_embeddings(cfg.freeze_embeddings)
        .freeze_lower_layers(cfg.freeze_layers)?
        .with_bf16_matmul(cfg.bf16_matmul)
        .with_kernels(cfg.cpu_kernels);
    Ok((model, encoder, max_len))
}

fn empty_weights() -> Weights {
    Weights {
        word: Default::default(),
        pos: Vec::new(),
        typ: Vec::new(),
        emb_ln: multiret_model::weights::Norm {
            w: Vec::new(),
            b: Vec::new(),
        },
        layers: Vec::new(),
    }
}

/// The generator of the batches' random choices (the kept negatives) of a run of `cfg`.
fn batch_rng(cfg: &TrainConfig) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x6e65_6761_7469_7665)
}

/// One optimiser update of a run of `cfg` on `batch` at learning rate `lr`: the loss and its
/// gradients ([`loss_and_grads`], with `cfg`'s loss and accumulation), global-norm clipping
/// when `cfg` asks for it, and the AdamW step. Returns the updated encoder, the loss and the
/// gradient norm before clipping. `step` (from 1) names the update in the error a non-finite
/// loss gives.
pub fn update<B: AutodiffBackend>(
    cfg: &TrainConfig,
    encoder: TrainableEncoder<B>,
    optim: &mut AdamWOptimizer<B, TrainableEncoder<B>>,
    batch: &TokenizedBatch,
    lr: f64,
    step: u64,
    device: &B::Device,
) -> Result<(TrainableEncoder<B>, f32, f32)> {
    let (loss, mut grads) = loss_and_grads(
        &encoder,
        &batch.queries,
        &batch.passages,
        &batch.mask,
        loss_config(cfg),
        cfg.accumulate,
        device,
    )?;
    if !loss.is_finite() {
        return Err(TrainError::NonFinite { step, loss });
    }
    let norm = match cfg.grad_clip {
        Some(c) => clip_grad_norm::<B, _>(&encoder, &mut grads, c),
        None => grad_norm::<B, _>(&encoder, &grads),
    };
    Ok((optim.step(lr, encoder, grads), loss, norm))
}

/// What a fresh run of `cfg` starts from: the trainable encoder as `cfg` configures it (from
/// `cfg.model`), the model it came from (its weights moved into the encoder) and the first
/// `n` training batches of the run, tokenised, exactly as [`crate::train`] draws them. For
/// benchmarks and peers that must see the same work.
pub fn first_batches<B: AutodiffBackend>(
    cfg: &TrainConfig,
    n: usize,
    device: &B::Device,
) -> Result<(TrainableEncoder<B>, Model, Vec<TokenizedBatch>)> {
    cfg.validate()?;
    let (model, encoder, max_len) = load_model::<B>(cfg, &Start::Fresh, device)?;
    let data = TrainData::load(cfg, &model, max_len)?;
    let mut sampler = data.sampler(None)?;
    let mut rng = batch_rng(cfg);
    let batches = (0..n)
        .map(|_| data.tokenize(&model, &sampler.next_batch(), &mut rng))
        .collect::<Result<Vec<_>>>()?;
    Ok((encoder, model, batches))
}

fn loss_config(cfg: &TrainConfig) -> LossConfig {
    LossConfig {
        temperature: cfg.temperature,
        symmetric: cfg.symmetric,
    }
}

/// The model card of a run's checkpoints: the base model and the settings that define the
/// training, with `steps` of the run's steps done.
/// The model card's line for a merge at weight `w`.
pub(crate) fn merge_fact(cfg: &TrainConfig, w: f32) -> (String, String) {
    (
        "merged with the starting model".into(),
        format!(
            "(1 - w) start + w trained, w = {w}, chosen by validation {} from {:?}",
            cfg.select.name(),
            cfg.merge_grid
        ),
    )
}

/// The merge grid ([`TrainConfig::merge_grid`]): scores every interpolation of the starting
/// model and the final checkpoint `final_dir` on the held-out groups, writes the best one to
/// `merged/` (an HF directory whose card records the weight and the checkpoint's step) and
/// every score to `merge.json`. Returns the directory and the chosen weight. `tuned` is the
/// checkpoint of `final_dir`, loaded.
fn merge(
    cfg: &TrainConfig,
    tuned: &Model,
    final_dir: &Path,
    held_out: &[String],
    hook: Option<&mut RetrievalHook<'_>>,
) -> Result<(PathBuf, f32)> {
    let steps = TrainerState::read(final_dir)?.weights_step;
    let start = Model::load(&cfg.model, &cfg.cache_dir)?;
    if start.config != tuned.config {
        return Err(TrainError::Config(format!(
            "--merge-grid: the starting model {} and the checkpoint differ in configuration",
            cfg.model
        )));
    }
    // The starting weights in the checkpoint's shell, so that only the weights mix.
    let start = Model {
        name: tuned.name.clone(),
        config: tuned.config.clone(),
        settings: tuned.settings.clone(),
        tokenizer: tuned.tokenizer.clone(),
        weights: start.weights,
        head: tuned.head.clone(),
    };
    let hook = hook.ok_or_else(|| {
        TrainError::Config("--merge-grid needs the retrieval validation hook".into())
    })?;
    let mut rows = Vec::new();
    let mut best: Option<(f64, f32)> = None;
    for &w in &cfg.merge_grid {
        let m = start.interpolate(tuned, w)?;
        let scores = hook(m, held_out)
            .map_err(TrainError::Eval)?
            .ok_or_else(|| {
                TrainError::Config(format!(
                "--merge-grid needs retrieval scores, and the training data ({}) is not a LAReQA \
                 dataset the validation can score",
                cfg.train
            ))
            })?;
        let score = cfg
            .select
            .score(0.0, Some(&scores))
            .expect("a retrieval score");
        if !score.is_finite() {
            return Err(TrainError::NonFiniteValidation {
                step: 0,
                what: format!("score ({}) of the merge with weight {w}", cfg.select.name()),
                value: score,
            });
        }
        rows.push(serde_json::json!({"weight": w, "scores": scores, "score": score}));
        if best.is_none_or(|(b, _)| score > b) {
            best = Some((score, w));
        }
    }
    let (_, w) = best.expect("a non-empty grid");
    let chosen = start.interpolate(tuned, w)?;
    let mut card = training_card(cfg, steps);
    card.training.push(merge_fact(cfg, w));
    let dir = cfg.out.join(MERGED_DIR);
    checkpoint::write_dir_atomic(&dir, |tmp| Ok(chosen.save_hf_dir(tmp, &card)?))?;
    let record = serde_json::json!({
        "select": cfg.select.name(),
        "grid": rows,
        "chosen_weight": w,
        "step": steps,
    });
    multiret_data::write_atomic(
        &cfg.out.join(MERGE_FILE),
        format!("{record:#}\n").as_bytes(),
    )?;
    Ok((dir, w))
}

/// The merge a finished run already made: `merged/` and the weight `merge.json` records.
fn merged_before(cfg: &TrainConfig) -> Option<(PathBuf, f32)> {
    let dir = cfg.out.join(MERGED_DIR);
    let text = std::fs::read_to_string(cfg.out.join(MERGE_FILE)).ok()?;
    let record: serde_json::Value = serde_json::from_str(&text).ok()?;
    let w = record.get("chosen_weight")?.as_f64()? as f32;
    dir.join("model.safetensors").is_file().then_some((dir, w))
}

pub(crate) fn training_card(cfg: &TrainConfig, steps: u64) -> ModelCard {
    let base = multiret_model::fetch::Builtin::base_model_name(&cfg.model);
    let sampler = match cfg.sampler {
        SamplerKind::Hybrid { alpha } => {
            format!("hybrid (monolingual batch with probability {alpha})")
        }
        SamplerKind::Mono => "X-X-mono (one language per batch)".to_string(),
        SamplerKind::Cross => "X-Y (cross-lingual pairs)".to_string(),
        SamplerKind::Mixed => "X-X mixed (monolingual pairs, languages mixed)".to_string(),
        SamplerKind::Group { langs } => {
            format!("group (multi-positive: each group in up to {langs} languages)")
        }
        SamplerKind::HybridGroup { alpha, langs } => format!(
            "hybrid-group (monolingual batch with probability {alpha}, else a group batch of \
             up to {langs} languages per group)"
        ),
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
        (
            "frozen lower layers".to_string(),
            cfg.freeze_layers.to_string(),
        ),
        ("seed".to_string(), cfg.seed.to_string()),
    ];
    if let Some(m) = cfg.max_len {
        training.push(("max tokens".to_string(), m.to_string()));
    }
    training.push(("steps".into(), format!("{steps} of {}", cfg.steps)));
    ModelCard {
        base_model: Some(base),
        training,
        evaluation: None,
    }
}
