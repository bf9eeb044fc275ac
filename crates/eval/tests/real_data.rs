//! XQuAD-R and MLQA-R from `MULTIRET_DATA` (default: the repository's data/): counts, skips and their
//! reasons, and a full evaluation with the n-gram baseline. Fails, with a message naming the
//! directory, when the data is missing.

mod common;

use std::collections::BTreeMap;

use multiret_eval::{
    load_lareqa_dir, run_evaluation, Dataset, EmbeddingSource, EvalConfig, NgramEncoder, Report,
    SkipReason,
};

fn per_lang<T: Copy>(
    ds: &multiret_eval::LareqaDataset,
    f: impl Fn(&multiret_eval::lareqa::LangData) -> T,
) -> BTreeMap<String, T> {
    ds.langs.iter().map(|l| (l.lang.clone(), f(l))).collect()
}

fn map<T: Copy>(pairs: &[(&str, T)]) -> BTreeMap<String, T> {
    pairs.iter().map(|&(k, v)| (k.to_string(), v)).collect()
}

#[test]
fn xquad_r_counts() {
    let ds = load_lareqa_dir(&common::data_dir().join("xquad-r")).unwrap();
    assert_eq!(ds.name, "xquad-r");
    assert_eq!(
        ds.lang_codes(),
        ["ar", "de", "el", "en", "es", "hi", "ru", "th", "tr", "vi", "zh"]
    );
    assert!(ds.langs.iter().all(|l| l.questions_read == 1190));
    assert_eq!(ds.num_candidates(), 13_014);
    assert_eq!(
        per_lang(&ds, |l| l.candidates.len()),
        map(&[
            ("ar", 1222),
            ("de", 1276),
            ("el", 1234),
            ("en", 1180),
            ("es", 1215),
            ("hi", 1244),
            ("ru", 1219),
            ("th", 852),
            ("tr", 1167),
            ("vi", 1209),
            ("zh", 1196)
        ])
    );
    // Every skip: the answer runs past the end of its sentence.
    assert_eq!(
        per_lang(&ds, |l| l.skipped_total()),
        map(&[
            ("ar", 10),
            ("de", 8),
            ("el", 13),
            ("en", 3),
            ("es", 12),
            ("hi", 11),
            ("ru", 2),
            ("th", 9),
            ("tr", 20),
            ("vi", 13),
            ("zh", 11)
        ])
    );
    assert_eq!(ds.num_skipped(), 112);
    assert_eq!(
        ds.skipped_by_reason(),
        [(SkipReason::AnswerCrossesSentenceEnd, 112)]
            .into_iter()
            .collect()
    );
    assert_eq!(ds.num_questions(), 13_090 - 112);
    // tr.json: two sentences of one paragraph whose `sentences` entries differ from the
    // context slice (mojibake in the context shifts the offsets); no answer text mismatch.
    assert_eq!(per_lang(&ds, |l| l.sentence_text_mismatches)["tr"], 2);
    assert_eq!(
        ds.langs
            .iter()
            .map(|l| l.sentence_text_mismatches)
            .sum::<usize>(),
        2
    );
    assert_eq!(
        ds.langs
            .iter()
            .map(|l| l.answer_text_mismatches)
            .sum::<usize>(),
        0
    );
}

#[test]
fn mlqa_r_counts() {
    let ds = load_lareqa_dir(&common::data_dir().join("mlqa-r")).unwrap();
    assert_eq!(ds.lang_codes(), ["ar", "de", "en", "es", "hi", "vi", "zh"]);
    assert_eq!(ds.num_candidates(), 20_534);
    assert_eq!(
        per_lang(&ds, |l| l.questions_read),
        map(&[
            ("ar", 517),
            ("de", 512),
            ("en", 1148),
            ("es", 500),
            ("hi", 507),
            ("vi", 511),
            ("zh", 504)
        ])
    );
    assert_eq!(
        per_lang(&ds, |l| l.skipped_total()),
        map(&[
            ("ar", 3),
            ("de", 8),
            ("en", 2),
            ("es", 5),
            ("hi", 3),
            ("vi", 1),
            ("zh", 3)
        ])
    );
    assert_eq!(
        ds.skipped_by_reason(),
        [(SkipReason::AnswerCrossesSentenceEnd, 25)]
            .into_iter()
            .collect()
    );
}

#[test]
fn mlqa_r_ngram_evaluation() {
    let ds = Dataset::Lareqa(load_lareqa_dir(&common::data_dir().join("mlqa-r")).unwrap());
    // Smaller in debug builds, where the kernels' GEMM is not optimised.
    let dim = if cfg!(debug_assertions) { 48 } else { 256 };
    let enc = NgramEncoder::new(3, dim).unwrap();
    let report = run_evaluation(
        &ds,
        EmbeddingSource::Model(&enc),
        None,
        &EvalConfig::default(),
    )
    .unwrap();
    let Report::Lareqa(r) = &report else { panic!() };
    let s = &r.settings;
    assert_eq!(s.mono.map_per_lang.len(), 7);
    assert_eq!(s.cross.pairs, 42);
    assert_eq!(s.cross.map_per_pair.len(), 42);
    // Question ids exist in 2-4 languages: most Cr. queries have no version in the other one.
    assert!(s.cross.skipped > 10_000, "{}", s.cross.skipped);
    let total: usize = s.cross.queries_per_pair.values().sum::<usize>() + s.cross.skipped;
    assert_eq!(total, r.counts.questions * 6);
    assert!(
        (2.0..=4.0).contains(&s.multi.relevant_per_query),
        "{}",
        s.multi.relevant_per_query
    );
    assert_eq!(s.multi.pool, 20_534);
    assert!(s.mono.map_macro > s.cross.map_macro);
    eprintln!("{}", report.summary());
}
