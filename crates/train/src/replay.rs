//! A fresh run's first batches, replayed as training steps on the CPU: the work of
//! `multiret train` without its data loading, validation and checkpoints, for benchmarks and
//! for peers that must do the same work on the same inputs.

use burn::backend::flex::FlexDevice;

use crate::config::TrainConfig;
use crate::data::TokenizedBatch;
use crate::encoder::TrainableEncoder;
use crate::error::{Result, TrainError};
use crate::optim::AdamWOptimizer;
use crate::session::{first_batches, update};
use crate::FlexTrain;

/// The first batches of a fresh run of a configuration and the run's encoder and optimiser
/// on burn-flex, ready to take training steps on those batches in any order.
pub struct Replay {
    cfg: TrainConfig,
    encoder: Option<TrainableEncoder<FlexTrain>>,
    optim: AdamWOptimizer<FlexTrain, TrainableEncoder<FlexTrain>>,
    batches: Vec<TokenizedBatch>,
    steps: u64,
}

impl std::fmt::Debug for Replay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replay")
            .field("batches", &self.batches.len())
            .field("steps", &self.steps)
            .finish()
    }
}

impl Replay {
    /// Loads `cfg`'s model and data and draws the run's first `n` batches ([`first_batches`]);
    /// the device is the CPU whatever `cfg.device` says.
    pub fn new(cfg: &TrainConfig, n: usize) -> Result<Replay> {
        let (encoder, _, batches) = first_batches::<FlexTrain>(cfg, n, &FlexDevice)?;
        Ok(Replay {
            cfg: cfg.clone(),
            encoder: Some(encoder),
            optim: AdamWOptimizer::new(&cfg.adamw),
            batches,
            steps: 0,
        })
    }

    /// The batches, in the run's order.
    pub fn batches(&self) -> &[TokenizedBatch] {
        &self.batches
    }

    /// One training step on batch `i` at the configuration's peak learning rate ([`update`]);
    /// returns the loss. Errors when there is no batch `i`.
    pub fn step(&mut self, i: usize) -> Result<f32> {
        let batch = self.batches.get(i).ok_or_else(|| {
            TrainError::Config(format!(
                "no batch {i}: the replay has {}",
                self.batches.len()
            ))
        })?;
        let enc = self.encoder.take().ok_or_else(|| {
            TrainError::Config("an earlier step failed: the replay cannot go on".into())
        })?;
        self.steps += 1;
        let (enc, loss, _) = update(
            &self.cfg,
            enc,
            &mut self.optim,
            batch,
            self.cfg.lr,
            self.steps,
            &FlexDevice,
        )?;
        self.encoder = Some(enc);
        Ok(loss)
    }
}
