//! Side-by-side embedding throughput: multiret (f32 and bf16 weights) against PyTorch
//! (transformers' `AutoModel`, f32 and bf16 autocast; the strong peer on a CPU with oneDNN and
//! AMX) and candle 0.11's `BertModel`, on the same weights, the same token ids and the same
//! batches. One JSON object per line.
//!
//! `cargo run --release -p multiret-benches --bin embed-report [-- --sentences 2000
//! --batch-size 32 --threads 2 --rounds 3 --torch PYTHON]`
//!
//! PyTorch is not a dependency of multiret: `--torch PYTHON` names a Python that has torch and
//! transformers (`benches/peers/setup.sh` makes a throwaway virtual environment with them).
//! Without it the PyTorch lines say `absent` and the ratios are against candle only. The
//! PyTorch side is `benches/peers/torch_embed.py`, one long-lived process that loads the model
//! once and times a pass when asked, so its rounds interleave with ours.
//!
//! Other flags: `--only IMPL[,IMPL...]` (any of `multiret-f32`, `multiret-bf16`,
//! `torch-f32`, `torch-bf16`, `candle-f32`; e.g. to profile one engine alone under `perf`), `--rounds N` (time each
//! engine N times, the engines interleaved, and report the fastest round plus all of them in
//! `seconds_all`: for a machine shared with other work), `--model SPEC` (default `e5-small`),
//! `--data DIR` (default `$MULTIRET_DATA`, else the repository's `data/`).
//!
//! The workload: the first N XQuAD-R candidate sentences, round-robin across the 11 languages
//! (see `multiret_benches::xquad`), tokenised once by multiret as passages (`passage: `
//! prefix, truncated to the model's positions). Both engines get these ids, sorted by
//! length, in batches of `--batch-size`, padded with the model's pad id per batch; token
//! type ids are zero; mean pooling over the real tokens and L2 normalisation (in candle
//! ops for candle). Each engine runs one warm-up batch (the longest), then the whole set is
//! timed (once per round). `tokens` counts real (unpadded) tokens; `tokens_per_s` is tokens
//! over the fastest round's seconds. `cpu_seconds` is the CPU time (all threads) the process
//! used in that round and `cpu_wait_seconds` the time its threads spent runnable but waiting
//! for a CPU (Linux): on a machine shared with other work, a `cpu_wait_seconds` that is not
//! small against `seconds` says the run was starved and its `tokens_per_s` is too low.
//!
//! Threads: multiret runs in a rayon pool of `--threads` threads (whole batches spread over
//! the threads). candle runs in its own CPU pool (`Device::with_context`), which with its GEMM
//! reads `RAYON_NUM_THREADS` / `CANDLE_NUM_THREADS`: both are set to `--threads` at process
//! start, before any pool exists.
//!
//! candle's weights are multiret's own, written once as an HF directory (f32 safetensors,
//! `config.json` with `hidden_act: "gelu"`, which candle's BERT maps to the erf GELU, as
//! multiret uses) into a temporary directory and memory-mapped from there. The mean cosine
//! between candle's and multiret's f32 embeddings is reported; below 0.999 the run fails.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config as CandleConfig, HiddenAct};
use multiret_benches::xquad::xquad_r_sentences;
use multiret_benches::{round, timed, PeerArgs, TempDir, Timing};
use multiret_model::{Arch, EmbedOptions, Embedder, Kind, Model, Precision};
use serde_json::json;

const IMPLS: [&str; 5] = [
    "multiret-f32",
    "multiret-bf16",
    "torch-f32",
    "torch-bf16",
    "candle-f32",
];
/// Targets against PyTorch (issue 16): f32 against f32, bf16 against bf16 autocast.
const TARGET_F32: f64 = 1.3;
const TARGET_BF16: f64 = 2.0;
/// A peer whose embeddings agree less than this with multiret's f32 ones (mean cosine) does
/// not compute the same thing, and the comparison fails.
const MIN_COSINE: f64 = 0.999;
/// The same for bf16 peers against multiret's f32 embeddings.
const MIN_COSINE_BF16: f64 = 0.99;

struct Args {
    common: PeerArgs,
    sentences: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut sentences = 2000;
    let common = PeerArgs::new(&IMPLS, 1).parse(
        &IMPLS,
        "embed-report",
        "[--sentences N]",
        std::env::args().skip(1),
        |flag, v| {
            match flag {
                "--sentences" => sentences = v.positive()?,
                _ => return Ok(false),
            }
            Ok(true)
        },
    )?;
    Ok(Args { common, sentences })
}

/// Length-sorted batches of indices, as multiret's `embed_ids` forms them.
fn batches(ids: &[Vec<u32>], bs: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..ids.len()).collect();
    order.sort_by_key(|&i| (ids[i].len(), i));
    order.chunks(bs).map(<[usize]>::to_vec).collect()
}

/// Embeds `ids` with candle, batch by batch (candle threads inside each op); returns
/// `[n, dim]` row-major in input order.
fn candle_embed(
    model: &BertModel,
    ids: &[Vec<u32>],
    batches: &[Vec<usize>],
    pad_id: u32,
    dim: usize,
) -> candle_core::Result<Vec<f32>> {
    let dev = &model.device;
    let mut out = vec![0.0f32; ids.len() * dim];
    for batch in batches {
        let b = batch.len();
        let len = batch.iter().map(|&i| ids[i].len()).max().unwrap_or(0);
        let mut flat = Vec::with_capacity(b * len);
        let mut mask = Vec::with_capacity(b * len);
        for &i in batch {
            let s = &ids[i];
            flat.extend_from_slice(s);
            flat.extend(std::iter::repeat_n(pad_id, len - s.len()));
            mask.extend(std::iter::repeat_n(1.0f32, s.len()));
            mask.extend(std::iter::repeat_n(0.0f32, len - s.len()));
        }
        let input = Tensor::from_vec(flat, (b, len), dev)?;
        let types = Tensor::zeros((b, len), DType::U32, dev)?;
        let mask = Tensor::from_vec(mask, (b, len), dev)?;
        let states = model.forward(&input, &types, Some(&mask))?; // [b, len, dim]
        let summed = states.broadcast_mul(&mask.unsqueeze(2)?)?.sum(1)?; // [b, dim]
        let mean = summed.broadcast_div(&mask.sum_keepdim(1)?)?;
        let norm = mean.sqr()?.sum_keepdim(1)?.sqrt()?;
        let emb = mean.broadcast_div(&norm)?.to_vec2::<f32>()?;
        for (&i, row) in batch.iter().zip(&emb) {
            out[i * dim..(i + 1) * dim].copy_from_slice(row);
        }
    }
    Ok(out)
}

/// Per-row cosines of two row-major `[n, dim]` sets.
fn cosines(a: &[f32], b: &[f32], dim: usize) -> Vec<f64> {
    a.chunks(dim)
        .zip(b.chunks(dim))
        .map(|(x, y)| {
            let (mut xy, mut xx, mut yy) = (0.0f64, 0.0f64, 0.0f64);
            for (&p, &q) in x.iter().zip(y) {
                let (p, q) = (p as f64, q as f64);
                xy += p * q;
                xx += p * p;
                yy += q * q;
            }
            xy / (xx.sqrt() * yy.sqrt()).max(1e-30)
        })
        .collect()
}

/// The line of one engine's run.
fn report(imp: &str, a: &Args, n: usize, tokens: usize, secs: f64) -> serde_json::Value {
    json!({
        "bench": "embed",
        "impl": imp,
        "sentences": n,
        "tokens": tokens,
        "seconds": round(secs, 3),
        "tokens_per_s": round(tokens as f64 / secs, 1),
        "threads": a.common.threads,
        "batch_size": a.common.batch_size,
    })
}

/// The PyTorch peer: `benches/peers/torch_embed.py` in a long-lived process that loaded the
/// model and the batches once and times one pass per request.
struct TorchPeer {
    peer: multiret_benches::Peer,
    work: PathBuf,
    /// `torch.__version__`.
    version: String,
}

impl TorchPeer {
    /// Starts the peer on the HF directory in `work` (where it also writes its embeddings), with
    /// the token ids, the batches, the pad id, the threads and the precisions it will be asked for.
    fn start(
        python: &Path,
        work: &Path,
        ids: &[Vec<u32>],
        batches: &[Vec<usize>],
        pad: u32,
        threads: usize,
        precisions: &[&str],
    ) -> Result<TorchPeer, String> {
        let job = json!({
            "model_dir": work,
            "ids": ids,
            "batches": batches,
            "pad_id": pad,
            "threads": threads,
            "precisions": precisions,
            "out_dir": work,
        });
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("peers/torch_embed.py");
        let peer = multiret_benches::Peer::start(
            python,
            &script,
            &job,
            &work.join("torch-job.json"),
            threads,
        )?;
        let version = peer.torch_version();
        Ok(TorchPeer {
            peer,
            work: work.to_path_buf(),
            version,
        })
    }

    /// One timed pass at `precision` (`f32` or `bf16`): the timing and the embeddings.
    fn pass(
        &mut self,
        precision: &str,
        n: usize,
        dim: usize,
    ) -> Result<(Timing, Vec<f32>), String> {
        let v = self.peer.request(precision)?;
        let secs = v["seconds"]
            .as_f64()
            .ok_or_else(|| format!("torch peer: {v}"))?;
        let path = self.work.join(format!("torch-{precision}.f32"));
        let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        if bytes.len() != n * dim * 4 {
            return Err(format!(
                "{}: {} bytes, expected {n} x {dim} f32",
                path.display(),
                bytes.len()
            ));
        }
        let out = bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        Ok(((secs, v["cpu_seconds"].as_f64(), None), out))
    }
}

fn load_candle(model: &Model, tmp: &Path) -> Result<BertModel, String> {
    if model.config.arch != Arch::Bert {
        return Err(format!(
            "candle's BertModel numbers positions from 0: {:?} models are not comparable",
            model.config.arch
        ));
    }
    let cfg_path = tmp.join("config.json");
    let text = std::fs::read_to_string(&cfg_path).map_err(|e| format!("{e}"))?;
    let cfg: CandleConfig =
        serde_json::from_str(&text).map_err(|e| format!("candle bert config: {e}"))?;
    if cfg.hidden_act != HiddenAct::Gelu {
        return Err(format!(
            "candle config has {:?}, not the erf GELU",
            cfg.hidden_act
        ));
    }
    let st = tmp.join("model.safetensors");
    // SAFETY: the file was written by this process just above into a directory of its own,
    // and nothing modifies or truncates it while the mapping lives (it is removed only after
    // the model is dropped).
    let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[st], DType::F32, &Device::Cpu) }
        .map_err(|e| format!("candle: mapping the safetensors: {e}"))?;
    BertModel::load(vb, &cfg).map_err(|e| format!("candle: loading BertModel: {e}"))
}

fn run(a: &Args) -> Result<bool, String> {
    let wants = |imp: &str| a.common.wants(imp);
    eprintln!("isa: {}", multiret_kernels::detected_isa().name());
    let texts = xquad_r_sentences(&a.common.data, a.sentences)?;
    if texts.len() < a.sentences {
        eprintln!(
            "warning: only {} sentences in {}",
            texts.len(),
            a.common.data.display()
        );
    }
    let model = Model::load(&a.common.model, &multiret_model::default_cache_dir())
        .map_err(|e| format!("loading {}: {e}", a.common.model))?;
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let ids = model
        .tokenize(&refs, Kind::Passage)
        .map_err(|e| format!("tokenising: {e}"))?;
    let n = ids.len();
    let tokens: usize = ids.iter().map(Vec::len).sum();
    let dim = model.config.hidden;
    let batches = batches(&ids, a.common.batch_size);
    let longest: Vec<Vec<u32>> = batches
        .last()
        .map(|b| b.iter().map(|&i| ids[i].clone()).collect())
        .unwrap_or_default();
    eprintln!(
        "{} sentences, {} tokens (mean {:.1}, max {}), {} batches of {}, pad id {}",
        n,
        tokens,
        tokens as f64 / n.max(1) as f64,
        longest.iter().map(Vec::len).max().unwrap_or(0),
        batches.len(),
        a.common.batch_size,
        model.config.pad_id
    );

    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(a.common.threads)
        .build()
        .map_err(|e| format!("rayon pool: {e}"))?;
    let opts = EmbedOptions {
        batch_size: a.common.batch_size,
        threads: a.common.threads,
    };
    let pad = model.config.pad_id;

    // The engines, built (and warmed up with the longest batch) once.
    let f32_emb = wants("multiret-f32")
        .then(|| model.embedder(Precision::F32))
        .transpose()
        .map_err(|e| e.to_string())?;
    let bf16_emb = wants("multiret-bf16")
        .then(|| model.embedder(Precision::Bf16))
        .transpose()
        .map_err(|e| e.to_string())?;
    let tmp =
        TempDir(std::env::temp_dir().join(format!("multiret-embed-report-{}", std::process::id())));
    let wants_torch = wants("torch-f32") || wants("torch-bf16");
    let torch_python = a.common.torch.as_ref().filter(|_| wants_torch);
    if wants("candle-f32") || torch_python.is_some() {
        std::fs::create_dir_all(&tmp.0).map_err(|e| format!("{}: {e}", tmp.0.display()))?;
        model
            .save_hf_dir(&tmp.0, &Default::default())
            .map_err(|e| format!("writing the HF directory: {e}"))?;
    }
    let bert = if wants("candle-f32") {
        Some(load_candle(&model, &tmp.0)?)
    } else {
        None
    };
    let mut torch = match torch_python {
        Some(py) => Some(TorchPeer::start(
            py,
            &tmp.0,
            &ids,
            &batches,
            pad,
            a.common.threads,
            &a.common.torch_precisions(),
        )?),
        None => {
            if wants_torch {
                println!(
                    "{}",
                    json!({"bench": "embed", "impl": "torch", "status":
                        "absent: pass --torch PYTHON (benches/peers/setup.sh makes a throwaway \
                         virtual environment with torch and transformers)"})
                );
            }
            None
        }
    };
    if let Some(t) = &torch {
        eprintln!("torch {} ready", t.version);
    }
    let run_ours = |emb: &Embedder<'_>, imp: &str, ids: &[Vec<u32>]| {
        pool.install(|| -> Result<(Timing, Vec<f32>), String> {
            let (t, out) = timed(|| emb.embed_ids(ids, opts, &|_| {}));
            Ok((t, out.map_err(|e| format!("{imp}: {e}"))?))
        })
    };
    let run_candle = |bert: &BertModel, batches: &[Vec<usize>]| {
        bert.device
            .with_context(|| -> Result<(Timing, Vec<f32>), String> {
                let (t, out) = timed(|| candle_embed(bert, &ids, batches, pad, dim));
                Ok((t, out.map_err(|e| format!("candle: {e}"))?))
            })
    };
    let last = batches.last().cloned().unwrap_or_default();
    for (imp, emb) in [("multiret-f32", &f32_emb), ("multiret-bf16", &bf16_emb)] {
        if let Some(emb) = emb {
            run_ours(emb, imp, &longest)?;
        }
    }
    if let Some(bert) = &bert {
        run_candle(bert, std::slice::from_ref(&last))?;
    }

    // Rounds interleave the engines, so that load from other processes hits them alike.
    let mut secs: Vec<(&str, Vec<Timing>)> = Vec::new();
    let mut outs: Vec<(&str, Vec<f32>)> = Vec::new();
    for r in 0..a.common.rounds {
        for imp in IMPLS {
            let res = match imp {
                "multiret-f32" => f32_emb.as_ref().map(|e| run_ours(e, imp, &ids)),
                "multiret-bf16" => bf16_emb.as_ref().map(|e| run_ours(e, imp, &ids)),
                "torch-f32" | "torch-bf16" if wants(imp) => torch
                    .as_mut()
                    .map(|t| t.pass(imp.trim_start_matches("torch-"), n, dim)),
                "candle-f32" => bert.as_ref().map(|b| run_candle(b, &batches)),
                _ => None,
            };
            let Some(res) = res else { continue };
            let (timing, out) = res?;
            let (t, cpu, wait) = timing;
            let opt = |x: Option<f64>| x.map_or("?".into(), |c| format!("{c:.2}"));
            eprintln!(
                "round {}: {imp}: {t:.3} s, {:.1} tokens/s, {} CPU s, {} s waiting for a CPU",
                r + 1,
                tokens as f64 / t,
                opt(cpu),
                opt(wait)
            );
            match secs.iter_mut().find(|(i, _)| *i == imp) {
                Some((_, v)) => v.push(timing),
                None => secs.push((imp, vec![timing])),
            }
            if r == 0 {
                outs.push((imp, out));
            }
        }
    }
    let torch_version = torch.as_ref().map(|t| t.version.clone());
    drop(torch);
    drop(bert);
    drop(tmp);

    let out_of = |k: &str| outs.iter().find(|(i, _)| *i == k).map(|(_, o)| o);
    let mut ok = true;
    let mut tps: Vec<(&str, f64)> = Vec::new();
    for (imp, times) in &secs {
        let &(best, best_cpu, best_wait) = times
            .iter()
            .min_by(|x, y| x.0.total_cmp(&y.0))
            .expect("at least one round");
        let mut line = report(imp, a, n, tokens, best);
        if imp.starts_with("torch") {
            line["torch"] = json!(torch_version);
        }
        if let Some(c) = best_cpu {
            line["cpu_seconds"] = json!(round(c, 2));
        }
        if let Some(w) = best_wait {
            line["cpu_wait_seconds"] = json!(round(w, 2));
        }
        if a.common.rounds > 1 {
            line["rounds"] = json!(a.common.rounds);
            line["seconds_all"] =
                json!(times.iter().map(|&(t, ..)| round(t, 3)).collect::<Vec<_>>());
        }
        if let (Some(o), Some(f), true) =
            (out_of(imp), out_of("multiret-f32"), *imp != "multiret-f32")
        {
            let c = cosines(o, f, dim);
            let mean = c.iter().sum::<f64>() / c.len() as f64;
            let min = c.iter().copied().fold(f64::INFINITY, f64::min);
            line["mean_cosine_vs_multiret_f32"] = json!(round(mean, 6));
            line["min_cosine_vs_multiret_f32"] = json!(round(min, 6));
            let floor = if imp.ends_with("bf16") {
                MIN_COSINE_BF16
            } else {
                MIN_COSINE
            };
            if mean.is_nan() || mean < floor {
                eprintln!(
                    "FAILED: {imp} and multiret-f32 embeddings disagree: mean cosine {mean:.6} \
                     < {floor} (min {min:.6}); the throughput comparison is not valid"
                );
                ok = false;
            }
        }
        println!("{line}");
        tps.push((imp, tokens as f64 / best));
    }

    let get = |k: &str| tps.iter().find(|(i, _)| *i == k).map(|&(_, t)| t);
    let ratio = |ours: &str, peer: &str| get(ours).zip(get(peer)).map(|(o, p)| round(o / p, 2));
    let pairs = [
        ("multiret-f32", "torch-f32"),
        ("multiret-bf16", "torch-bf16"),
        ("multiret-f32", "candle-f32"),
        ("multiret-bf16", "candle-f32"),
    ];
    let ratios: serde_json::Map<String, serde_json::Value> = pairs
        .iter()
        .filter_map(|&(o, p)| ratio(o, p).map(|r| (format!("{o}/{p}"), json!(r))))
        .collect();
    if !ratios.is_empty() {
        let f32_vs_torch = ratio("multiret-f32", "torch-f32");
        let bf16_vs_torch = ratio("multiret-bf16", "torch-bf16");
        println!(
            "{}",
            json!({
                "bench": "embed",
                "ratios": ratios,
                "targets": {
                    "multiret-f32/torch-f32": TARGET_F32,
                    "multiret-bf16/torch-bf16": TARGET_BF16,
                },
                "meets_targets": {
                    "f32": f32_vs_torch.map(|r| r >= TARGET_F32),
                    "bf16": bf16_vs_torch.map(|r| r >= TARGET_BF16),
                },
                "threads": a.common.threads,
                "batch_size": a.common.batch_size,
            })
        );
    }
    Ok(ok)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("embed-report: {e}");
            return ExitCode::from(2);
        }
    };
    // candle sizes its CPU pool and its GEMM parallelism from these, once, on first use;
    // nothing has started a thread pool yet.
    let t = args.common.threads.to_string();
    std::env::set_var("RAYON_NUM_THREADS", &t);
    std::env::set_var("CANDLE_NUM_THREADS", &t);
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("embed-report: {e}");
            ExitCode::FAILURE
        }
    }
}
