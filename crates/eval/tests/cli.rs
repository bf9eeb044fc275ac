//! `multiret eval` at the command level: `crates/cli/src/eval.rs` is compiled into this test
//! (the CLI crate wires it into its `main`), driven with parsed arguments and fake encoders.
//! XQuAD-R and the built-in sample go through the whole `--dump-texts` → `.npy` →
//! `--embeddings` path with the n-gram baseline computed from the dumped texts.

mod common;

#[allow(dead_code)]
#[path = "../../cli/src/eval.rs"]
mod eval;

use std::cell::RefCell;
use std::path::Path;

use clap::Parser;
use multiret_eval::{
    load_dataset, resolve_dataset, run_evaluation, write_embeddings_dir, EmbeddingSource, Encoder,
    EvalConfig, Matrix, NgramEncoder, Report,
};
use serde_json::Value;

/// The dimension of the n-gram baseline: smaller in debug builds, where the kernels' GEMM is
/// not optimised.
const DIM: usize = if cfg!(debug_assertions) { 48 } else { 384 };

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: eval::EvalArgs,
}

fn parse(args: &[&str]) -> eval::EvalArgs {
    Cli::try_parse_from(std::iter::once("eval").chain(args.iter().copied()))
        .unwrap()
        .args
}

fn no_model(spec: &str) -> anyhow::Result<Box<dyn Encoder>> {
    anyhow::bail!("no model `{spec}` in this test")
}

fn read_json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

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
}

#[test]
fn default_dataset_is_the_builtin_sample() {
    let tmp = common::TempDir::new("cli-sample");
    let (out, md, svg) = (
        tmp.path().join("r.json"),
        tmp.path().join("r.md"),
        tmp.path().join("h.svg"),
    );
    let args = parse(&[
        "--model",
        "ngram",
        "--no-cache",
        "--quiet",
        "--data-dir",
        "/nonexistent",
        "--out",
        out.to_str().unwrap(),
        "--markdown",
        md.to_str().unwrap(),
        "--plot",
        svg.to_str().unwrap(),
    ]);
    eval::run(&args, &no_model).unwrap();
    let r = read_json(&out);
    check_schema(&r);
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
    let md = std::fs::read_to_string(&md).unwrap();
    assert!(md.contains("## Cross-lingual mAP") && md.contains("| **de** |"));
    let svg = std::fs::read_to_string(&svg).unwrap();
    assert!(svg.contains("<svg") && svg.contains(">zh</text>") && svg.contains("query language"));
}

#[test]
fn default_model_goes_through_the_factory() {
    let seen = RefCell::new(Vec::new());
    let factory = |spec: &str| -> anyhow::Result<Box<dyn Encoder>> {
        seen.borrow_mut().push(spec.to_string());
        Ok(Box::new(NgramEncoder::new(2, 32)?))
    };
    let tmp = common::TempDir::new("cli-factory");
    let out = tmp.path().join("r.json");
    eval::run(
        &parse(&[
            "--no-cache",
            "-q",
            "--out",
            out.to_str().unwrap(),
            "--threads",
            "1",
        ]),
        &factory,
    )
    .unwrap();
    assert_eq!(*seen.borrow(), ["e5-small"]);
    // The report names the model by its spec (the encoder's name keys the cache).
    assert_eq!(read_json(&out)["model"], "e5-small");
    // A factory error names the model.
    let e = eval::run(
        &parse(&[
            "--no-cache",
            "-q",
            "--model",
            "labse",
            "--out",
            out.to_str().unwrap(),
        ]),
        &no_model,
    )
    .unwrap_err();
    assert!(format!("{e:#}").contains("loading model `labse`"), "{e:#}");
}

#[test]
fn dump_texts_alone_loads_no_model() {
    let tmp = common::TempDir::new("cli-dump");
    let dump = tmp.path().join("texts.jsonl");
    let args = parse(&[
        "-q",
        "--dump-texts",
        dump.to_str().unwrap(),
        "--candidates",
        "context",
        "--no-prefixes",
    ]);
    eval::run(&args, &|_: &str| panic!("no model must be loaded")).unwrap();
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
    let tmp = common::TempDir::new("cli-emb");
    let dump = tmp.path().join("texts.jsonl");
    eval::run(
        &parse(&["-q", "--dump-texts", dump.to_str().unwrap()]),
        &no_model,
    )
    .unwrap();
    let emb = tmp.path().join("emb");
    assert_eq!(embed_dump(&dump, &emb), (165, 160));
    let out = tmp.path().join("r.json");
    let args = parse(&[
        "-q",
        "--embeddings",
        emb.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    eval::run(&args, &|_: &str| panic!("no model with --embeddings")).unwrap();
    let from_files = read_json(&out);
    assert_eq!(from_files["embeddings"], "files");
    assert!(from_files["model"]
        .as_str()
        .unwrap()
        .starts_with("embeddings:"));
    // The same numbers as encoding in-process with the same baseline (through the cache the
    // second time).
    let cache = tmp.path().join("cache");
    let model = format!("ngram:3:{DIM}");
    for expected in ["encoded", "cache"] {
        let args = parse(&[
            "-q",
            "--model",
            &model,
            "--cache-dir",
            cache.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        eval::run(&args, &no_model).unwrap();
        let r = read_json(&out);
        assert_eq!(r["embeddings"], expected);
        assert_eq!(
            r["settings"], from_files["settings"],
            "files and model differ"
        );
    }
    // Wrong row counts: the error names the file, expected and got.
    let d = multiret_eval::read_npy_f32(&emb.join("candidates.npy")).unwrap();
    let short = Matrix::new(d.rows - 1, d.cols, d.data[..(d.rows - 1) * d.cols].to_vec()).unwrap();
    multiret_eval::write_npy_f32(&emb.join("candidates.npy"), &short).unwrap();
    let e = eval::run(&args_with_embeddings(&emb), &no_model).unwrap_err();
    let msg = format!("{e:#}");
    assert!(
        msg.contains("candidates.npy") && msg.contains("expected 160 rows, got 159"),
        "{msg}"
    );
}

fn args_with_embeddings(emb: &Path) -> eval::EvalArgs {
    parse(&[
        "-q",
        "--embeddings",
        emb.to_str().unwrap(),
        "--out",
        "/dev/null",
    ])
}

#[test]
fn unknown_dataset_is_a_clear_error() {
    let tmp = common::TempDir::new("cli-unknown");
    let args = parse(&[
        "-q",
        "--dataset",
        "xquad-r",
        "--data-dir",
        tmp.path().to_str().unwrap(),
        "--model",
        "ngram",
    ]);
    let msg = format!("{:#}", eval::run(&args, &no_model).unwrap_err());
    assert!(
        msg.contains("unknown dataset `xquad-r`") && msg.contains("MULTIRET_DATA"),
        "{msg}"
    );
}

#[test]
fn xquad_r_through_dump_texts_and_embeddings() {
    let data = common::data_dir();
    let data_s = data.to_str().unwrap();
    let tmp = common::TempDir::new("cli-xquad");
    let dump = tmp.path().join("texts.jsonl");
    eval::run(
        &parse(&[
            "-q",
            "--dataset",
            "xquad-r",
            "--data-dir",
            data_s,
            "--dump-texts",
            dump.to_str().unwrap(),
        ]),
        &no_model,
    )
    .unwrap();
    let emb = tmp.path().join("emb");
    assert_eq!(embed_dump(&dump, &emb), (12_978, 13_014));
    let (out, md, svg) = (
        tmp.path().join("r.json"),
        tmp.path().join("r.md"),
        tmp.path().join("h.svg"),
    );
    let model = format!("ngram:3:{DIM}");
    let args = parse(&[
        "-q",
        "--dataset",
        "xquad-r",
        "--data-dir",
        data_s,
        "--embeddings",
        emb.to_str().unwrap(),
        "--model",
        &model,
        "--out",
        out.to_str().unwrap(),
        "--markdown",
        md.to_str().unwrap(),
        "--plot",
        svg.to_str().unwrap(),
    ]);
    eval::run(&args, &no_model).unwrap();
    let r = read_json(&out);
    check_schema(&r);
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
    let md = std::fs::read_to_string(&md).unwrap();
    assert!(md.contains("| **th** |"));
    assert!(
        std::fs::read_to_string(&svg)
            .unwrap()
            .matches("<title>")
            .count()
            == 121
    );

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
    let tmp = common::TempDir::new("cli-same");
    let dump = tmp.path().join("texts.jsonl");
    eval::run(
        &parse(&["-q", "--dump-texts", dump.to_str().unwrap()]),
        &no_model,
    )
    .unwrap();
    let emb = tmp.path().join("emb");
    embed_dump(&dump, &emb);
    let out = tmp.path().join("r.json");
    eval::run(
        &parse(&[
            "-q",
            "--embeddings",
            emb.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]),
        &no_model,
    )
    .unwrap();
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
    assert_eq!(direct, read_json(&out)["settings"]);
}

#[test]
fn protocol_flag() {
    use multiret_eval::{CandidateMode, Protocol};
    let c = parse(&[]).config();
    assert_eq!(
        (c.protocol, c.candidates),
        (Protocol::Lareqa, CandidateMode::Sentence)
    );
    let c = parse(&["--protocol", "xtreme-r"]).config();
    assert_eq!(
        (c.protocol, c.candidates),
        (Protocol::XtremeR, CandidateMode::SentenceContext)
    );
    let c = parse(&["--protocol", "xtreme-r", "--candidates", "sentence"]).config();
    assert_eq!(c.candidates, CandidateMode::Sentence);
    let c = parse(&["--candidates", "sentence-context"]).config();
    assert_eq!(
        (c.protocol, c.candidates),
        (Protocol::Lareqa, CandidateMode::SentenceContext)
    );
    // End to end on the built-in sample with the n-gram baseline.
    let tmp = common::TempDir::new("cli-protocol");
    let out = tmp.path().join("r.json");
    let md = tmp.path().join("r.md");
    let args = parse(&[
        "--model",
        "ngram",
        "--no-cache",
        "--quiet",
        "--protocol",
        "xtreme-r",
        "--out",
        out.to_str().unwrap(),
        "--markdown",
        md.to_str().unwrap(),
    ]);
    eval::run(&args, &no_model).unwrap();
    let r = read_json(&out);
    check_schema(&r);
    assert_eq!(r["protocol"], "xtreme-r");
    assert_eq!(r["candidates_mode"], "sentence_context");
    assert_eq!(r["xtreme_r"]["k"], 20);
    let micro = r["xtreme_r"]["multi"]["map_at_k_micro"].as_f64().unwrap();
    assert!(micro > 0.0 && micro <= 1.0, "{micro}");
    assert!(std::fs::read_to_string(&md)
        .unwrap()
        .contains("XTREME-R: mAP@20"));
}
