//! Tests on the real MLQA-R and XQuAD-R data (located through `MULTIRET_DATA`, else the
//! repository's `data/`). They fail, not skip, when the data is absent.

mod common;

use std::collections::HashSet;

use common::{check_batch, check_without_replacement, data_dir};
use multiret_sampler::{
    load_corpus, load_train, BatchKind, LoadOptions, PairRef, PassageUnit, Sampler, SamplerConfig,
    SamplerKind,
};

#[test]
fn mlqa_r_loads_with_groups_by_question_id() {
    let c = load_corpus("mlqa-r", &data_dir(), &LoadOptions::default()).unwrap();
    assert_eq!(c.name(), "mlqa-r");
    assert_eq!(c.languages(), ["ar", "de", "en", "es", "hi", "vi", "zh"]);
    // 4,199 questions; 25 whose answer runs past its sentence are skipped; they leave 1,147
    // question ids in 2-4 languages (3 ids in one language only).
    assert_eq!(c.stats().read, 4199);
    assert_eq!(c.stats().skipped_total(), 25);
    assert!(c
        .stats()
        .skipped
        .keys()
        .all(|k| k.ends_with("answer runs past the end of its sentence")));
    assert_eq!(c.len(), 1147);
    assert_eq!(
        c.groups_per_language(),
        vec![514, 504, 1146, 495, 504, 510, 501]
    );
    assert_eq!(c.single_language_groups(), 3);
    let ids: HashSet<&str> = (0..c.len()).map(|g| c.group_id(g)).collect();
    assert_eq!(ids.len(), c.len());
    assert!((0..c.len()).all(|g| c.group_langs(g).len() <= 4));

    // A known question, in German and English.
    let g = (0..c.len())
        .find(|&g| c.group_id(g) == "b6fc947411e98316fd0790477c4dc3bd97f4df4c")
        .unwrap();
    let langs: Vec<&str> = c.group_langs(g).iter().map(|&l| c.language(l)).collect();
    assert_eq!(langs, ["de", "en", "es", "vi"]);
    let de = c.lang_id("de").unwrap();
    let en = c.lang_id("en").unwrap();
    let t = c
        .texts(&PairRef {
            group: g,
            query_lang: de,
            passage_lang: en,
        })
        .unwrap();
    assert_eq!(
        t.query,
        "Was war die Position der Berliner Gerichts gegenüber Großbritannien und Russland?"
    );
    assert!(t
        .positive
        .starts_with("However, owing to the very anti-British and pro-Russian"));
    assert!(t.positive.ends_with("raised the most criticism."));
}

#[test]
fn mlqa_r_samples_valid_batches_of_100() {
    let corpora = vec![load_corpus("mlqa-r", &data_dir(), &LoadOptions::default()).unwrap()];
    for kind in [
        SamplerKind::Mono,
        SamplerKind::Cross,
        SamplerKind::Mixed,
        SamplerKind::Hybrid { alpha: 0.5 },
    ] {
        let mut s = Sampler::new(&corpora, SamplerConfig::new(kind, 100, 7)).unwrap();
        // Every language has at least 100 groups.
        assert_eq!(s.mono_languages(0).len(), 7);
        assert_eq!(s.cross_groups(0), 1144);
        let mut batches = Vec::new();
        let mut mono_langs = HashSet::new();
        for _ in 0..300 {
            let b = s.next_batch();
            check_batch(&b, &corpora, &s).unwrap();
            if b.kind == BatchKind::Mono {
                mono_langs.insert(b.pairs[0].query_lang);
            }
            batches.push(b);
        }
        check_without_replacement(&batches).unwrap();
        if kind != SamplerKind::Cross && kind != SamplerKind::Mixed {
            assert_eq!(mono_langs.len(), 7, "{kind:?}");
        }
        // Every pair of the first batches resolves to non-empty texts.
        for b in &batches[..5] {
            for p in &b.pairs {
                let t = corpora[0].texts(p).unwrap();
                assert!(!t.query.is_empty() && !t.positive.is_empty());
            }
            let line = serde_json::to_string(&b.record(&corpora).unwrap()).unwrap();
            assert!(
                line.starts_with(&format!("{{\"batch\":{},\"kind\":\"", b.index)),
                "{line}"
            );
        }
    }
}

#[test]
fn xquad_r_and_mixing_with_mlqa_r() {
    let data = data_dir();
    let opts = LoadOptions {
        unit: PassageUnit::SentenceWithParagraph,
        ..Default::default()
    };
    let (corpora, weights) = load_train("mlqa-r,xquad-r", &data, &opts).unwrap();
    assert_eq!(weights, None);
    let x = &corpora[1];
    assert_eq!(x.languages().len(), 11);
    // 1190 ids per language; one id is lost in every language.
    assert_eq!(x.len(), 1189);
    let t = x
        .texts(&PairRef {
            group: 0,
            query_lang: 0,
            passage_lang: 1,
        })
        .unwrap();
    assert!(t.positive_context.unwrap().contains(t.positive.as_ref()));
    let mut s = Sampler::new(
        &corpora,
        SamplerConfig::new(SamplerKind::Hybrid { alpha: 0.5 }, 64, 3),
    )
    .unwrap();
    let mut per_corpus = [0usize; 2];
    for _ in 0..400 {
        let b = s.next_batch();
        check_batch(&b, &corpora, &s).unwrap();
        per_corpus[b.corpus] += 1;
    }
    assert!(per_corpus[0] > 100 && per_corpus[1] > 100, "{per_corpus:?}");
}

/// MLQA-R: the validation split holds out whole paragraphs (no held-out group shares a topic
/// with a training one), and both sides keep their topics.
#[test]
fn validation_split_holds_out_whole_paragraphs() {
    let c = load_corpus("mlqa-r", &data_dir(), &LoadOptions::default()).unwrap();
    let topics: HashSet<u64> = (0..c.len()).map(|g| c.topic(g).unwrap()).collect();
    assert!(
        topics.len() < c.len(),
        "some paragraphs have several questions"
    );
    let (train, val) = multiret_sampler::split_validation(vec![c], 100, 7).unwrap();
    let (train, val) = (&train[0], &val[0]);
    assert!(val.len() >= 100 && train.len() + val.len() == 1147);
    let val_topics: HashSet<u64> = (0..val.len()).map(|g| val.topic(g).unwrap()).collect();
    assert!((0..train.len()).all(|g| !val_topics.contains(&train.topic(g).unwrap())));
}
