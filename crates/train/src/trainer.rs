//! The training loop: [`train`] runs a [`Session`] on the configured device and thread pool,
//! with a progress bar, then the evaluation hook on the final checkpoint.
//!
//! The parts live in their own modules: the configuration and its defaults
//! ([`crate::config`]), the resumable state and the step log ([`crate::state`]), the data as
//! token ids ([`crate::data`]) and the session itself ([`crate::session`]).

use std::io::IsTerminal;
use std::path::Path;

use burn::tensor::backend::AutodiffBackend;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use multiret_model::Model;

use crate::config::{DeviceChoice, TrainConfig};
use crate::error::{Result, TrainError};
use crate::session::{merge_fact, training_card, Opened, Session, TrainSummary};
use crate::validation::RetrievalHook;

/// The evaluation hook: called once on the final checkpoint with (checkpoint directory,
/// dataset name, output JSON path); an `Err` carries a message. When it also leaves a Markdown
/// report beside the JSON (the same path with `.md`), that report becomes the Evaluation
/// section of the checkpoint's model card.
pub type EvalHook<'a> = dyn FnMut(&Path, &str, &Path) -> std::result::Result<(), String> + 'a;

/// Runs training as configured. `eval` is called on the final checkpoint (on `merged/` after a
/// merge) when [`TrainConfig::eval`] is set (an error when it is set and no hook is given).
pub fn train(cfg: &TrainConfig, eval: Option<&mut EvalHook<'_>>) -> Result<TrainSummary> {
    train_with(cfg, eval, None)
}

/// [`train`] with a retrieval validation hook: at every validation the current weights are
/// scored on the held-out groups (logged as `val_mo`, `val_cr`, `val_mul`,
/// `val_rank_distance`), and [`TrainConfig::select`] may pick the kept weights by them.
pub fn train_with(
    cfg: &TrainConfig,
    eval: Option<&mut EvalHook<'_>>,
    retrieval: Option<&mut RetrievalHook<'_>>,
) -> Result<TrainSummary> {
    cfg.validate()?;
    if cfg.eval.is_some() && eval.is_none() {
        return Err(TrainError::Config(
            "an evaluation dataset was given but this build has no evaluation hook".into(),
        ));
    }
    // One lifetime for the configuration and the hook (the hook's object lifetime shortened).
    let retrieval = retrieval.map(|h| h as &mut RetrievalHook<'_>);
    let go = move || -> Result<TrainSummary> {
        match cfg.device {
            DeviceChoice::Cpu => run::<crate::FlexTrain>(cfg, &Default::default(), retrieval),
            DeviceChoice::Cuda(_i) => {
                #[cfg(feature = "cuda")]
                {
                    let device = burn::backend::cuda::CudaDevice::new(_i);
                    run::<crate::CudaTrain>(cfg, &device, retrieval)
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
        // The run's result: the merge with the starting model when there is one.
        let (target, merged_w) = match &summary.merged {
            Some((dir, w)) => (dir.clone(), Some(*w)),
            None => (summary.checkpoint.clone(), None),
        };
        let report = cfg.out.join("eval.json");
        hook(&target, name, &report).map_err(TrainError::Eval)?;
        let md = report.with_extension("md");
        if md.is_file() {
            let text = std::fs::read_to_string(&md).map_err(|e| TrainError::io(&md, e))?;
            let model = Model::load_hf_dir(&target)?;
            let mut card = training_card(cfg, summary.steps);
            if let Some(w) = merged_w {
                card.training.push(merge_fact(cfg, w));
            }
            card.evaluation = Some(format!("`multiret eval --dataset {name}`:\n\n{text}"));
            model.write_card(&target, &card)?;
        }
        summary.eval_report = Some(report);
    }
    Ok(summary)
}

/// The run on backend `B`: every step left, then the final checkpoint.
fn run<'a, B: AutodiffBackend>(
    cfg: &'a TrainConfig,
    device: &B::Device,
    retrieval: Option<&'a mut RetrievalHook<'a>>,
) -> Result<TrainSummary> {
    let mut s = match Session::<B>::open(cfg, device, retrieval)? {
        Opened::Finished(summary) => return Ok(summary),
        Opened::Ready(s) => s,
    };
    let bar = progress_bar(cfg, s.steps_done());
    while !s.is_done() {
        let entry = s.step()?;
        bar.set_position(entry.step);
        bar.set_message(format!(
            "loss {:.4} lr {:.2e} {:.0} tok/s{}",
            entry.loss,
            entry.lr,
            entry.tokens_per_s,
            entry
                .val_loss
                .map(|v| format!(" val {v:.4}"))
                .unwrap_or_default()
                + &entry
                    .val
                    .map(|r| format!(" mo {:.3} cr {:.3} mul {:.3}", r.mo, r.cr, r.mul))
                    .unwrap_or_default()
        ));
    }
    bar.finish_and_clear();
    s.finish()
}

/// A progress bar at step `at` of the run, drawn only when asked for and stderr is a
/// terminal.
fn progress_bar(cfg: &TrainConfig, at: u64) -> ProgressBar {
    if !(cfg.progress && std::io::stderr().is_terminal()) {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(cfg.steps), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:30} {pos}/{len} {msg} [{elapsed_precise} < {eta_precise}]",
        )
        .expect("template"),
    );
    bar.set_position(at);
    bar
}
