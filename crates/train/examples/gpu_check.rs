//! Checks and times training on a CUDA device without any downloaded asset: the burn encoder
//! on CUDA against the CPU inference engine (tiny models and an e5-small-shaped random
//! model), determinism and resume on CUDA, and training throughput of the e5-small shape.
//!
//! ```sh
//! cargo build --release -p multiret-train --features cuda --example gpu_check
//! target/release/examples/gpu_check OUT_DIR [cpu|cuda] [quick]
//! ```
//!
//! Writes `OUT_DIR/gpu_check.json` (the results) and `OUT_DIR/tiny_ckpt` (a checkpoint trained
//! on the device, with `ids.json` and `embeddings.json` from the engine, for a check with
//! Python `transformers`: `examples/check_hf.py`).

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::time::Instant;

use burn::prelude::Backend;
use multiret_model::config::{Arch, Config, EncodeSettings, Pooling, Prefixes};
use multiret_model::{EmbedOptions, Model, Precision};
use multiret_train::{train, DeviceChoice, SamplerKind, TrainConfig, TrainableEncoder};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use serde_json::json;

fn engine(model: &Model, ids: &[Vec<u32>]) -> Vec<f32> {
    model
        .embedder(Precision::F32)
        .unwrap()
        .embed_ids(ids, EmbedOptions::default(), &|_| {})
        .unwrap()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn parity<B: Backend>(model: &Model, ids: &[Vec<u32>], device: &B::Device) -> f32 {
    let ours = TrainableEncoder::<B>::from_weights(&model.config, &model.weights, device)
        .unwrap()
        .with_settings(&model.settings)
        .embed_ids(ids, device)
        .unwrap();
    max_diff(&engine(model, ids), &ours)
}

/// Texts of `n` words from the tiny vocabulary.
fn words(rng: &mut rand_chacha::ChaCha8Rng, n: usize) -> String {
    (0..n)
        .map(|_| format!("w{}", rng.next_u32() as usize % common::WORDS))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A JSONL corpus with e5-like lengths (queries ~14 words, passages ~38).
fn long_corpus(dir: &Path, groups: usize) -> std::path::PathBuf {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let mut text = String::new();
    for g in 0..groups {
        for lang in ["de", "en", "fr"] {
            let qn = 8 + rng.next_u32() as usize % 12;
            let pn = 20 + rng.next_u32() as usize % 40;
            let line = json!({"group": format!("g{g}"), "lang": lang,
                "query": words(&mut rng, qn), "positive": words(&mut rng, pn)});
            text.push_str(&line.to_string());
            text.push('\n');
        }
    }
    let p = dir.join("long.jsonl");
    std::fs::write(&p, text).unwrap();
    p
}

fn e5_shape() -> Config {
    Config {
        arch: Arch::Bert,
        hidden: 384,
        layers: 12,
        heads: 12,
        ffn: 1536,
        vocab: 250_037,
        max_pos: 512,
        type_vocab: 2,
        layer_norm_eps: 1e-12,
        pad_id: 0,
    }
}

fn scaled_weights(c: &Config) -> multiret_model::Weights {
    let mut w = common::random_weights(c, 17);
    // Keep activations in a sane range at this width.
    for l in &mut w.layers {
        for lin in [
            &mut l.q, &mut l.k, &mut l.v, &mut l.ao, &mut l.fi, &mut l.fo,
        ] {
            lin.w.iter_mut().for_each(|x| *x *= 0.15);
        }
    }
    w
}

fn throughput(log: &Path) -> (f64, Vec<f64>) {
    let text = std::fs::read_to_string(log.join("log.jsonl")).unwrap();
    let rows: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let losses = rows.iter().map(|r| r["loss"].as_f64().unwrap()).collect();
    let rest = &rows[2.min(rows.len())..];
    let (tok, secs) = rest.iter().fold((0.0, 0.0), |(t, s), r| {
        let n = r["tokens"].as_f64().unwrap();
        (t + n, s + n / r["tokens_per_s"].as_f64().unwrap())
    });
    (tok / secs, losses)
}

fn run<B: Backend>(
    out: &Path,
    device: &B::Device,
    choice: DeviceChoice,
    quick: bool,
) -> serde_json::Value {
    let mut res = serde_json::Map::new();
    let dir = out.join("work");
    std::fs::create_dir_all(&dir).unwrap();

    // 1. Parity, tiny models.
    let ids = common::random_ids(9, 2, 30, 5);
    for (arch, pooling) in [
        (Arch::Bert, Pooling::Mean),
        (Arch::XlmRoberta, Pooling::Cls),
    ] {
        let m = common::tiny_model(arch, pooling, 11);
        let d = parity::<B>(&m, &ids, device);
        println!("parity tiny {arch:?} {pooling:?}: {d:e}");
        res.insert(format!("parity_tiny_{arch:?}_{pooling:?}"), json!(d));
    }
    // 2. Parity, e5-small shape with random weights.
    let c = e5_shape();
    let tok_dir = common::temp_dir("gpu-tok");
    let big = Model {
        name: "e5-shape".into(),
        config: c.clone(),
        settings: EncodeSettings::new(Pooling::Mean, true, Prefixes::e5()),
        tokenizer: common::tokenizer(&tok_dir),
        weights: scaled_weights(&c),
        head: Default::default(),
    };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let big_ids: Vec<Vec<u32>> = (0..6)
        .map(|i| {
            let n = 10 + 17 * i;
            let mut v = vec![2u32];
            v.extend((0..n).map(|_| 4 + rng.next_u32() % 250_000));
            v.push(3);
            v
        })
        .collect();
    let d = parity::<B>(&big, &big_ids, device);
    println!("parity e5-shape: {d:e}");
    res.insert("parity_e5_shape".into(), json!(d));
    let big_dir = dir.join("e5shape");
    big.save_hf_dir(&big_dir, &Default::default()).unwrap();
    drop(big);

    // 3. Determinism and resume, tiny model.
    let tiny = common::tiny_model_dir(1);
    let data = common::tiny_corpus(&dir, 16, &["de", "en", "fr"], 1);
    let cfg = |o: &str| {
        let mut c = TrainConfig::new(tiny.to_str().unwrap(), data.to_str().unwrap(), dir.join(o));
        c.batch_size = 4;
        c.steps = 4;
        c.lr = 1e-3;
        c.warmup = Some(1);
        c.device = choice;
        c.checkpoint_every = Some(2);
        c.max_negatives = Some(1);
        c
    };
    train(&cfg("a"), None).unwrap();
    train(&cfg("b"), None).unwrap();
    let (la, lb) = (
        common::losses(&dir.join("a")),
        common::losses(&dir.join("b")),
    );
    println!("tiny losses a {la:?} b {lb:?}");
    res.insert("tiny_losses_a".into(), json!(la));
    res.insert("tiny_same_seed_identical".into(), json!(la == lb));
    // Resume from checkpoint-2 of run a.
    let part = dir.join("part");
    std::fs::create_dir_all(part.join("checkpoint-2")).unwrap();
    for e in std::fs::read_dir(dir.join("a/checkpoint-2")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), part.join("checkpoint-2").join(e.file_name())).unwrap();
    }
    let mut r = cfg("part");
    r.resume = true;
    train(&r, None).unwrap();
    let lr_ = common::losses(&part);
    let same_w = std::fs::read(part.join("checkpoint/model.safetensors")).unwrap()
        == std::fs::read(dir.join("a/checkpoint/model.safetensors")).unwrap();
    println!("resume losses {lr_:?} identical weights {same_w}");
    res.insert("resume_losses".into(), json!(lr_));
    res.insert("resume_identical_weights".into(), json!(same_w));
    // The trained tiny checkpoint, with the engine's embeddings, for transformers.
    let ck = out.join("tiny_ckpt");
    let _ = std::fs::remove_dir_all(&ck);
    std::fs::create_dir_all(&ck).unwrap();
    for e in std::fs::read_dir(dir.join("a/checkpoint")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), ck.join(e.file_name())).unwrap();
    }
    let m = Model::load_hf_dir(&ck).unwrap();
    std::fs::write(ck.join("ids.json"), json!(ids).to_string()).unwrap();
    std::fs::write(
        ck.join("embeddings.json"),
        json!(engine(&m, &ids)).to_string(),
    )
    .unwrap();

    // 4. Throughput, e5-small shape.
    if quick {
        return serde_json::Value::Object(res);
    }
    let long = long_corpus(&dir, 400);
    for (name, batch, freeze, steps) in [
        ("warmup_b32", 32, false, 4), // compiles the kernels
        ("b32_frozen", 32, true, 10),
        ("b32", 32, false, 10),
        ("b128", 128, false, 8),
    ] {
        let mut c = TrainConfig::new(
            big_dir.to_str().unwrap(),
            long.to_str().unwrap(),
            dir.join(name),
        );
        c.sampler = SamplerKind::Hybrid { alpha: 0.5 };
        c.batch_size = batch;
        c.steps = steps;
        c.warmup = Some(0);
        c.freeze_embeddings = freeze;
        c.device = choice;
        let t = Instant::now();
        train(&c, None).unwrap();
        let (tps, losses) = throughput(&dir.join(name));
        println!(
            "{name}: {tps:.0} tokens/s (steps 3..), losses {losses:?}, {:.1}s",
            t.elapsed().as_secs_f64()
        );
        res.insert(format!("tokens_per_s_{name}"), json!(tps));
        res.insert(format!("losses_{name}"), json!(losses));
    }
    serde_json::Value::Object(res)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let out = Path::new(args.first().map(String::as_str).unwrap_or("gpu-check-out")).to_path_buf();
    std::fs::create_dir_all(&out).unwrap();
    let cpu = args.get(1).map(String::as_str) == Some("cpu");
    let quick = args.get(2).map(String::as_str) == Some("quick");
    let res = if cpu {
        run::<burn::backend::Flex>(&out, &Default::default(), DeviceChoice::Cpu, quick)
    } else {
        #[cfg(feature = "cuda")]
        {
            let device = burn::backend::cuda::CudaDevice::new(0);
            run::<burn::backend::Cuda>(&out, &device, DeviceChoice::Cuda(0), quick)
        }
        #[cfg(not(feature = "cuda"))]
        panic!("built without the cuda feature; pass `cpu`")
    };
    let text = serde_json::to_string_pretty(&res).unwrap();
    std::fs::write(out.join("gpu_check.json"), &text).unwrap();
    println!("{text}");
}
