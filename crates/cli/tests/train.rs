//! `multiret train`, run as a command, on the tiny sentence-transformers fixture model
//! (`tests/fixtures/st-tiny/xlmr-mean`) and a small JSONL corpus written here.

mod common;

use std::path::{Path, PathBuf};

use common::{fails, ok, read_json, TempDir};
use serde_json::Value;

/// The tiny XLM-R fixture model (2 layers, hidden size 32).
fn tiny_model() -> PathBuf {
    common::fixture("st-tiny/xlmr-mean/config.json")
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A JSONL corpus of `groups` groups in three languages.
fn tiny_corpus(dir: &Path, groups: usize) -> PathBuf {
    let words = [
        "city", "river", "king", "music", "water", "history", "school", "war",
    ];
    let mut text = String::new();
    for g in 0..groups {
        for (l, lang) in ["de", "en", "fr"].iter().enumerate() {
            let w = |k: usize| words[(g * 3 + l + k) % words.len()];
            let query = format!("{} {} {}", w(0), w(1), w(2));
            text.push_str(
                &serde_json::json!({
                    "group": format!("g{g}"),
                    "lang": lang,
                    "query": query,
                    "positive": format!("{query} {}", w(5)),
                })
                .to_string(),
            );
            text.push('\n');
        }
    }
    let path = dir.join("corpus.jsonl");
    std::fs::write(&path, text).unwrap();
    path
}

fn read_log(out: &Path) -> Vec<Value> {
    std::fs::read_to_string(out.join("log.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn trains_a_tiny_model_from_the_command_line() {
    let tmp = TempDir::new("train");
    let model = tiny_model();
    let data = tiny_corpus(tmp.path(), 12);
    let out = tmp.path().join("run");
    let (m, d, o) = (
        model.to_str().unwrap(),
        data.to_str().unwrap(),
        out.to_str().unwrap(),
    );
    let base = [
        "train",
        "--model",
        m,
        "--train",
        d,
        "--sampler",
        "hybrid",
        "--alpha",
        "0.5",
        "--batch-size",
        "4",
        "--steps",
        "3",
        "--lr",
        "1e-3",
        "--seed",
        "7",
        "--out",
        o,
        "--quiet",
    ];
    ok(&base);
    let log = read_log(&out);
    assert_eq!(log.len(), 3);
    for (i, line) in log.iter().enumerate() {
        assert_eq!(line["step"], i as u64 + 1);
        for key in ["loss", "lr", "tokens_per_s"] {
            assert!(line[key].as_f64().unwrap().is_finite(), "{key} in {line}");
        }
    }
    assert!(out.join("checkpoint").join("model.safetensors").is_file());
    // The options not given take TrainConfig's defaults.
    let mut expected = multiret_train::TrainConfig::new(m, d, o);
    expected.sampler = multiret_train::SamplerKind::Hybrid { alpha: 0.5 };
    (expected.batch_size, expected.steps) = (4, 3);
    (expected.lr, expected.seed) = (1e-3, 7);
    expected.progress = false;
    assert_eq!(
        read_json(&out.join("train_config.json")),
        // Through text, as the trainer writes it (f32 fields print shortest).
        serde_json::from_str::<Value>(&serde_json::to_string(&expected).unwrap()).unwrap()
    );
    // A second run into the same directory needs --resume; with it, nothing is left to do.
    fails(1, &base);
    let mut resume = base.to_vec();
    resume.push("--resume");
    ok(&resume);
    assert_eq!(read_log(&out).len(), 3);
}

#[test]
fn eval_writes_the_report_into_the_run_and_the_model_card() {
    let tmp = TempDir::new("train-eval");
    let model = tiny_model();
    let data = tiny_corpus(tmp.path(), 8);
    let out = tmp.path().join("run");
    let cache = tmp.path().join("cache");
    ok(&[
        "train",
        "--model",
        model.to_str().unwrap(),
        "--train",
        data.to_str().unwrap(),
        "--sampler",
        "mono",
        "--batch-size",
        "2",
        "--steps",
        "2",
        "--out",
        out.to_str().unwrap(),
        "--cache-dir",
        cache.to_str().unwrap(),
        "--eval",
        "sample",
        "--quiet",
    ]);
    let report = read_json(&out.join("eval.json"));
    let checkpoint = out.join("checkpoint");
    assert_eq!(report["dataset"], "sample");
    assert_eq!(report["model"], checkpoint.to_str().unwrap());
    assert_eq!(report["counts"]["questions"], 165);
    let md = std::fs::read_to_string(out.join("eval.md")).unwrap();
    assert!(md.contains("## Cross-lingual mAP"), "{md}");
    let card = std::fs::read_to_string(checkpoint.join("README.md")).unwrap();
    assert!(
        card.contains("`multiret eval --dataset sample`") && card.contains("Cross-lingual mAP"),
        "{card}"
    );
    // The evaluation is the one `multiret eval` runs on the checkpoint (which finds its
    // embeddings in the same cache).
    let again = tmp.path().join("again.json");
    ok(&[
        "eval",
        "-q",
        "--model",
        checkpoint.to_str().unwrap(),
        "--cache-dir",
        cache.to_str().unwrap(),
        "--out",
        again.to_str().unwrap(),
    ]);
    let again = read_json(&again);
    assert_eq!(again["embeddings"], "cache");
    assert_eq!(again["settings"], report["settings"]);
}

#[test]
fn rejects_bad_flags() {
    let tmp = TempDir::new("train-flags");
    let data = tiny_corpus(tmp.path(), 4);
    let out = tmp.path().join("o");
    let ok_args = [
        "train",
        "--train",
        data.to_str().unwrap(),
        "--sampler",
        "mono",
        "--steps",
        "2",
        "--out",
        out.to_str().unwrap(),
    ];
    let with = |extra: &[&'static str]| {
        let mut v = ok_args.to_vec();
        if !extra.contains(&"--batch-size") {
            v.extend(["--batch-size", "4"]);
        }
        v.extend_from_slice(extra);
        v
    };
    // The command's own errors (exit code 1), before any model is loaded.
    let err = fails(1, &with(&["--alpha", "0.3"]));
    assert!(
        err.contains("--alpha only applies to --sampler hybrid"),
        "{err}"
    );
    let err = fails(1, &with(&["--group-langs", "3"]));
    assert!(
        err.contains("--group-langs only applies to --sampler group"),
        "{err}"
    );
    // A retrieval selection on data the validation cannot score: an error before training.
    let err = fails(1, &with(&["--val-groups", "2", "--select", "mul"]));
    assert!(
        err.contains("--select mul scores retrieval on the held-out groups"),
        "{err}"
    );
    let err = fails(
        1,
        &with(&[
            "--val-groups",
            "2",
            "--select",
            "mo",
            "--merge-grid",
            "0.5,1",
        ]),
    );
    assert!(err.contains("--merge-grid scores retrieval"), "{err}");
    let err = fails(1, &with(&["--batch-size", "1"]));
    assert!(err.contains("at least 2"), "{err}");
    let err = fails(1, &with(&["--warmup", "5"]));
    assert!(err.contains("warm-up of 5 steps"), "{err}");
    // Usage errors (exit code 2).
    let err = fails(2, &with(&["--device", "tpu"]));
    assert!(
        err.contains("unknown device `tpu` (cpu, cuda or cuda:N)"),
        "{err}"
    );
    let err = fails(2, &with(&["--passage", "sentence-with-paragraph"]));
    assert!(
        err.contains("[possible values: sentence, paragraph]"),
        "{err}"
    );
    let err = fails(2, &["train", "--sampler", "mono"]);
    assert!(err.contains("--train <SPEC>"), "{err}");
    // `cuda:N` is a device (the run then fails for want of CUDA or of the model, not of
    // the flag).
    let err = fails(1, &with(&["--device", "cuda:1", "--model", "/nonexistent"]));
    assert!(!err.contains("unknown device"), "{err}");
    assert!(!out.join("checkpoint").exists());
}

#[test]
fn help_shows_the_library_defaults() {
    let help = ok(&["train", "--help"]);
    let d = multiret_train::TrainConfig::defaults();
    for shown in [
        "[default: e5-small]".to_string(),
        format!("[default: {}]", d.lr),
        format!("[default: {}]", d.temperature),
        format!("[default: {}]", d.adamw.weight_decay),
        "[default: cpu]".to_string(),
        "[default: sentence]".to_string(),
    ] {
        assert!(help.contains(&shown), "{shown} in\n{help}");
    }
    let help = ok(&["eval", "--help"]);
    let d = multiret_eval::EvalConfig::default();
    assert!(
        help.contains(&format!(
            "Texts per encoder call [default: {}]",
            d.batch_size
        )),
        "{help}"
    );
    assert!(help.contains("[env: MULTIRET_EMBED_CACHE"), "{help}");
}

#[test]
fn model_merge_writes_the_interpolated_model() {
    let dir = TempDir::new("merge");
    let xlmr = tiny_model();
    let out = dir.0.join("merged");
    let x = xlmr.to_str().unwrap();
    ok(&[
        "model",
        "merge",
        x,
        x,
        "--weight",
        "0.3",
        "--out",
        out.to_str().unwrap(),
    ]);
    for f in [
        "config.json",
        "model.safetensors",
        "modules.json",
        "README.md",
    ] {
        assert!(out.join(f).is_file(), "{f}");
    }
    let card = std::fs::read_to_string(out.join("README.md")).unwrap();
    assert!(card.contains("weight-space merge"), "{card}");
    let err = fails(
        1,
        &[
            "model",
            "merge",
            x,
            x,
            "--weight",
            "1.5",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert!(err.contains("[0, 1]"), "{err}");
}

/// `--val-groups` with a LAReQA training set scores the held-out questions at every
/// validation (logged), `--select` picks the kept weights by them, and `--select` on data the
/// validation cannot score is an error naming the option.
#[test]
fn retrieval_validation_selects_on_held_out_questions() {
    let tmp = TempDir::new("train-select");
    let model = tiny_model();
    let out = tmp.path().join("run");
    let args = |train: &str, out: &Path, select: &str| -> Vec<String> {
        [
            "train",
            "--model",
            model.to_str().unwrap(),
            "--train",
            train,
            "--sampler",
            "hybrid",
            "--batch-size",
            "4",
            "--steps",
            "2",
            "--eval-every",
            "1",
            "--val-groups",
            "12",
            "--select",
            select,
            "--context-negatives",
            "1",
            "--max-len",
            "32",
            "--out",
            out.to_str().unwrap(),
            "--quiet",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let a = args("xquad-r", &out, "mean");
    ok(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let log = read_log(&out);
    assert_eq!(log.len(), 2);
    for l in &log {
        for k in [
            "val_loss",
            "val_mo",
            "val_cr",
            "val_mul",
            "val_rank_distance",
        ] {
            let v = l[k].as_f64().unwrap_or_else(|| panic!("{k} in {l}"));
            assert!(v.is_finite() && v >= 0.0, "{k} = {v}");
        }
        assert!(l["val_mo"].as_f64().unwrap() <= 1.0);
    }
    let mean = |l: &Value| {
        (l["val_mo"].as_f64().unwrap()
            + l["val_cr"].as_f64().unwrap()
            + l["val_mul"].as_f64().unwrap())
            / 3.0
    };
    let best = if mean(&log[1]) > mean(&log[0]) { 2 } else { 1 };
    let state = read_json(&out.join("checkpoint").join("trainer_state.json"));
    assert_eq!(state["weights_step"], best);
    // The merge grid: every weight scored, the best one written to merged/ and evaluated.
    let out3 = tmp.path().join("run3");
    let mut a = args("xquad-r", &out3, "mul");
    a.extend(["--merge-grid", "0,0.5,1", "--eval", "sample"].map(String::from));
    ok(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let merge = read_json(&out3.join("merge.json"));
    let grid = merge["grid"].as_array().unwrap();
    assert_eq!(grid.len(), 3);
    let best = grid
        .iter()
        .max_by(|a, b| {
            a["score"]
                .as_f64()
                .unwrap()
                .total_cmp(&b["score"].as_f64().unwrap())
        })
        .unwrap();
    assert_eq!(merge["chosen_weight"], best["weight"]);
    assert_eq!(best["score"], best["scores"]["val_mul"]);
    let merged = out3.join("merged");
    let card = std::fs::read_to_string(merged.join("README.md")).unwrap();
    assert!(
        card.contains("merged with the starting model") && card.contains("## Evaluation"),
        "{card}"
    );
    assert_eq!(
        read_json(&out3.join("eval.json"))["model"],
        merged.to_str().unwrap()
    );
    // w = 0 is the starting model: its validation equals a 0-step look at the start weights,
    // which differ from the trained ones.
    assert_ne!(grid[0]["scores"], grid[2]["scores"]);
    // w = 1 is the final checkpoint, the best validated step by val_mul: the same scores.
    let log3 = read_log(&out3);
    let best_mul = log3
        .iter()
        .map(|l| l["val_mul"].as_f64().unwrap())
        .fold(f64::MIN, f64::max);
    assert_eq!(grid[2]["scores"]["val_mul"].as_f64().unwrap(), best_mul);
    // A JSONL corpus has no benchmark to score.
    let data = tiny_corpus(tmp.path(), 30);
    let a = args(data.to_str().unwrap(), &tmp.path().join("run2"), "mo");
    let err = fails(1, &a.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(err.contains("--select mo"), "{err}");
}
