//! Tiny models and corpora built in code, for fast tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use multiret_model::config::{Arch, Config, EncodeSettings, Pooling, Prefixes};
use multiret_model::weights::{Layer, Linear, Norm, Weights};
use multiret_model::{Model, Tokenizer};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Words of the tiny vocabulary after the special tokens and the prefix words.
pub const WORDS: usize = 56;
/// Special tokens, the prefix words, then `w0..w{WORDS}`.
pub const VOCAB: usize = 7 + WORDS;

/// A fresh temporary directory.
pub fn temp_dir(tag: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("multiret-train-{tag}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A 2-layer encoder: hidden 32, 4 heads, FFN 64.
pub fn tiny_config(arch: Arch) -> Config {
    Config {
        arch,
        hidden: 32,
        layers: 2,
        heads: 4,
        ffn: 64,
        vocab: VOCAB,
        max_pos: 40,
        type_vocab: if arch == Arch::Bert { 2 } else { 1 },
        layer_norm_eps: 1e-12,
        pad_id: if arch == Arch::Bert { 0 } else { 1 },
    }
}

fn uniform(rng: &mut ChaCha8Rng, n: usize, scale: f32, center: f32) -> Vec<f32> {
    (0..n)
        .map(|_| {
            let u = (rng.next_u32() >> 8) as f32 / (1u32 << 24) as f32;
            center + scale * (2.0 * u - 1.0)
        })
        .collect()
}

/// Random weights for `c`.
pub fn random_weights(c: &Config, seed: u64) -> Weights {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let h = c.hidden;
    let lin = |rng: &mut ChaCha8Rng, out: usize, inp: usize| Linear {
        out,
        inp,
        w: uniform(rng, out * inp, 0.3, 0.0),
        b: uniform(rng, out, 0.1, 0.0),
    };
    let norm = |rng: &mut ChaCha8Rng| Norm {
        w: uniform(rng, h, 0.2, 1.0),
        b: uniform(rng, h, 0.1, 0.0),
    };
    let word = uniform(&mut rng, c.vocab * h, 1.0, 0.0);
    let pos = uniform(&mut rng, c.max_pos * h, 0.5, 0.0);
    let typ = uniform(&mut rng, c.type_vocab * h, 0.5, 0.0);
    let emb_ln = norm(&mut rng);
    let layers = (0..c.layers)
        .map(|_| Layer {
            q: lin(&mut rng, h, h),
            k: lin(&mut rng, h, h),
            v: lin(&mut rng, h, h),
            ao: lin(&mut rng, h, h),
            aln: norm(&mut rng),
            fi: lin(&mut rng, c.ffn, h),
            fo: lin(&mut rng, h, c.ffn),
            oln: norm(&mut rng),
        })
        .collect();
    Weights {
        word: word.into(),
        pos,
        typ,
        emb_ln,
        layers,
    }
}

/// A WordLevel `tokenizer.json` over the tiny vocabulary (`[CLS] words [SEP]`).
pub fn tokenizer_json() -> String {
    let mut vocab = serde_json::Map::new();
    let specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"];
    for (i, s) in specials.iter().enumerate() {
        vocab.insert(s.to_string(), i.into());
    }
    for (i, w) in ["query", "passage", ":"].iter().enumerate() {
        vocab.insert(w.to_string(), (4 + i).into());
    }
    for i in 0..WORDS {
        vocab.insert(format!("w{i}"), (7 + i).into());
    }
    let added: Vec<serde_json::Value> = specials
        .iter()
        .enumerate()
        .map(|(i, s)| {
            serde_json::json!({"id": i, "content": s, "single_word": false, "lstrip": false,
                "rstrip": false, "normalized": false, "special": true})
        })
        .collect();
    let v = serde_json::json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [
                {"SpecialToken": {"id": "[CLS]", "type_id": 0}},
                {"Sequence": {"id": "A", "type_id": 0}},
                {"SpecialToken": {"id": "[SEP]", "type_id": 0}}
            ],
            "pair": [
                {"SpecialToken": {"id": "[CLS]", "type_id": 0}},
                {"Sequence": {"id": "A", "type_id": 0}},
                {"SpecialToken": {"id": "[SEP]", "type_id": 0}},
                {"Sequence": {"id": "B", "type_id": 1}},
                {"SpecialToken": {"id": "[SEP]", "type_id": 1}}
            ],
            "special_tokens": {
                "[CLS]": {"id": "[CLS]", "ids": [2], "tokens": ["[CLS]"]},
                "[SEP]": {"id": "[SEP]", "ids": [3], "tokens": ["[SEP]"]}
            }
        },
        "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "[UNK]"}
    });
    serde_json::to_string(&v).unwrap()
}

/// The tiny tokenizer, loaded through a file.
pub fn tokenizer(dir: &Path) -> Tokenizer {
    let p = dir.join("tokenizer.json");
    std::fs::write(&p, tokenizer_json()).unwrap();
    Tokenizer::from_file(&p).unwrap()
}

/// A tiny random model (E5 settings unless `pooling` says otherwise).
pub fn tiny_model(arch: Arch, pooling: Pooling, seed: u64) -> Model {
    let dir = temp_dir("tok");
    let config = tiny_config(arch);
    let weights = random_weights(&config, seed);
    Model {
        name: format!("tiny-{seed}"),
        config,
        settings: EncodeSettings::new(pooling, true, Prefixes::e5()),
        tokenizer: tokenizer(&dir),
        weights,
        head: Default::default(),
    }
}

/// Saves a tiny model as an HF directory and returns its path (a model spec).
pub fn tiny_model_dir(seed: u64) -> PathBuf {
    let dir = temp_dir("model");
    tiny_model(Arch::Bert, Pooling::Mean, seed)
        .save_hf_dir(&dir, &Default::default())
        .unwrap();
    dir
}

/// Random token sequences `[CLS] ... [SEP]` of lengths in `min..=max`.
pub fn random_ids(n: usize, min: usize, max: usize, seed: u64) -> Vec<Vec<u32>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let len = min + (rng.next_u32() as usize) % (max - min + 1);
            let mut v = vec![2u32];
            for _ in 0..len.saturating_sub(2) {
                v.push(4 + rng.next_u32() % (VOCAB as u32 - 4));
            }
            v.push(3);
            v
        })
        .collect()
}

/// A JSONL corpus: `groups` groups in `langs` languages; each text a few random words, the
/// positive sharing words with its query; `negatives` hard negatives per example.
pub fn tiny_corpus(dir: &Path, groups: usize, langs: &[&str], negatives: usize) -> PathBuf {
    let mut rng = ChaCha8Rng::seed_from_u64(99);
    let word = |rng: &mut ChaCha8Rng| format!("w{}", rng.next_u32() as usize % WORDS);
    let mut text = String::new();
    for g in 0..groups {
        for (li, lang) in langs.iter().enumerate() {
            let topic: Vec<String> = (0..3).map(|_| word(&mut rng)).collect();
            let q = format!("{} {} w{}", topic[0], topic[1], li);
            let p = format!("{} {} {} {}", topic[0], topic[1], topic[2], word(&mut rng));
            let negs: Vec<String> = (0..negatives)
                .map(|_| format!("{} {} {}", word(&mut rng), word(&mut rng), topic[2]))
                .collect();
            let line = serde_json::json!({"group": format!("g{g}"), "lang": lang, "query": q,
                "positive": p, "negatives": negs});
            text.push_str(&line.to_string());
            text.push('\n');
        }
    }
    let p = dir.join("train.jsonl");
    std::fs::write(&p, text).unwrap();
    p
}

/// Reads `log.jsonl`.
pub fn read_log(out: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(out.join("log.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The losses of `log.jsonl`.
pub fn losses(out: &Path) -> Vec<f64> {
    read_log(out)
        .iter()
        .map(|v| v["loss"].as_f64().unwrap())
        .collect()
}
