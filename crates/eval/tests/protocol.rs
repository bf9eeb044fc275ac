//! The two scoring protocols on the built-in sample: ours (the default, unchanged) and
//! XTREME-R's (dot product without normalisation, mAP@20 with its `min(R, 20)` denominator,
//! sentence + paragraph candidates), checked against a brute-force reading of XTREME-R's
//! definition (google-research/xtreme, third_party/utils_lareqa.py: rank every candidate by
//! score, walk the first k, sum hits / position, divide by min(R, k)).

mod common;

use std::collections::HashMap;

use multiret_eval::metrics::ranks_before;
use multiret_eval::{
    builtin_sample, lareqa_settings, rank_lareqa, rank_lareqa_by, run_evaluation, CandidateMode,
    Dataset, EmbeddingSource, EvalConfig, LareqaDataset, Matrix, Prefixes, Protocol, Report,
    ScoreOptions, Similarity, TextEmbedder,
};

/// Vectors with four entries of ±0.5 (dim 16) picked by a hash of the text's first word after
/// the prefix (so questions and candidates of one article share many), scaled by 1, 2 or 4 by
/// another hash of the whole text: norms differ, so cosine and dot product rank differently,
/// and every dot product is an exact multiple of 1/4, so a brute force sees exactly the
/// scores the GEMM produces (ties included).
struct ScaledEncoder;

fn hash(text: &str, salt: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ salt;
    for b in text.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn scaled_embedding(text: &str) -> Vec<f32> {
    let topic = text.split_whitespace().nth(1).unwrap_or("");
    let mut x = hash(topic, 7);
    let mut v = [0.0f32; 16];
    let mut placed = 0;
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
    let scale = [1.0f32, 2.0, 4.0][(hash(text, 11) % 3) as usize];
    v.iter().map(|e| e * scale).collect()
}

impl TextEmbedder for ScaledEncoder {
    fn name(&self) -> String {
        "scaled-test".into()
    }
    fn dim(&self) -> usize {
        16
    }
    fn encode(
        &self,
        texts: &[String],
        _: &dyn Fn(usize),
    ) -> Result<Vec<f32>, multiret_eval::BoxError> {
        Ok(texts.iter().flat_map(|t| scaled_embedding(t)).collect())
    }
}

fn embeddings(ds: &Dataset, mode: CandidateMode) -> (Matrix, Matrix) {
    let texts = ds.texts(&Prefixes::e5(), mode).unwrap();
    let m = |t: &[String]| {
        Matrix::new(
            t.len(),
            16,
            t.iter().flat_map(|s| scaled_embedding(s)).collect(),
        )
        .unwrap()
    };
    (m(&texts.queries), m(&texts.candidates))
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// XTREME-R's AP@k of one ranked list (candidate indices, best first) against `targets`.
fn xtreme_ap_at_k(targets: &[usize], ranked: &[usize], k: usize) -> f64 {
    let (mut score, mut hits) = (0.0, 0.0);
    for (i, p) in ranked.iter().take(k).enumerate() {
        if targets.contains(p) {
            hits += 1.0;
            score += hits / (i as f64 + 1.0);
        }
    }
    score / targets.len().min(k) as f64
}

/// Candidates of `range`, by dot product descending, ties by the lower index.
fn ranked(scores: &[f32], range: std::ops::Range<usize>) -> Vec<usize> {
    let mut idx: Vec<usize> = range.collect();
    idx.sort_by(|&a, &b| {
        if ranks_before(scores[a], a, scores[b], b) {
            std::cmp::Ordering::Less
        } else {
            std::cmp::Ordering::Greater
        }
    });
    idx
}

/// Brute force: (Mul. mAP@k over all queries, Mo. mAP@k per language).
fn brute_force(ds: &LareqaDataset, q: &Matrix, c: &Matrix, k: usize) -> (f64, Vec<f64>) {
    let mut off = vec![0];
    for l in &ds.langs {
        off.push(off.last().unwrap() + l.candidates.len());
    }
    let mut by_id: HashMap<&str, Vec<usize>> = HashMap::new();
    for (l, ld) in ds.langs.iter().enumerate() {
        for qu in &ld.questions {
            by_id.entry(&qu.id).or_default().push(off[l] + qu.gold);
        }
    }
    let (mut micro, mut n, mut qi) = (0.0, 0usize, 0usize);
    let mut mono = Vec::new();
    for (l, ld) in ds.langs.iter().enumerate() {
        let mut mono_sum = 0.0;
        for qu in &ld.questions {
            let scores: Vec<f32> = (0..c.rows).map(|j| dot(q.row(qi), c.row(j))).collect();
            micro += xtreme_ap_at_k(&by_id[qu.id.as_str()], &ranked(&scores, 0..c.rows), k);
            let gold = off[l] + qu.gold;
            mono_sum += xtreme_ap_at_k(&[gold], &ranked(&scores, off[l]..off[l + 1]), k);
            n += 1;
            qi += 1;
        }
        mono.push(mono_sum / ld.questions.len() as f64);
    }
    (micro / n as f64, mono)
}

fn xtreme_config() -> EvalConfig {
    EvalConfig {
        protocol: Protocol::XtremeR,
        candidates: Protocol::XtremeR.default_candidates(),
        threads: Some(2),
        ..EvalConfig::default()
    }
}

#[test]
fn xtreme_r_follows_its_definition() {
    let ds = builtin_sample().unwrap();
    let dataset = Dataset::Lareqa(ds.clone());
    let report = run_evaluation(
        &dataset,
        EmbeddingSource::Model(&ScaledEncoder),
        None,
        &xtreme_config(),
    )
    .unwrap();
    let Report::Lareqa(r) = &report else { panic!() };
    assert_eq!(r.protocol, Protocol::XtremeR);
    assert_eq!(r.candidates_mode, CandidateMode::SentenceContext);
    let x = r.xtreme_r.as_ref().expect("xtreme_r metrics");
    assert_eq!(x.k, 20);
    let (q, c) = embeddings(&dataset, CandidateMode::SentenceContext);
    let (micro, mono) = brute_force(&ds, &q, &c, 20);
    assert!(micro > 0.0 && micro < 1.0, "a non-trivial case: {micro}");
    assert!(mono.iter().all(|&m| m > 0.0 && m < 1.0), "{mono:?}");
    assert!(
        (x.multi.map_at_k_micro - micro).abs() < 1e-12,
        "{} vs {micro}",
        x.multi.map_at_k_micro
    );
    for (l, want) in ds.lang_codes().iter().zip(&mono) {
        let got = x.mono.map_at_k_per_lang[l];
        assert!((got - want).abs() < 1e-12, "{l}: {got} vs {want}");
    }
    assert_eq!(x.cross.map_at_k_per_pair.len(), 20);
    // Our metrics in the same report rank by the dot product too.
    let ranks = rank_lareqa_by(&ds, &q, &c, &ScoreOptions::default(), Similarity::Dot).unwrap();
    assert_eq!(r.settings, lareqa_settings(&ds, &ranks));
    // With the cut-off past the pool, XTREME-R's figure is our full-ranking micro mAP.
    let (all, _) = brute_force(&ds, &q, &c, c.rows);
    assert!((all - r.settings.multi.map_micro).abs() < 1e-12);
    // The report says so.
    let json: serde_json::Value = serde_json::from_str(&report.to_json().unwrap()).unwrap();
    assert_eq!(json["protocol"], "xtreme-r");
    assert_eq!(json["candidates_mode"], "sentence_context");
    assert_eq!(json["xtreme_r"]["k"], 20);
    assert!(json["xtreme_r"]["multi"]["map_at_k_micro"]
        .as_f64()
        .is_some());
    let md = report.to_markdown();
    assert!(
        md.contains("## XTREME-R: mAP@20") && md.contains("dot products"),
        "{md}"
    );
    assert!(report.summary().contains("mAP@20"));
}

#[test]
fn the_default_protocol_is_unchanged() {
    let ds = builtin_sample().unwrap();
    let dataset = Dataset::Lareqa(ds.clone());
    let cfg = EvalConfig {
        threads: Some(2),
        ..EvalConfig::default()
    };
    assert_eq!(cfg.protocol, Protocol::Lareqa);
    let report =
        run_evaluation(&dataset, EmbeddingSource::Model(&ScaledEncoder), None, &cfg).unwrap();
    let Report::Lareqa(r) = &report else { panic!() };
    assert_eq!(r.protocol, Protocol::Lareqa);
    assert!(r.xtreme_r.is_none());
    let (q, c) = embeddings(&dataset, CandidateMode::Sentence);
    let cosine = lareqa_settings(
        &ds,
        &rank_lareqa(&ds, &q, &c, &ScoreOptions::default()).unwrap(),
    );
    assert_eq!(r.settings, cosine);
    // The dot product ranks these unnormalised embeddings differently.
    let dot = lareqa_settings(
        &ds,
        &rank_lareqa_by(&ds, &q, &c, &ScoreOptions::default(), Similarity::Dot).unwrap(),
    );
    assert_ne!(dot.multi.map_micro, cosine.multi.map_micro);
    let json: serde_json::Value = serde_json::from_str(&report.to_json().unwrap()).unwrap();
    assert_eq!(json["protocol"], "lareqa");
    assert!(json.get("xtreme_r").is_none());
    assert!(!report.to_markdown().contains("XTREME-R"));
}

#[test]
fn sentence_context_candidates() {
    let m = CandidateMode::SentenceContext;
    assert_eq!(
        m.candidate_text("passage: ", "Ab c.", " Ab c.\nDe f.\n"),
        "passage: Ab c. Ab c.De f."
    );
    assert_eq!(m.as_str().parse::<CandidateMode>().unwrap(), m);
    assert_eq!("sentence-context".parse::<CandidateMode>().unwrap(), m);
    let ds = Dataset::Lareqa(builtin_sample().unwrap());
    let texts = ds.texts(&Prefixes::e5(), m).unwrap();
    assert!(texts.contexts.is_none());
    let Dataset::Lareqa(l) = &ds else { panic!() };
    let first = &l.langs[0];
    let want = format!(
        "passage: {}{}",
        first.candidates[0].text,
        first.contexts[first.candidates[0].paragraph].replace('\n', "")
    );
    assert_eq!(texts.candidates[0], want.trim());
}

#[test]
fn xtreme_r_refuses_beir_corpora() {
    let tmp = common::TempDir::new("protocol-beir");
    let dir = tmp.path().join("b");
    std::fs::create_dir_all(dir.join("qrels")).unwrap();
    std::fs::write(
        dir.join("corpus.jsonl"),
        "{\"_id\": \"d1\", \"text\": \"x\"}\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("queries.jsonl"),
        "{\"_id\": \"q1\", \"text\": \"x\"}\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("qrels/test.tsv"),
        "query-id\tcorpus-id\tscore\nq1\td1\t1\n",
    )
    .unwrap();
    let spec = multiret_eval::resolve_dataset(Some(dir.to_str().unwrap()), tmp.path()).unwrap();
    let ds = multiret_eval::load_dataset(&spec, None).unwrap();
    let cfg = EvalConfig {
        protocol: Protocol::XtremeR,
        ..EvalConfig::default()
    };
    let e = run_evaluation(&ds, EmbeddingSource::Model(&ScaledEncoder), None, &cfg).unwrap_err();
    assert!(e.to_string().contains("--protocol xtreme-r"), "{e}");
}
