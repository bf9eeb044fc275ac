//! `multiret eval`, run as a command. XQuAD-R and the built-in sample go through the whole
//! `--dump-texts` → `.npy` → `--embeddings` path with the n-gram baseline computed from the
//! dumped texts; no test loads a real model (they run where none can be fetched).

mod common;

use std::path::Path;

use common::{arg_path, fails, ok, read_json, TempDir};
use multiret_eval::{
    load_dataset, resolve_dataset, run_evaluation, write_embeddings_dir, EmbeddingSource,
    EvalConfig, Matrix, NgramEncoder, Report,
};
use serde_json::Value;

/// The dimension of the n-gram baseline: smaller in debug builds, where the kernels' GEMM is
/// not optimised.
const DIM: usize = if cfg!(debug_assertions) { 48 } else { 384 };

/// Encodes a `--dump-texts` file with the n-gram baseline into `queries.npy` and
/// `candidates.npy`, as an external tool would.
fn embed_dump(dump: &Path, out: &Path) -> (usize, usize) {
    let enc = NgramEncoder::new(3, DIM).unwrap();
    let (mut q, mut c) = (Vec::new(), Vec::new());
    let (mut nq, mut nc) = (0, 0);
    for line in std::fs::read_to_string(dump).unwrap().lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        let text = v["text"].as_str().unwrap();
        match v["kind"].as_str().unwrap() {
            "query" => {
                assert_eq!(nc, 0, "queries come first");
                q.extend(enc.embed(text));
                nq += 1;
            }
            "candidate" => {
                c.extend(enc.embed(text));
                nc += 1;
            }
            k => panic!("kind {k}"),
        }
    }
    write_embeddings_dir(
        out,
        &Matrix::new(nq, DIM, q).unwrap(),
        &Matrix::new(nc, DIM, c).unwrap(),
    )
    .unwrap();
    (nq, nc)
}

fn check_schema(r: &Value) {
    for k in ["dataset", "model", "timing"] {
        assert!(r.get(k).is_some(), "{k}");
    }
    for k in ["questions", "candidates", "skipped"] {
        assert!(r["counts"][k].as_u64().is_some(), "counts.{k}");
    }
    for k in ["map_macro", "r1_macro"] {
        assert!(r["settings"]["mono"][k].as_f64().is_some(), "mono.{k}");
        assert!(r["settings"]["cross"][k].as_f64().is_some(), "cross.{k}");
    }
    assert!(r["settings"]["mono"]["map_per_lang"].is_object());
    assert!(r["settings"]["cross"]["map_per_pair"].is_object());
    for k in ["map_macro", "map_micro", "r10_macro", "rank_distance_macro"] {
        assert!(r["settings"]["multi"][k].as_f64().is_some(), "multi.{k}");
    }
    assert!(r["settings"]["multi"]["map_per_lang"].is_object());
    assert!(r["settings"]["multi"]["rank_distance_per_lang"].is_object());
    for k in ["load_s", "encode_s", "score_s", "total_s"] {
        assert!(r["timing"][k].as_f64().is_some(), "timing.{k}");
    }
    assert!(r.get("warnings").is_none(), "{}", r["warnings"]);
}

/// `--out`, `--markdown` and `--plot`, into a temporary directory.
struct Reports {
    json: String,
    markdown: String,
    svg: String,
}

impl Reports {
    fn new(tmp: &TempDir) -> Self {
        Reports {
            json: arg_path(tmp, "r.json"),
            markdown: arg_path(tmp, "r.md"),
            svg: arg_path(tmp, "h.svg"),
        }
    }

    /// `args` followed by the three options.
    fn after<'a>(&'a self, args: &[&'a str]) -> Vec<&'a str> {
        let mut v = args.to_vec();
        v.extend([
            "--out",
            &self.json,
            "--markdown",
            &self.markdown,
            "--plot",
            &self.svg,
        ]);
        v
    }

    /// The JSON report, its schema checked.
    fn report(&self) -> Value {
        let r = read_json(Path::new(&self.json));
        check_schema(&r);
        r
    }

    fn read(path: &str) -> String {
        std::fs::read_to_string(path).unwrap()
    }
}

#[test]
fn default_dataset_is_the_builtin_sample() {
    let tmp = TempDir::new("sample");
    let files = Reports::new(&tmp);
    ok(&files.after(&[
        "eval",
        "--model",
        "ngram",
        "--no-cache",
        "--quiet",
        "--data-dir",
        "/nonexistent",
    ]));
    let r = files.report();
    assert_eq!(r["dataset"], "sample");
    assert_eq!(r["model"], "ngram");
    assert_eq!(r["counts"]["questions"], 165);
    assert_eq!(r["counts"]["skipped"], 0);
    assert_eq!(
        r["settings"]["cross"]["map_per_pair"]
            .as_object()
            .unwrap()
            .len(),
        20
    );
    assert_eq!(r["prefixes"]["query"], "query: ");
    let md = Reports::read(&files.markdown);
    assert!(md.contains("## Cross-lingual mAP") && md.contains("| **de** |"));
    let svg = Reports::read(&files.svg);
    assert!(svg.contains("<svg") && svg.contains(">zh</text>") && svg.contains("query language"));
}

#[test]
fn without_out_or_markdown_the_tables_go_to_stdout() {
    let stdout = ok(&["eval", "--model", "ngram:3:32", "--no-cache", "-q"]);
    assert!(stdout.contains("## Cross-lingual mAP"), "{stdout}");
}

#[test]
fn the_default_model_is_loaded_and_named_by_its_spec() {
    let tmp = TempDir::new("model");
    let cache = arg_path(&tmp, "cache");
    // No model can be fetched here: the error names the default model.
    let no_model = ["eval", "-q", "--no-cache", "--cache-dir", &cache];
    let err = fails(1, &no_model);
    assert!(err.contains("loading model `e5-small`"), "{err}");
    let err = fails(1, &[&no_model[..], &["--model", "labse"]].concat());
    assert!(err.contains("loading model `labse`"), "{err}");
    // The report names the model by its spec, with the precision when not f32.
    let out = arg_path(&tmp, "r.json");
    for (precision, name) in [("f32", "ngram:2:32"), ("bf16", "ngram:2:32 (bf16)")] {
        ok(&[
            "eval",
            "-q",
            "--no-cache",
            "--model",
            "ngram:2:32",
            "--precision",
            precision,
            "--threads",
            "1",
            "--out",
            &out,
        ]);
        assert_eq!(read_json(Path::new(&out))["model"], name);
    }
}

#[test]
fn bad_arguments_are_usage_errors() {
    let err = fails(2, &["eval", "--precision", "f16"]);
    assert!(
        err.contains("invalid value 'f16' for '--precision <PRECISION>'")
            && err.contains("[possible values: f32, bf16]"),
        "{err}"
    );
    let err = fails(2, &["eval", "--batch-size", "0"]);
    assert!(err.contains("--batch-size"), "{err}");
    let err = fails(2, &["eval", "--protocol", "beir"]);
    assert!(err.contains("[possible values: lareqa, xtreme-r]"), "{err}");
    let embed = "embed --kind query --input a --output b --precision x";
    let err = fails(2, &embed.split(' ').collect::<Vec<_>>());
    assert!(err.contains("[possible values: f32, bf16]"), "{err}");
}

#[test]
fn dump_texts_alone_loads_no_model() {
    let tmp = TempDir::new("dump");
    let dump = arg_path(&tmp, "texts.jsonl");
    let cache = arg_path(&tmp, "cache");
    ok(&[
        "eval",
        "-q",
        "--cache-dir",
        &cache,
        "--dump-texts",
        &dump,
        "--candidates",
        "context",
        "--no-prefixes",
    ]);
    let first: Value = serde_json::from_str(
        std::fs::read_to_string(&dump)
            .unwrap()
            .lines()
            .nth(165)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(first["kind"], "candidate");
    assert!(first["context"]
        .as_str()
        .unwrap()
        .contains(first["text"].as_str().unwrap()));
    assert!(
        first["text"].as_str().unwrap().starts_with("Honigbienen"),
        "no prefix"
    );
}

#[test]
fn sample_through_embeddings_files_and_cache() {
    let tmp = TempDir::new("emb");
    let dump = arg_path(&tmp, "texts.jsonl");
    ok(&["eval", "-q", "--dump-texts", &dump]);
    let emb = tmp.path().join("emb");
    assert_eq!(embed_dump(Path::new(&dump), &emb), (165, 160));
    let emb_s = emb.to_str().unwrap();
    let out = arg_path(&tmp, "r.json");
    let no_models = arg_path(&tmp, "no-models");
    ok(&[
        "eval",
        "-q",
        "--cache-dir",
        &no_models,
        "--embeddings",
        emb_s,
        "--out",
        &out,
    ]);
    let from_files = read_json(Path::new(&out));
    assert_eq!(from_files["embeddings"], "files");
    assert!(from_files["model"]
        .as_str()
        .unwrap()
        .starts_with("embeddings:"));
    // The same numbers as encoding in-process with the same baseline (through the cache the
    // second time), the cache in embeddings/ under the cache directory.
    let cache = arg_path(&tmp, "cache");
    let model = format!("ngram:3:{DIM}");
    for expected in ["encoded", "cache"] {
        ok(&[
            "eval",
            "-q",
            "--model",
            &model,
            "--cache-dir",
            &cache,
            "--out",
            &out,
        ]);
        let r = read_json(Path::new(&out));
        assert_eq!(r["embeddings"], expected);
        assert_eq!(
            r["settings"], from_files["settings"],
            "files and model differ"
        );
    }
    let entries = std::fs::read_dir(Path::new(&cache).join("embeddings")).unwrap();
    assert_eq!(entries.count(), 1);
    // Wrong row counts: the error names the file, expected and got.
    let d = multiret_eval::read_npy_f32(&emb.join("candidates.npy")).unwrap();
    let short = Matrix::new(d.rows - 1, d.cols, d.data[..(d.rows - 1) * d.cols].to_vec()).unwrap();
    multiret_eval::write_npy_f32(&emb.join("candidates.npy"), &short).unwrap();
    let msg = fails(
        1,
        &["eval", "-q", "--embeddings", emb_s, "--out", "/dev/null"],
    );
    assert!(
        msg.contains("candidates.npy") && msg.contains("expected 160 rows, got 159"),
        "{msg}"
    );
}

#[test]
fn the_embedding_cache_has_its_own_place() {
    let tmp = TempDir::new("embcache");
    let (cache, own, out) = (
        arg_path(&tmp, "cache"),
        arg_path(&tmp, "own"),
        arg_path(&tmp, "r.json"),
    );
    let args = [
        "eval",
        "-q",
        "--model",
        "ngram:2:32",
        "--cache-dir",
        &cache,
        "--out",
        &out,
    ];
    // --embedding-cache, then MULTIRET_EMBED_CACHE, take the entries out of the cache
    // directory.
    let mut flag = args.to_vec();
    flag.extend(["--embedding-cache", &own]);
    ok(&flag);
    assert_eq!(std::fs::read_dir(&own).unwrap().count(), 1);
    let env = arg_path(&tmp, "env");
    let status = common::multiret(&args)
        .env("MULTIRET_EMBED_CACHE", &env)
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(std::fs::read_dir(&env).unwrap().count(), 1);
    assert!(!Path::new(&cache).join("embeddings").exists());
    // A cache that cannot be written is a warning, on stderr and in the report.
    let mut bad = args.to_vec();
    bad.extend(["--embedding-cache", "/dev/null/cache"]);
    let run = common::output(&mut common::multiret(&bad));
    assert!(run.status.success());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains("warning: could not write the embedding cache"),
        "{stderr}"
    );
    let warnings = &read_json(Path::new(&out))["warnings"];
    assert_eq!(warnings.as_array().map(Vec::len), Some(1), "{warnings}");
}

#[test]
fn unknown_dataset_is_a_clear_error() {
    let tmp = TempDir::new("unknown");
    let msg = fails(
        1,
        &[
            "eval",
            "-q",
            "--dataset",
            "xquad-r",
            "--data-dir",
            tmp.path().to_str().unwrap(),
            "--model",
            "ngram",
        ],
    );
    assert!(
        msg.contains("unknown dataset `xquad-r`") && msg.contains("MULTIRET_DATA"),
        "{msg}"
    );
}

#[test]
fn xquad_r_through_dump_texts_and_embeddings() {
    let data = common::data_dir();
    let data_s = data.to_str().unwrap();
    let tmp = TempDir::new("xquad");
    let dump = arg_path(&tmp, "texts.jsonl");
    ok(&[
        "eval",
        "-q",
        "--dataset",
        "xquad-r",
        "--data-dir",
        data_s,
        "--dump-texts",
        &dump,
    ]);
    let emb = tmp.path().join("emb");
    assert_eq!(embed_dump(Path::new(&dump), &emb), (12_978, 13_014));
    let files = Reports::new(&tmp);
    let model = format!("ngram:3:{DIM}");
    ok(&files.after(&[
        "eval",
        "-q",
        "--dataset",
        "xquad-r",
        "--data-dir",
        data_s,
        "--embeddings",
        emb.to_str().unwrap(),
        "--model",
        &model,
    ]));
    let r = files.report();
    assert_eq!(r["dataset"], "xquad-r");
    assert_eq!(r["model"], model.as_str());
    assert_eq!(r["counts"]["questions"], 12_978);
    assert_eq!(r["counts"]["candidates"], 13_014);
    assert_eq!(r["counts"]["skipped"], 112);
    assert_eq!(
        r["counts"]["skipped_by_reason"]["answer_crosses_sentence_end"],
        112
    );
    assert_eq!(
        r["settings"]["mono"]["map_per_lang"]
            .as_object()
            .unwrap()
            .len(),
        11
    );
    let pairs = r["settings"]["cross"]["map_per_pair"].as_object().unwrap();
    assert_eq!(pairs.len(), 110);
    assert!(
        pairs.contains_key("ar-zh") && pairs.contains_key("zh-ar") && !pairs.contains_key("en-en")
    );
    assert_eq!(r["settings"]["multi"]["pool"], 13_014);
    let mono = r["settings"]["mono"]["map_macro"].as_f64().unwrap();
    let cross = r["settings"]["cross"]["map_macro"].as_f64().unwrap();
    assert!(mono > 0.1 && mono > cross, "mono {mono}, cross {cross}");
    // 11-way parallel: a Cr. query whose id has no version in Y only when Y's version was
    // skipped.
    let skipped_cross = r["settings"]["cross"]["skipped"].as_u64().unwrap();
    assert!(
        skipped_cross > 0 && skipped_cross <= 112 * 10,
        "{skipped_cross}"
    );
    assert!(Reports::read(&files.markdown).contains("| **th** |"));
    assert_eq!(Reports::read(&files.svg).matches("<title>").count(), 121);

    // The dump is exactly what the evaluation encodes, in its order.
    let ds = load_dataset(&resolve_dataset(Some("xquad-r"), &data).unwrap(), None).unwrap();
    let texts = ds
        .texts(&EvalConfig::default().prefixes, Default::default())
        .unwrap();
    let dumped: Vec<String> = std::fs::read_to_string(&dump)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["text"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(dumped.len(), texts.queries.len() + texts.candidates.len());
    assert!(dumped[..texts.queries.len()] == texts.queries[..]);
    assert!(dumped[texts.queries.len()..] == texts.candidates[..]);
}

#[test]
fn files_and_model_give_identical_reports() {
    // On the sample: embeddings written from the dump and scored from files give exactly the
    // numbers of the in-process model (compared after the same JSON round trip).
    let tmp = TempDir::new("same");
    let dump = arg_path(&tmp, "texts.jsonl");
    ok(&["eval", "-q", "--dump-texts", &dump]);
    let emb = tmp.path().join("emb");
    embed_dump(Path::new(&dump), &emb);
    let out = arg_path(&tmp, "r.json");
    ok(&[
        "eval",
        "-q",
        "--embeddings",
        emb.to_str().unwrap(),
        "--out",
        &out,
    ]);
    let ds = load_dataset(&resolve_dataset(None, tmp.path()).unwrap(), None).unwrap();
    let enc = NgramEncoder::new(3, DIM).unwrap();
    let direct = run_evaluation(
        &ds,
        EmbeddingSource::Model(&enc),
        None,
        &EvalConfig::default(),
    )
    .unwrap();
    let Report::Lareqa(d) = direct else { panic!() };
    let direct: Value = serde_json::from_str(&serde_json::to_string(&d.settings).unwrap()).unwrap();
    assert_eq!(direct, read_json(Path::new(&out))["settings"]);
}

#[test]
fn protocol_flag() {
    let tmp = TempDir::new("protocol");
    let files = Reports::new(&tmp);
    let run = |extra: &[&str]| -> Value {
        let mut args = vec!["eval", "--model", "ngram", "--no-cache", "--quiet"];
        args.extend_from_slice(extra);
        ok(&files.after(&args));
        files.report()
    };
    let modes = |r: &Value| (r["protocol"].clone(), r["candidates_mode"].clone());
    let r = run(&[]);
    assert_eq!(modes(&r), ("lareqa".into(), "sentence".into()));
    assert!(r.get("xtreme_r").is_none());
    let r = run(&["--protocol", "xtreme-r", "--candidates", "sentence"]);
    assert_eq!(modes(&r), ("xtreme-r".into(), "sentence".into()));
    let r = run(&["--candidates", "sentence-context"]);
    assert_eq!(modes(&r), ("lareqa".into(), "sentence_context".into()));
    // End to end on the built-in sample with the n-gram baseline.
    let r = run(&["--protocol", "xtreme-r"]);
    assert_eq!(modes(&r), ("xtreme-r".into(), "sentence_context".into()));
    assert_eq!(r["xtreme_r"]["k"], 20);
    let micro = r["xtreme_r"]["multi"]["map_at_k_micro"].as_f64().unwrap();
    assert!(micro > 0.0 && micro <= 1.0, "{micro}");
    assert!(Reports::read(&files.markdown).contains("XTREME-R: mAP@20"));
}

#[test]
fn centring_with_training_side_means() {
    let data = common::data_dir();
    let data_s = data.to_str().unwrap();
    let tmp = TempDir::new("center");
    let means = arg_path(&tmp, "means.json");
    let report = arg_path(&tmp, "report.json");
    let model = "ngram:3:32";
    let eval = |dataset: &str, extra: &[&str]| {
        let mut a = vec![
            "eval",
            "-q",
            "--no-cache",
            "--model",
            model,
            "--data-dir",
            data_s,
            "--dataset",
            dataset,
            "--out",
            &report,
        ];
        a.extend_from_slice(extra);
        a.into_iter().map(str::to_string).collect::<Vec<_>>()
    };
    let run = |args: Vec<String>| ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let fail = |args: Vec<String>| fails(1, &args.iter().map(String::as_str).collect::<Vec<_>>());
    run(eval("mlqa-r", &["--save-means", &means]));
    let m = read_json(Path::new(&means));
    assert_eq!(m["dataset"], "mlqa-r");
    assert_eq!(m["languages"].as_object().unwrap().len(), 7);
    // XQuAD-R has four languages MLQA-R lacks: an error unless they get the pooled mean.
    let err = fail(eval("xquad-r", &["--center", &means]));
    assert!(
        err.contains("means.json") && err.contains("el, ru, th, tr"),
        "{err}"
    );
    run(eval(
        "xquad-r",
        &["--center", &means, "--center-missing", "pooled"],
    ));
    let r = read_json(Path::new(&report));
    assert_eq!(
        r["centering"]["pooled_mean"],
        serde_json::json!(["el", "ru", "th", "tr"])
    );
    assert_eq!(r["centering"]["own_means"].as_array().unwrap().len(), 7);
    // The means of the dataset being evaluated are refused.
    let err = fail(eval("mlqa-r", &["--center", &means]));
    assert!(err.contains("being evaluated"), "{err}");
    let err = fails(2, &["eval", "--center-missing", "pooled"]);
    assert!(err.contains("--center"), "{err}");
}
