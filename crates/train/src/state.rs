//! What a run leaves to resume from: the training state of a checkpoint
//! (`trainer_state.json`: [`TrainerState`], with the [`RunKey`] a resumed run must match) and
//! the step log (`log.jsonl`: one [`StepLog`] per line).

use std::io::Write;
use std::path::{Path, PathBuf};

use multiret_sampler::{BatchKind, SamplerState};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::checkpoint::STATE_FILE;
use crate::config::TrainConfig;
use crate::error::{Result, TrainError};

/// Layout version of [`TrainerState`].
pub const TRAINER_STATE_FORMAT: u32 = 1;

/// File name of the step log in a run's output directory.
pub(crate) const LOG_FILE: &str = "log.jsonl";

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
    /// The validation loss of the best validation (by [`TrainConfig::select`]; the lowest
    /// loss when that is the loss).
    pub best_val_loss: Option<f64>,
    /// Step of the best validation (by [`TrainConfig::select`]).
    pub best_step: Option<u64>,
    /// The best validation score by [`TrainConfig::select`] (higher is better; minus the loss
    /// for `loss`).
    #[serde(default)]
    pub best_score: Option<f64>,
    /// Validations since the last improvement.
    pub bad_evals: u32,
    /// Real tokens (queries and passages) processed.
    pub tokens_seen: u64,
    /// Training seconds so far (all sessions).
    pub elapsed_s: f64,
    pub(crate) run: RunKey,
}

impl TrainerState {
    /// The state of a run before its first step.
    pub(crate) fn fresh(sampler: SamplerState, run: RunKey) -> Self {
        TrainerState {
            format: TRAINER_STATE_FORMAT,
            step: 0,
            weights_step: 0,
            finished: false,
            stopped_early: false,
            sampler,
            rng_word_pos: "0".into(),
            best_val_loss: None,
            best_step: None,
            best_score: None,
            bad_evals: 0,
            tokens_seen: 0,
            elapsed_s: 0.0,
            run,
        }
    }

    /// Reads the state of checkpoint directory `dir` (an error unless it is of
    /// [`TRAINER_STATE_FORMAT`]).
    pub(crate) fn read(dir: &Path) -> Result<Self> {
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

    /// The file's text.
    pub(crate) fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("json")
    }

    /// The generator's word position ([`rng_word_pos`](Self::rng_word_pos)); `dir` names the
    /// checkpoint in the error.
    pub(crate) fn word_pos(&self, dir: &Path) -> Result<u128> {
        self.rng_word_pos.parse().map_err(|_| {
            TrainError::checkpoint(dir, format!("bad rng_word_pos {:?}", self.rng_word_pos))
        })
    }
}

/// The settings that define a run, which a resumed run must share: the [`TrainConfig`] as a
/// JSON object less [`TrainConfig::RESUMABLE_CHANGES`], with `warmup` the warm-up in force and
/// `eval_every` the validation interval in force (`null` without validation).
///
/// A setting added to [`TrainConfig`] joins the key by itself; in a state saved before it
/// existed, it counts as its default ([`TrainConfig::defaults`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub(crate) struct RunKey(Map<String, Value>);

impl RunKey {
    /// The key of `cfg`.
    pub(crate) fn of(cfg: &TrainConfig) -> RunKey {
        // Through the JSON text, which is what a state file holds: an f32 setting is its
        // shortest decimal form there, as it is here.
        let text = serde_json::to_string(cfg).expect("json");
        let Ok(Value::Object(mut map)) = serde_json::from_str(&text) else {
            unreachable!("a struct serialises as a JSON object")
        };
        for k in TrainConfig::RESUMABLE_CHANGES {
            map.remove(*k);
        }
        map.insert("warmup".into(), cfg.warmup_steps().into());
        let eval_every = (cfg.val_groups > 0).then(|| cfg.eval_interval());
        map.insert("eval_every".into(), eval_every.into());
        RunKey(map)
    }

    /// The settings of `now` that differ from this saved key, as `NAME (saved X, now Y)`
    /// (settings the saved key lacks count as their defaults; settings `now` lacks, as no
    /// longer configurable, are not compared).
    pub(crate) fn diff(&self, now: &RunKey) -> Vec<String> {
        let defaults = now
            .0
            .keys()
            .any(|k| !self.0.contains_key(k))
            .then(|| RunKey::of(&TrainConfig::defaults()));
        now.0
            .iter()
            .filter_map(|(k, v)| {
                let saved = self
                    .0
                    .get(k)
                    .or_else(|| defaults.as_ref().and_then(|d| d.0.get(k)))?;
                (saved != v).then(|| format!("{k} (saved {saved}, now {v})"))
            })
            .collect()
    }

    /// An error naming checkpoint `dir` and the settings that differ (`what`: what the
    /// checkpoint's run did with them, "saved", "finished"), unless there are none.
    pub(crate) fn ensure_same(&self, now: &RunKey, dir: &Path, what: &str) -> Result<()> {
        let diff = self.diff(now);
        if diff.is_empty() {
            return Ok(());
        }
        Err(TrainError::checkpoint(
            dir,
            format!("{what} with other settings: {}", diff.join(", ")),
        ))
    }
}

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
    /// Retrieval scores on the held-out groups, on the steps that ran validation with a
    /// retrieval hook (`val_mo`, `val_cr`, `val_mul`, `val_rank_distance`).
    #[serde(default, flatten, skip_serializing_if = "Option::is_none")]
    pub val: Option<crate::validation::RetrievalScores>,
}

/// The step log of a run directory, open for appending.
pub(crate) struct LogWriter {
    file: std::fs::File,
    path: PathBuf,
}

impl LogWriter {
    /// Opens (or creates) `out/log.jsonl` for appending.
    pub(crate) fn open(out: &Path) -> Result<Self> {
        let path = out.join(LOG_FILE);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| TrainError::io(&path, e))?;
        Ok(LogWriter { file, path })
    }

    /// Appends one line, flushed.
    pub(crate) fn append(&mut self, entry: &StepLog) -> Result<()> {
        let mut line = serde_json::to_string(entry).expect("json");
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .and_then(|()| self.file.flush())
            .map_err(|e| TrainError::io(&self.path, e))
    }
}

/// Keeps the lines of `out/log.jsonl` up to `step` (a resumed run rewrites what follows; a
/// line cut by an interruption ends what is kept).
pub(crate) fn truncate_log(out: &Path, step: u64) -> Result<()> {
    let path = out.join(LOG_FILE);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(());
    };
    let mut kept = String::new();
    for line in text.lines() {
        let v: Value = match serde_json::from_str(line) {
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
    std::fs::rename(&tmp, &path).map_err(|e| TrainError::io(&path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(f: impl FnOnce(&mut TrainConfig)) -> RunKey {
        let mut c = TrainConfig::new("m", "t", "o");
        f(&mut c);
        RunKey::of(&c)
    }

    #[test]
    fn run_key_leaves_out_what_may_change_and_names_what_differs() {
        let base = key(|_| {});
        let same = key(|c| {
            c.out = "elsewhere".into();
            c.threads = Some(3);
            c.resume = true;
            c.device = crate::DeviceChoice::Cuda(1);
            c.warmup = Some(100); // a tenth of the default 1000 steps: the same in force
        });
        assert!(base.diff(&same).is_empty());
        let other = key(|c| {
            c.lr = 1e-4;
            c.temperature = 0.1;
        });
        let d = base.diff(&other);
        assert_eq!(d.len(), 2, "{d:?}");
        assert!(d[0].starts_with("lr (saved 0.00003, now 0.0001)"), "{d:?}");
        assert!(
            d[1].starts_with("temperature (saved 0.05, now 0.1"),
            "{d:?}"
        );
        // Validation settings count only with validation.
        assert!(base.diff(&key(|c| c.eval_every = Some(7))).is_empty());
        let val = key(|c| c.val_groups = 4);
        assert_eq!(val.diff(&key(|c| c.val_groups = 4)), Vec::<String>::new());
        assert_eq!(
            val.diff(&key(|c| {
                c.val_groups = 4;
                c.eval_every = Some(7)
            }))
            .len(),
            1
        );
    }

    /// The key as the typed `RunKey` of the first state format wrote it (one field per
    /// setting, f32 settings in their shortest form), without the two settings it gained
    /// later (`bf16_matmul`, `cpu_kernels`).
    const FIRST_FORMAT: &str = r#"{
        "model": "m", "train": "t", "passage": "sentence", "mmarco_negatives": 1,
        "sampler": {"name": "hybrid", "alpha": "0.5"}, "batch_size": 4, "steps": 4,
        "lr": 0.001, "warmup": 1, "temperature": 0.05, "symmetric": true,
        "adamw": {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.01},
        "grad_clip": 1.0, "accumulate": 2, "freeze_embeddings": false, "max_len": null,
        "max_negatives": 1, "seed": 3, "val_groups": 0, "eval_every": null, "patience": null
    }"#;

    #[test]
    fn run_key_matches_the_first_state_format() {
        let saved: RunKey = serde_json::from_str(FIRST_FORMAT).unwrap();
        let now = key(|c| {
            c.batch_size = 4;
            c.steps = 4;
            c.lr = 1e-3;
            c.warmup = Some(1);
            c.symmetric = true;
            c.accumulate = 2;
            c.max_negatives = Some(1);
            c.seed = 3;
        });
        assert_eq!(saved.diff(&now), Vec::<String>::new());
        let back: RunKey = serde_json::from_str(&serde_json::to_string(&now).unwrap()).unwrap();
        assert_eq!(back, now, "the key reads back as it was written");
    }

    #[test]
    fn run_key_reads_states_written_before_a_setting_existed() {
        let now = key(|_| {});
        let mut old = now.clone();
        old.0.remove("bf16_matmul");
        old.0.remove("cpu_kernels");
        old.0.insert("retired".into(), 1.into());
        let text = serde_json::to_string(&old).unwrap();
        let back: RunKey = serde_json::from_str(&text).unwrap();
        assert!(back.diff(&now).is_empty());
        let bf16 = key(|c| c.bf16_matmul = true);
        assert_eq!(back.diff(&bf16), ["bf16_matmul (saved false, now true)"]);
    }
}
