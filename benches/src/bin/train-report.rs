//! Side-by-side training throughput: `multiret train`'s step (burn-flex with multiret-kernels,
//! f32 and bf16 products) against PyTorch (transformers' `AutoModel`, f32 and bf16 autocast)
//! on the same weights and the same batches. One JSON object per line.
//!
//! `cargo run --release -p multiret-benches --bin train-report [-- --batch-size 32 --steps 4
//! --rounds 3 --threads 2 --unfrozen --torch PYTHON]`
//!
//! The work: the first `--steps` batches of a fresh `multiret train` run on MLQA-R (e5-small,
//! the default sampler and loss, `--max-len 128`, word embeddings frozen unless `--unfrozen`),
//! drawn by multiret-train itself ([`multiret_train::Replay`]) and handed to the peer as token
//! ids with the batches' positive and exclusion masks. A round runs one training step on
//! each batch, in order: forward, InfoNCE, backward, global-norm clipping and AdamW at the
//! peak learning rate. Each engine makes one untimed warm-up step on the first batch (their
//! losses there, on the same starting weights, are compared: they must agree), then rounds
//! interleave the engines, and each engine's median round is reported. `tokens` counts real
//! (unpadded) tokens.
//!
//! PyTorch is not a dependency of multiret: `--torch PYTHON` names a Python with torch and
//! transformers (`benches/peers/setup.sh` makes a throwaway virtual environment with them).
//! Without it the PyTorch lines say `absent`. The PyTorch side is
//! `benches/peers/torch_train.py`, one long-lived process that times a round when asked.
//!
//! Threads: multiret's steps run on the main thread with rayon's global pool of `--threads`
//! threads, as `multiret train` without `--threads` does; PyTorch gets
//! `torch.set_num_threads(--threads)`.
//!
//! Other flags: `--only IMPL[,IMPL...]` (any of `multiret-f32`, `multiret-bf16`, `torch-f32`,
//! `torch-bf16`), `--model SPEC` (default `e5-small`), `--data DIR` (default
//! `$MULTIRET_DATA`, else the repository's `data/`), `--max-len N` (default 128).

use std::path::Path;
use std::process::ExitCode;

use multiret_benches::{round, timed, Peer, PeerArgs, TempDir, Timing};
use multiret_model::Model;
use multiret_train::{Replay, TrainConfig};
use serde_json::json;

const IMPLS: [&str; 4] = ["multiret-f32", "multiret-bf16", "torch-f32", "torch-bf16"];
/// Targets against PyTorch (issue 13): f32 against f32, bf16 against bf16 autocast.
const TARGET: f64 = 2.0;
/// Largest relative difference of the first losses (same weights, same batch) in f32, and
/// with bf16 products.
const LOSS_TOL_F32: f64 = 1e-3;
const LOSS_TOL_BF16: f64 = 3e-2;

struct Args {
    common: PeerArgs,
    steps: usize,
    unfrozen: bool,
    max_len: usize,
}

fn parse_args() -> Result<Args, String> {
    let (mut steps, mut unfrozen, mut max_len) = (4, false, 128);
    let common = PeerArgs::new(&IMPLS, 3).parse(
        &IMPLS,
        "train-report",
        "[--steps N] [--max-len N] [--unfrozen]",
        std::env::args().skip(1),
        |flag, v| {
            match flag {
                "--steps" => steps = v.positive()?,
                "--max-len" => max_len = v.positive()?,
                "--unfrozen" => unfrozen = true,
                _ => return Ok(false),
            }
            Ok(true)
        },
    )?;
    Ok(Args {
        common,
        steps,
        unfrozen,
        max_len,
    })
}

fn config(a: &Args, bf16: bool) -> TrainConfig {
    let mut cfg = TrainConfig::new(&a.common.model, "mlqa-r", std::env::temp_dir());
    cfg.data_dir = a.common.data.clone();
    cfg.cache_dir = multiret_model::default_cache_dir();
    cfg.batch_size = a.common.batch_size;
    cfg.max_len = Some(a.max_len);
    cfg.freeze_embeddings = !a.unfrozen;
    cfg.bf16_matmul = bf16;
    cfg.steps = (a.steps * (a.common.rounds + 1)) as u64;
    cfg
}

/// Our side: a replay of the run's first batches; `round` times one step per batch. Steps
/// run on the main thread, as `multiret train`'s do, with rayon's global pool (sized by
/// `--threads` in `main`) for the parallel work.
struct Ours {
    replay: Replay,
}

impl Ours {
    fn round(&mut self) -> Result<(Timing, Vec<f32>), String> {
        let n = self.replay.batches().len();
        let replay = &mut self.replay;
        let (t, losses) = timed(|| {
            (0..n)
                .map(|i| replay.step(i))
                .collect::<Result<Vec<f32>, _>>()
        });
        Ok((t, losses.map_err(|e| e.to_string())?))
    }
}

fn run(a: &Args) -> Result<bool, String> {
    let wants = |imp: &str| a.common.wants(imp);
    eprintln!("isa: {}", multiret_kernels::detected_isa().name());
    let mut ours: Vec<(&str, Ours)> = Vec::new();
    for (imp, bf16) in [("multiret-f32", false), ("multiret-bf16", true)] {
        if wants(imp) {
            let replay =
                Replay::new(&config(a, bf16), a.steps).map_err(|e| format!("{imp}: {e}"))?;
            ours.push((imp, Ours { replay }));
        }
    }
    // The batches, from our replay (or a fresh one when only the peer runs).
    let replay_batches = match ours.first() {
        Some((_, o)) => o.replay.batches().to_vec(),
        None => Replay::new(&config(a, false), a.steps)
            .map_err(|e| e.to_string())?
            .batches()
            .to_vec(),
    };
    let tokens: usize = replay_batches.iter().map(|b| b.tokens()).sum();
    eprintln!(
        "{} batches of {} pairs, {} tokens in all (mean {:.1} per text)",
        replay_batches.len(),
        a.common.batch_size,
        tokens,
        tokens as f64
            / replay_batches
                .iter()
                .map(|b| b.queries.len() + b.passages.len())
                .sum::<usize>()
                .max(1) as f64
    );

    let wants_torch = wants("torch-f32") || wants("torch-bf16");
    let tmp =
        TempDir(std::env::temp_dir().join(format!("multiret-train-report-{}", std::process::id())));
    let mut torch = match a.common.torch.as_ref().filter(|_| wants_torch) {
        Some(py) => {
            std::fs::create_dir_all(&tmp.0).map_err(|e| format!("{}: {e}", tmp.0.display()))?;
            let model = Model::load(&a.common.model, &multiret_model::default_cache_dir())
                .map_err(|e| format!("loading {}: {e}", a.common.model))?;
            model
                .save_hf_dir(&tmp.0, &Default::default())
                .map_err(|e| format!("writing the HF directory: {e}"))?;
            let cfg = config(a, false);
            // Only the precisions that will be timed get the peer's warm-up step.
            let precisions = a.common.torch_precisions();
            let job = json!({
                "model_dir": tmp.0,
                "batches": replay_batches.iter().map(|b| json!({
                    "queries": b.queries,
                    "passages": b.passages,
                    "positives": b.mask.positives,
                    "excluded": b.mask.excluded,
                })).collect::<Vec<_>>(),
                "pad_id": model.config.pad_id,
                "precisions": precisions,
                "threads": a.common.threads,
                "lr": cfg.lr,
                "temperature": cfg.temperature,
                "symmetric": cfg.symmetric,
                "grad_clip": cfg.grad_clip,
                "freeze_embeddings": cfg.freeze_embeddings,
                "beta1": cfg.adamw.beta1,
                "beta2": cfg.adamw.beta2,
                "eps": cfg.adamw.eps,
                "weight_decay": cfg.adamw.weight_decay,
            });
            drop(model);
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("peers/torch_train.py");
            let peer = Peer::start(
                py,
                &script,
                &job,
                &tmp.0.join("torch-job.json"),
                a.common.threads,
            )?;
            eprintln!("torch {} ready", peer.torch_version());
            Some(peer)
        }
        None => {
            if wants_torch {
                println!(
                    "{}",
                    json!({"bench": "train", "impl": "torch", "status":
                        "absent: pass --torch PYTHON (benches/peers/setup.sh makes a throwaway \
                         virtual environment with torch and transformers)"})
                );
            }
            None
        }
    };

    // Warm-up: one step on the first batch each, on the same starting weights.
    let mut ok = true;
    let mut first: Vec<(&str, f64)> = Vec::new();
    for (imp, o) in ours.iter_mut() {
        let loss = o.replay.step(0).map_err(|e| format!("{imp}: {e}"))?;
        first.push((imp, loss as f64));
    }
    if let Some(t) = &torch {
        for p in ["f32", "bf16"] {
            if let Some(l) = t.ready["warmup_losses"][p].as_f64() {
                first.push((
                    if p == "f32" {
                        "torch-f32"
                    } else {
                        "torch-bf16"
                    },
                    l,
                ));
            }
        }
    }
    let loss_of = |k: &str| first.iter().find(|(i, _)| *i == k).map(|&(_, l)| l);
    if let Some(reference) = loss_of("multiret-f32").or(loss_of("torch-f32")) {
        for &(imp, l) in &first {
            let rel = ((l - reference) / reference.abs().max(1e-9)).abs();
            let tol = if imp.ends_with("bf16") {
                LOSS_TOL_BF16
            } else {
                LOSS_TOL_F32
            };
            eprintln!("first loss: {imp}: {l:.6} (relative difference {rel:.2e})");
            let agrees = rel <= tol;
            if !agrees {
                eprintln!(
                    "FAILED: {imp}'s first loss {l} differs from {reference} by {rel:.2e} > {tol}: \
                     the engines do not compute the same step, so the comparison is not valid"
                );
                ok = false;
            }
        }
    }

    let mut secs: Vec<(&str, Vec<Timing>)> = Vec::new();
    for r in 0..a.common.rounds {
        for j in 0..IMPLS.len() {
            let imp = IMPLS[(r + j) % IMPLS.len()];
            let timing = match imp {
                "multiret-f32" | "multiret-bf16" => {
                    match ours.iter_mut().find(|(i, _)| *i == imp) {
                        Some((_, o)) => Some(o.round()?.0),
                        None => None,
                    }
                }
                _ if wants(imp) => match torch.as_mut() {
                    Some(t) => {
                        let v = t.request(imp.trim_start_matches("torch-"))?;
                        let s = v["seconds"]
                            .as_f64()
                            .ok_or_else(|| format!("torch peer: {v}"))?;
                        Some((s, v["cpu_seconds"].as_f64(), None))
                    }
                    None => None,
                },
                _ => None,
            };
            let Some(timing) = timing else { continue };
            eprintln!(
                "round {}: {imp}: {:.3} s, {:.1} tokens/s",
                r + 1,
                timing.0,
                tokens as f64 / timing.0
            );
            match secs.iter_mut().find(|(i, _)| *i == imp) {
                Some((_, v)) => v.push(timing),
                None => secs.push((imp, vec![timing])),
            }
        }
    }
    let version = torch.as_ref().map(Peer::torch_version);
    drop(torch);

    let mut tps: Vec<(&str, f64)> = Vec::new();
    for (imp, times) in &mut secs {
        times.sort_by(|x, y| x.0.total_cmp(&y.0));
        let (median, cpu, _) = times[times.len() / 2];
        let mut line = json!({
            "bench": "train",
            "impl": imp,
            "batches": replay_batches.len(),
            "batch_size": a.common.batch_size,
            "tokens": tokens,
            "seconds": round(median, 3),
            "tokens_per_s": round(tokens as f64 / median, 1),
            "rounds": times.len(),
            "seconds_all": times.iter().map(|t| round(t.0, 3)).collect::<Vec<_>>(),
            "threads": a.common.threads,
            "frozen_word_embeddings": !a.unfrozen,
            "max_len": a.max_len,
            "first_loss": loss_of(imp),
        });
        if let Some(c) = cpu {
            line["cpu_seconds"] = json!(round(c, 2));
        }
        if imp.starts_with("torch") {
            line["torch"] = json!(version);
        }
        println!("{line}");
        tps.push((imp, tokens as f64 / median));
    }
    let get = |k: &str| tps.iter().find(|(i, _)| *i == k).map(|&(_, t)| t);
    let ratio = |o: &str, p: &str| get(o).zip(get(p)).map(|(o, p)| round(o / p, 2));
    let (f32r, bf16r) = (
        ratio("multiret-f32", "torch-f32"),
        ratio("multiret-bf16", "torch-bf16"),
    );
    if f32r.is_some() || bf16r.is_some() {
        println!(
            "{}",
            json!({
                "bench": "train",
                "ratios": {
                    "multiret-f32/torch-f32": f32r,
                    "multiret-bf16/torch-bf16": bf16r,
                },
                "target": TARGET,
                "meets_target": {
                    "f32": f32r.map(|r| r >= TARGET),
                    "bf16": bf16r.map(|r| r >= TARGET),
                },
                "batch_size": a.common.batch_size,
                "frozen_word_embeddings": !a.unfrozen,
                "threads": a.common.threads,
            })
        );
    }
    Ok(ok)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("train-report: {e}");
            return ExitCode::from(2);
        }
    };
    // As `multiret train` does (the allocator keeps freed memory for the next step).
    multiret_train::keep_freed_memory();
    if let Err(e) = rayon::ThreadPoolBuilder::new()
        .num_threads(args.common.threads)
        .build_global()
    {
        eprintln!("train-report: rayon pool: {e}");
        return ExitCode::FAILURE;
    }
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("train-report: {e}");
            ExitCode::FAILURE
        }
    }
}
