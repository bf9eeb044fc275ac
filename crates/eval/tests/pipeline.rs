//! The evaluation pipeline on the built-in sample and on small synthetic data: the ranks of
//! every setting against a brute-force full sort, the cache, precomputed embeddings, context
//! mode, the dump, errors, and BEIR-style corpora.

mod common;

use std::collections::HashMap;

use multiret_eval::metrics::{average_precision, ranks_before};
use multiret_eval::pipeline::{cache_entry_dir, cache_key};
use multiret_eval::{
    builtin_sample, rank_lareqa, read_embeddings_dir, run_evaluation, write_embeddings_dir,
    CandidateMode, Dataset, EmbeddingOrigin, EmbeddingSource, EvalConfig, EvalError, LareqaDataset,
    Matrix, NgramEncoder, Prefixes, Report, ScoreOptions, TextEmbedder,
};

/// Unit vectors with four entries of ±0.5 (dim 16) picked by a hash of the text: every dot
/// product is an exact multiple of 0.25 whatever the summation order, so scores tie a lot and
/// a brute-force reference sees exactly the scores the GEMM produces.
fn exact_embedding(text: &str, salt: u64) -> Vec<f32> {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ salt;
    for b in text.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let mut v = vec![0.0f32; 16];
    let mut placed = 0;
    let mut x = h;
    while placed < 4 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let i = (x >> 33) as usize % 16;
        if v[i] == 0.0 {
            v[i] = if (x >> 13) & 1 == 0 { 0.5 } else { -0.5 };
            placed += 1;
        }
    }
    v
}

struct ExactEncoder;

impl TextEmbedder for ExactEncoder {
    fn name(&self) -> String {
        "exact-test".into()
    }
    fn dim(&self) -> usize {
        16
    }
    fn encode(
        &self,
        texts: &[String],
        _: &dyn Fn(usize),
    ) -> Result<Vec<f32>, multiret_eval::BoxError> {
        // Queries and their answers' sentences share a "topic" by article id to make ranks
        // non-trivial: hash only the first word after the prefix.
        Ok(texts
            .iter()
            .flat_map(|t| exact_embedding(t.split_whitespace().nth(1).unwrap_or(""), 7))
            .collect())
    }
}

fn matrix_of(enc: &dyn TextEmbedder, texts: &[String]) -> Matrix {
    Matrix::new(texts.len(), enc.dim(), enc.encode(texts, &|_| {}).unwrap()).unwrap()
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Rank of `target` among `cands` (global indices) by a full sort.
fn full_sort_rank(scores: &[(f32, usize)], target: usize) -> usize {
    let mut s = scores.to_vec();
    s.sort_by(|a, b| {
        if ranks_before(a.0, a.1, b.0, b.1) {
            std::cmp::Ordering::Less
        } else {
            std::cmp::Ordering::Greater
        }
    });
    s.iter().position(|&(_, i)| i == target).unwrap() + 1
}

fn check_against_brute_force(ds: &LareqaDataset, q: &Matrix, c: &Matrix, block_rows: usize) {
    let opts = ScoreOptions {
        block_rows,
        ..ScoreOptions::default()
    };
    let ranks = rank_lareqa(ds, q, c, &opts).unwrap();
    let mut off = vec![0];
    for l in &ds.langs {
        off.push(off.last().unwrap() + l.candidates.len());
    }
    let mut gold: HashMap<(&str, usize), usize> = HashMap::new();
    for (l, ld) in ds.langs.iter().enumerate() {
        for qu in &ld.questions {
            gold.insert((qu.id.as_str(), l), off[l] + qu.gold);
        }
    }
    let mut qi = 0;
    let mut ties = 0;
    for (x, lx) in ds.langs.iter().enumerate() {
        for qu in &lx.questions {
            let scores: Vec<(f32, usize)> =
                (0..c.rows).map(|j| (dot(q.row(qi), c.row(j)), j)).collect();
            let mut multi = Vec::new();
            for y in 0..ds.langs.len() {
                let got = ranks.in_lang(qi, y) as usize;
                match gold.get(&(qu.id.as_str(), y)) {
                    None => assert_eq!(got, 0),
                    Some(&g) => {
                        let block: Vec<(f32, usize)> = scores[off[y]..off[y + 1]].to_vec();
                        let want = full_sort_rank(&block, g);
                        assert_eq!(
                            got, want,
                            "query {qi} ({}, {}) in language {y}",
                            lx.lang, qu.id
                        );
                        ties += block
                            .iter()
                            .filter(|s| s.0 == scores[g].0 && s.1 != g)
                            .count();
                        multi.push(full_sort_rank(&scores, g));
                    }
                }
            }
            let _ = x;
            multi.sort_unstable();
            let got: Vec<usize> = ranks.multi(qi).iter().map(|&r| r as usize).collect();
            assert_eq!(got, multi, "Mul. ranks of query {qi}");
            qi += 1;
        }
    }
    assert!(
        ties > 100,
        "the exact embeddings should produce many ties, got {ties}"
    );
}

#[test]
fn ranks_match_a_full_sort_on_every_setting() {
    let ds = builtin_sample().unwrap();
    let texts = Dataset::Lareqa(ds.clone())
        .texts(&Prefixes::e5(), CandidateMode::Sentence)
        .unwrap();
    let q = matrix_of(&ExactEncoder, &texts.queries);
    let c = matrix_of(&ExactEncoder, &texts.candidates);
    for block in [1, 7, 512] {
        check_against_brute_force(&ds, &q, &c, block);
    }
    // A dataset where ids are missing from some languages (like MLQA-R): drop questions.
    let mut partial = ds.clone();
    partial.langs[0].questions.retain(|q| !q.id.ends_with("-1"));
    partial.langs[3]
        .questions
        .retain(|q| !q.id.contains("moon") && !q.id.ends_with("-2"));
    let texts = Dataset::Lareqa(partial.clone())
        .texts(&Prefixes::e5(), CandidateMode::Sentence)
        .unwrap();
    let q = matrix_of(&ExactEncoder, &texts.queries);
    let c = matrix_of(&ExactEncoder, &texts.candidates);
    check_against_brute_force(&partial, &q, &c, 5);
}

#[test]
fn sample_with_ngram_baseline_end_to_end() {
    let ds = Dataset::Lareqa(builtin_sample().unwrap());
    let enc = NgramEncoder::new(3, 384).unwrap();
    let cfg = EvalConfig::default();
    let report = run_evaluation(&ds, EmbeddingSource::Model(&enc), None, &cfg).unwrap();
    let Report::Lareqa(r) = &report else {
        panic!("LAReQA report expected")
    };
    assert_eq!(r.model, "ngram:3:384");
    assert_eq!(r.languages, vec!["de", "en", "es", "fr", "zh"]);
    assert_eq!(r.counts.questions, 165);
    assert_eq!(r.counts.candidates, 160);
    assert_eq!(r.counts.skipped, 0);
    let s = &r.settings;
    assert_eq!(s.cross.pairs, 20);
    assert_eq!(s.cross.map_per_pair.len(), 20);
    assert_eq!(s.mono.map_per_lang.len(), 5);
    assert_eq!(s.cross.skipped, 0);
    assert_eq!(s.multi.pool, 160);
    assert!((s.multi.relevant_per_query - 5.0).abs() < 1e-12);
    // A lexical baseline: clearly better than chance monolingually (32 candidates: chance mAP
    // about 0.13), worse across languages, and Mul. rank distances are large.
    assert!(s.mono.map_macro > 0.4, "{}", s.mono.map_macro);
    assert!(s.mono.map_macro > s.cross.map_macro);
    assert!(s.multi.rank_distance_macro.unwrap() > 5.0);
    for v in s
        .cross
        .map_per_pair
        .values()
        .chain(s.mono.map_per_lang.values())
    {
        assert!((0.0..=1.0).contains(v));
    }
    // Macro = mean of the per-language values.
    let mean = s.mono.map_per_lang.values().sum::<f64>() / 5.0;
    assert!((mean - s.mono.map_macro).abs() < 1e-12);
    // Report formats.
    let json: serde_json::Value = serde_json::from_str(&report.to_json().unwrap()).unwrap();
    for key in ["map_macro", "r1_macro", "map_per_lang"] {
        assert!(json["settings"]["mono"].get(key).is_some(), "mono.{key}");
    }
    for key in ["map_macro", "r1_macro", "map_per_pair"] {
        assert!(json["settings"]["cross"].get(key).is_some(), "cross.{key}");
    }
    for key in [
        "map_macro",
        "map_micro",
        "r10_macro",
        "rank_distance_macro",
        "map_per_lang",
        "rank_distance_per_lang",
    ] {
        assert!(json["settings"]["multi"].get(key).is_some(), "multi.{key}");
    }
    for key in ["questions", "candidates", "skipped"] {
        assert!(json["counts"].get(key).is_some(), "counts.{key}");
    }
    assert!(json["settings"]["cross"]["map_per_pair"]
        .get("de-zh")
        .is_some());
    assert_eq!(json["dataset"], "sample");
    assert!(json["timing"]["score_s"].as_f64().is_some());
    let md = report.to_markdown();
    assert!(md.contains("| Model | Mo. mAP | Cr. mAP | Mul. mAP |"));
    assert!(md.contains("| **zh** |"));
    let svg = report.heatmap_svg().unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert!(svg.matches("<rect x=").count() >= 25);
    assert!(report.summary().contains("Mo. mAP"));
}

#[test]
fn deterministic_and_block_size_independent() {
    let ds = builtin_sample().unwrap();
    let texts = Dataset::Lareqa(ds.clone())
        .texts(&Prefixes::e5(), CandidateMode::Sentence)
        .unwrap();
    let enc = NgramEncoder::new(3, 128).unwrap();
    let q = matrix_of(&enc, &texts.queries);
    let c = matrix_of(&enc, &texts.candidates);
    let a = rank_lareqa(
        &ds,
        &q,
        &c,
        &ScoreOptions {
            block_rows: 512,
            ..Default::default()
        },
    )
    .unwrap();
    let b = rank_lareqa(
        &ds,
        &q,
        &c,
        &ScoreOptions {
            block_rows: 3,
            par: multiret_kernels::Par::Seq,
        },
    )
    .unwrap();
    assert_eq!(a, b);
    // Mul. AP of one query from its ranks.
    let m: Vec<usize> = a.multi(0).iter().map(|&r| r as usize).collect();
    assert!(average_precision(&m) > 0.0);
}

#[test]
fn cache_and_files_give_the_same_report() {
    let tmp = common::TempDir::new("cache");
    let ds = Dataset::Lareqa(builtin_sample().unwrap());
    let enc = NgramEncoder::new(3, 64).unwrap();
    let cfg = EvalConfig {
        cache_dir: Some(tmp.path().join("cache")),
        ..EvalConfig::default()
    };
    let first = run_evaluation(&ds, EmbeddingSource::Model(&enc), None, &cfg).unwrap();
    let second = run_evaluation(&ds, EmbeddingSource::Model(&enc), None, &cfg).unwrap();
    let (Report::Lareqa(a), Report::Lareqa(b)) = (&first, &second) else {
        panic!()
    };
    assert_eq!(a.embeddings, "encoded");
    assert_eq!(b.embeddings, "cache");
    assert_eq!(a.settings, b.settings);
    let texts = ds.texts(&cfg.prefixes, cfg.candidates).unwrap();
    let entry = cache_entry_dir(
        cfg.cache_dir.as_ref().unwrap(),
        &enc.name(),
        "sample",
        CandidateMode::Sentence,
        &cache_key(&enc.name(), 64, &texts),
    );
    assert!(entry.join("meta.json").is_file());
    // Other prefixes miss the cache.
    let other = EvalConfig {
        prefixes: Prefixes::none(),
        ..cfg.clone()
    };
    let third = run_evaluation(&ds, EmbeddingSource::Model(&enc), None, &other).unwrap();
    let Report::Lareqa(c) = &third else { panic!() };
    assert_eq!(c.embeddings, "encoded");
    // The cache entry is a valid --embeddings directory.
    let from_files = run_evaluation(
        &ds,
        EmbeddingSource::Files(&entry),
        Some("ngram:3:64"),
        &cfg,
    )
    .unwrap();
    let Report::Lareqa(d) = &from_files else {
        panic!()
    };
    assert_eq!(d.embeddings, "files");
    assert_eq!(d.settings, a.settings);
    let e = read_embeddings_dir(&entry, 165, 160).unwrap();
    assert_eq!(e.origin, EmbeddingOrigin::Files);
}

#[test]
fn bad_embeddings_are_clear_errors() {
    let tmp = common::TempDir::new("bademb");
    let ds = Dataset::Lareqa(builtin_sample().unwrap());
    let cfg = EvalConfig::default();
    let (nq, nc) = (ds.num_queries(), ds.num_candidates());
    let ones = |rows: usize, cols: usize| Matrix::new(rows, cols, vec![1.0; rows * cols]).unwrap();
    // Wrong row count: names the file, expected and got.
    write_embeddings_dir(tmp.path(), &ones(nq - 1, 8), &ones(nc, 8)).unwrap();
    let e = run_evaluation(&ds, EmbeddingSource::Files(tmp.path()), None, &cfg).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("queries.npy") && msg.contains("expected 165 rows, got 164"),
        "{msg}"
    );
    write_embeddings_dir(tmp.path(), &ones(nq, 8), &ones(nc + 3, 8)).unwrap();
    let msg = run_evaluation(&ds, EmbeddingSource::Files(tmp.path()), None, &cfg)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("candidates.npy") && msg.contains("expected 160 rows, got 163"),
        "{msg}"
    );
    // Dimension mismatch.
    write_embeddings_dir(tmp.path(), &ones(nq, 8), &ones(nc, 9)).unwrap();
    let msg = run_evaluation(&ds, EmbeddingSource::Files(tmp.path()), None, &cfg)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("expected 8 columns, got 9"), "{msg}");
    // NaN: names the file and the row.
    let mut c = ones(nc, 8);
    c.data[17 * 8 + 3] = f32::NAN;
    write_embeddings_dir(tmp.path(), &ones(nq, 8), &c).unwrap();
    let e = run_evaluation(&ds, EmbeddingSource::Files(tmp.path()), None, &cfg).unwrap_err();
    assert!(
        matches!(
            e,
            EvalError::NonFinite {
                row: 17,
                col: 3,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("candidates.npy") && e.to_string().contains("row 17"));
    // Missing file, not an npy.
    std::fs::write(tmp.path().join("queries.npy"), b"hello").unwrap();
    let msg = run_evaluation(&ds, EmbeddingSource::Files(tmp.path()), None, &cfg)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("queries.npy") && msg.contains("magic"),
        "{msg}"
    );
    let msg = run_evaluation(
        &ds,
        EmbeddingSource::Files(&tmp.path().join("nope")),
        None,
        &cfg,
    )
    .unwrap_err()
    .to_string();
    assert!(msg.contains("nope"), "{msg}");
}

struct BadEncoder(usize);

impl TextEmbedder for BadEncoder {
    fn name(&self) -> String {
        "bad".into()
    }
    fn dim(&self) -> usize {
        4
    }
    fn encode(
        &self,
        texts: &[String],
        _: &dyn Fn(usize),
    ) -> Result<Vec<f32>, multiret_eval::BoxError> {
        match self.0 {
            0 => Err("weights not found".into()),
            1 => Ok(vec![0.5; texts.len() * 4 + 1]),
            3 => Ok(vec![0.5; texts.len() * 4]),
            _ => Ok(texts
                .iter()
                .flat_map(|t| {
                    if t.contains("Rhine") {
                        [f32::INFINITY; 4]
                    } else {
                        [0.5; 4]
                    }
                })
                .collect()),
        }
    }
}

#[test]
fn encoder_failures_are_clear_errors() {
    let ds = Dataset::Lareqa(builtin_sample().unwrap());
    let cfg = EvalConfig::default();
    let msg = run_evaluation(&ds, EmbeddingSource::Model(&BadEncoder(0)), None, &cfg)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("encoder `bad` failed: weights not found"),
        "{msg}"
    );
    let msg = run_evaluation(&ds, EmbeddingSource::Model(&BadEncoder(1)), None, &cfg)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("expected") && msg.contains("values"), "{msg}");
    let e = run_evaluation(&ds, EmbeddingSource::Model(&BadEncoder(2)), None, &cfg).unwrap_err();
    assert!(e.to_string().contains("is inf"), "{e}");
    // Context mode needs text pairs.
    let ctx = EvalConfig {
        candidates: CandidateMode::Context,
        ..cfg
    };
    let msg = run_evaluation(&ds, EmbeddingSource::Model(&BadEncoder(3)), None, &ctx)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("does not support text pairs"), "{msg}");
}

#[test]
fn context_mode() {
    let ds = Dataset::Lareqa(builtin_sample().unwrap());
    let cfg = EvalConfig {
        candidates: CandidateMode::Context,
        threads: Some(1),
        ..EvalConfig::default()
    };
    let texts = ds.texts(&cfg.prefixes, cfg.candidates).unwrap();
    let cx = texts.contexts.as_ref().unwrap();
    assert_eq!(cx.len(), texts.candidates.len());
    assert!(texts.candidates[0].starts_with("passage: "));
    assert!(cx[0].contains(texts.candidates[0].trim_start_matches("passage: ")));
    let enc = NgramEncoder::new(3, 128).unwrap();
    let report = run_evaluation(&ds, EmbeddingSource::Model(&enc), None, &cfg).unwrap();
    let Report::Lareqa(r) = &report else { panic!() };
    assert_eq!(r.candidates_mode, CandidateMode::Context);
    assert!(r.settings.mono.map_macro > 0.3);
}

#[test]
fn dump_texts_format() {
    let tmp = common::TempDir::new("dump");
    let ds = Dataset::Lareqa(builtin_sample().unwrap());
    for mode in [CandidateMode::Sentence, CandidateMode::Context] {
        let texts = ds.texts(&Prefixes::e5(), mode).unwrap();
        let path = tmp.path().join("texts.jsonl");
        ds.write_dump(&texts, &path).unwrap();
        let lines: Vec<serde_json::Value> = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 165 + 160);
        assert_eq!(lines[0]["kind"], "query");
        assert_eq!(lines[0]["lang"], "de");
        assert!(lines[0]["id"].as_str().unwrap().starts_with("sample-"));
        assert!(lines[0]["text"].as_str().unwrap().starts_with("query: "));
        assert_eq!(lines[164]["lang"], "zh");
        let c = &lines[165];
        assert_eq!(c["kind"], "candidate");
        assert_eq!(c["lang"], "de");
        assert_eq!(c["paragraph"], 0);
        assert_eq!(c["sentence"], 0);
        assert!(c["text"]
            .as_str()
            .unwrap()
            .starts_with("passage: Honigbienen"));
        assert_eq!(c.get("context").is_some(), mode == CandidateMode::Context);
        // Language-sorted queries, then candidates.
        let kinds: Vec<&str> = lines.iter().map(|l| l["kind"].as_str().unwrap()).collect();
        assert!(
            kinds[..165].iter().all(|&k| k == "query")
                && kinds[165..].iter().all(|&k| k == "candidate")
        );
        let langs: Vec<&str> = lines[..165]
            .iter()
            .map(|l| l["lang"].as_str().unwrap())
            .collect();
        assert!(langs.windows(2).all(|w| w[0] <= w[1]));
    }
}

fn write(path: &std::path::Path, s: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, s).unwrap();
}

#[test]
fn beir_layout_end_to_end() {
    let tmp = common::TempDir::new("beir");
    let dir = tmp.path().join("tiny-beir");
    write(
        &dir.join("corpus.jsonl"),
        concat!(
            r#"{"_id": "d1", "title": "Rhine", "text": "The Rhine rises in the Swiss Alps."}"#,
            "\n",
            r#"{"_id": "d2", "title": "", "text": "Honeybees perform a waggle dance."}"#,
            "\n",
            r#"{"_id": 3, "text": "Gutenberg printed a Bible in Mainz."}"#,
            "\n",
            r#"{"_id": "d4", "title": "Moon", "text": "Apollo 11 landed on the Moon in 1969."}"#,
            "\n",
        ),
    );
    write(
        &dir.join("queries.jsonl"),
        concat!(
            r#"{"_id": "q1", "text": "where does the rhine rise"}"#,
            "\n",
            r#"{"_id": "q2", "text": "waggle dance of honeybees"}"#,
            "\n",
            r#"{"_id": "q3", "text": "unjudged query"}"#,
            "\n",
            r#"{"_id": "q4", "text": "who printed in mainz"}"#,
            "\n",
        ),
    );
    write(
        &dir.join("qrels/test.tsv"),
        "query-id\tcorpus-id\tscore\nq1\td1\t2\nq1\td4\t0\nq2\td2\t1\nq4\t3\t1\nq4\tmissing\t1\nq9\td1\t1\n",
    );
    let spec = multiret_eval::resolve_dataset(Some(dir.to_str().unwrap()), tmp.path()).unwrap();
    let ds = multiret_eval::load_dataset(&spec, None).unwrap();
    let Dataset::Beir(b) = &ds else {
        panic!("BEIR layout expected")
    };
    assert_eq!(b.name, "tiny-beir");
    assert_eq!(b.split, "test");
    assert_eq!(b.queries.len(), 3);
    assert_eq!(b.missing_docs, 1);
    assert_eq!(b.unknown_queries, 1);
    let enc = NgramEncoder::new(3, 256).unwrap();
    let report = run_evaluation(
        &ds,
        EmbeddingSource::Model(&enc),
        None,
        &EvalConfig::default(),
    )
    .unwrap();
    let Report::Beir(r) = &report else { panic!() };
    // q1 and q2 find their document first; q4 finds doc 3 first but misses "missing":
    // nDCG = 1 / (1 + 1/log2(3)), recall@100 = 1/2.
    let q4 = 1.0 / (1.0 + 1.0 / 3f64.log2());
    assert!(
        (r.metrics.ndcg_at_10 - (2.0 + q4) / 3.0).abs() < 1e-9,
        "{}",
        r.metrics.ndcg_at_10
    );
    assert!((r.metrics.recall_at_100 - 2.5 / 3.0).abs() < 1e-9);
    assert!((r.metrics.mrr_at_10 - 1.0).abs() < 1e-9);
    assert!(report.heatmap_svg().is_none());
    assert!(report.to_markdown().contains("nDCG@10"));
    let json: serde_json::Value = serde_json::from_str(&report.to_json().unwrap()).unwrap();
    assert_eq!(json["kind"], "beir");
    // Texts: title + text with the passage prefix; context mode is refused.
    let texts = ds.texts(&Prefixes::e5(), CandidateMode::Sentence).unwrap();
    assert_eq!(
        texts.candidates[0],
        "passage: Rhine The Rhine rises in the Swiss Alps."
    );
    assert_eq!(
        texts.candidates[1],
        "passage: Honeybees perform a waggle dance."
    );
    assert!(ds.texts(&Prefixes::e5(), CandidateMode::Context).is_err());
    // Malformed lines name the file and the line.
    write(
        &dir.join("qrels/test.tsv"),
        "query-id\tcorpus-id\tscore\nq1\td1\n",
    );
    let msg = multiret_eval::load_dataset(&spec, None)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("test.tsv:2") && msg.contains("columns"),
        "{msg}"
    );
    write(&dir.join("qrels/test.tsv"), "q1\td1\tx\n");
    let msg = multiret_eval::load_dataset(&spec, None)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("test.tsv:1") && msg.contains("not a number"),
        "{msg}"
    );
    write(&dir.join("qrels/test.tsv"), "q1 Q0 d1 1\n");
    assert!(
        multiret_eval::load_dataset(&spec, None).is_ok(),
        "TREC qrels"
    );
    let msg = multiret_eval::load_dataset(&spec, Some("dev"))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("dev.tsv"), "{msg}");
    write(&dir.join("queries.jsonl"), "{\"_id\": \"q1\"}\n");
    let msg = multiret_eval::load_dataset(&spec, None)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("queries.jsonl:1") && msg.contains("text"),
        "{msg}"
    );
}

#[test]
fn dataset_resolution() {
    let tmp = common::TempDir::new("resolve");
    use multiret_eval::DatasetSpec;
    assert_eq!(
        multiret_eval::resolve_dataset(None, tmp.path()).unwrap(),
        DatasetSpec::Sample
    );
    assert_eq!(
        multiret_eval::resolve_dataset(Some("sample"), tmp.path()).unwrap(),
        DatasetSpec::Sample
    );
    let msg = multiret_eval::resolve_dataset(Some("xquad-r"), tmp.path())
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("xquad-r") && msg.contains("MULTIRET_DATA"),
        "{msg}"
    );
    std::fs::create_dir_all(tmp.path().join("mine")).unwrap();
    let spec = multiret_eval::resolve_dataset(Some("mine"), tmp.path()).unwrap();
    assert_eq!(
        spec,
        DatasetSpec::Dir {
            path: tmp.path().join("mine"),
            name: "mine".into()
        }
    );
    // An empty directory is neither layout: a clear error.
    let msg = multiret_eval::load_dataset(&spec, None)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("no LANG.json file"), "{msg}");
    // A directory with a malformed file: the error names it.
    write(
        &tmp.path().join("mine/en.json"),
        "{\"data\": [{\"paragraphs\": 3}]}",
    );
    let msg = multiret_eval::load_dataset(&spec, None)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("en.json") && msg.contains("malformed JSON"),
        "{msg}"
    );
    write(&tmp.path().join("mine/en.json"), "{\"data\": []}");
    let msg = multiret_eval::load_dataset(&spec, None)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("nothing to evaluate"), "{msg}");
}
