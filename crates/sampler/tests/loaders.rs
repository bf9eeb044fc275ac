//! Loader tests on tiny corpora written to temp dirs.

mod common;

use std::path::Path;

use common::temp_dir;
use multiret_sampler::{
    load_corpus, load_jsonl, load_lareqa, load_mmarco, load_train, LoadOptions, MmarcoOptions,
    PairRef, PassageUnit, SamplerError,
};
use serde_json::json;

fn write(path: &Path, text: &str) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(path, text).unwrap();
}

/// Char offsets of `sentences` joined by single spaces, and the context.
fn paragraph(sentences: &[&str]) -> (String, Vec<[usize; 2]>) {
    let mut context = String::new();
    let mut breaks = Vec::new();
    for (i, s) in sentences.iter().enumerate() {
        if i > 0 {
            context.push(' ');
        }
        let start = context.chars().count();
        context.push_str(s);
        breaks.push([start, context.chars().count()]);
    }
    (context, breaks)
}

/// A question whose answer is `answer` at char position `start`.
fn qa(id: &str, question: &str, answer: &str, start: usize) -> serde_json::Value {
    json!({"id": id, "question": question, "answers": [{"text": answer, "answer_start": start}]})
}

fn squad(paragraphs: Vec<serde_json::Value>) -> String {
    json!({"version": "1.1", "data": [{"title": "t", "paragraphs": paragraphs}]}).to_string()
}

fn lareqa_fixture() -> std::path::PathBuf {
    let dir = temp_dir("lareqa");
    // Non-ASCII text before the answers checks that offsets count chars, not bytes.
    let en_sents = [
        "Ünïcödé façade héré.",
        "The cat sat on the mat.",
        "Dogs bark loudly.",
    ];
    let (ctx, breaks) = paragraph(&en_sents);
    let cat_chars = ctx[..ctx.find("cat").unwrap()].chars().count();
    let dogs_chars = ctx[..ctx.find("Dogs").unwrap()].chars().count();
    let mat_chars = ctx[..ctx.find("mat.").unwrap()].chars().count();
    let en = squad(vec![json!({
        "context": ctx,
        "sentence_breaks": breaks,
        "sentences": en_sents,
        "qas": [
            qa("q1", "Who sat?", "cat", cat_chars),
            // Runs past the end of sentence 2 into sentence 3.
            qa("q2", "Where?", "mat. Dogs", mat_chars),
            qa("q3", "Who barks?", "Dogs", dogs_chars),
            {"id": "q4", "question": "No answer?", "answers": []},
            // Starts in the space between sentences: outside every sentence.
            qa("q5", "Gap?", " ", breaks[0][1]),
        ],
    })]);
    write(&dir.join("en.json"), &en);
    let de_sents = ["Die Katze saß.", "Hunde bellen."];
    let (ctx, breaks) = paragraph(&de_sents);
    let katze = ctx[..ctx.find("Katze").unwrap()].chars().count();
    let de = squad(vec![json!({
        "context": ctx,
        "sentence_breaks": breaks,
        "sentences": de_sents,
        "qas": [qa("q1", "Wer saß?", "Katze", katze), qa("q9", "Nur deutsch?", "Hunde", 15)],
    })]);
    write(&dir.join("de.json"), &de);
    write(&dir.join("LICENSE"), "not json");
    dir
}

#[test]
fn lareqa_groups_by_id_and_finds_gold_sentences() {
    let dir = lareqa_fixture();
    let c = load_lareqa(&dir, PassageUnit::Sentence).unwrap();
    assert_eq!(c.languages(), ["de", "en"]);
    let ids: Vec<&str> = (0..c.len()).map(|g| c.group_id(g)).collect();
    assert_eq!(ids, ["q1", "q9", "q3"]);
    assert_eq!(c.group_langs(0), [0, 1]);
    assert_eq!(c.group_langs(1), [0]);
    assert_eq!(c.group_langs(2), [1]);
    assert_eq!(c.single_language_groups(), 2);
    let t = c
        .texts(&PairRef {
            group: 0,
            query_lang: 0,
            passage_lang: 1,
        })
        .unwrap();
    assert_eq!(t.query, "Wer saß?");
    assert_eq!(t.positive, "The cat sat on the mat.");
    assert_eq!(t.positive_context, None);
    assert!(t.negatives.is_empty());
    let t = c
        .texts(&PairRef {
            group: 2,
            query_lang: 1,
            passage_lang: 1,
        })
        .unwrap();
    assert_eq!(t.positive, "Dogs bark loudly.");
    let s = c.stats();
    assert_eq!(s.read, 7);
    assert_eq!(s.skipped["en: answer runs past the end of its sentence"], 1);
    assert_eq!(s.skipped["en: question has no answer"], 1);
    assert_eq!(s.skipped["en: answer starts outside every sentence"], 1);
    assert_eq!(s.skipped_total(), 3);
    assert_eq!(c.groups_per_language(), vec![2, 2]);
}

#[test]
fn lareqa_passage_units() {
    let dir = lareqa_fixture();
    let pair = PairRef {
        group: 0,
        query_lang: 1,
        passage_lang: 1,
    };
    let para = load_lareqa(&dir, PassageUnit::Paragraph).unwrap();
    let t = para.texts(&pair).unwrap();
    assert_eq!(
        t.positive,
        "Ünïcödé façade héré. The cat sat on the mat. Dogs bark loudly."
    );
    let both = load_lareqa(&dir, PassageUnit::SentenceWithParagraph).unwrap();
    let t = both.texts(&pair).unwrap();
    assert_eq!(t.positive, "The cat sat on the mat.");
    assert_eq!(
        t.positive_context.as_deref(),
        Some("Ünïcödé façade héré. The cat sat on the mat. Dogs bark loudly.")
    );
}

#[test]
fn lareqa_malformed_json_names_the_file() {
    let dir = temp_dir("lareqa-bad");
    write(&dir.join("en.json"), "{\"data\": [");
    let err = load_lareqa(&dir, PassageUnit::Sentence).unwrap_err();
    assert!(matches!(err, SamplerError::Json { .. }), "{err}");
    assert!(err.to_string().contains("en.json"), "{err}");
    // Valid JSON, wrong shape.
    write(
        &dir.join("en.json"),
        "{\"data\": [{\"paragraphs\": [{\"context\": \"x\"}]}]}",
    );
    let err = load_lareqa(&dir, PassageUnit::Sentence).unwrap_err();
    assert!(err.to_string().contains("en.json"), "{err}");
    assert!(err.to_string().contains("qas"), "{err}");
}

#[test]
fn lareqa_bad_offsets_duplicates_and_empty_are_errors() {
    let dir = temp_dir("lareqa-offsets");
    let bad = squad(vec![json!({
        "context": "short",
        "sentence_breaks": [[0, 99]],
        "qas": [qa("a", "q", "s", 0)],
    })]);
    write(&dir.join("fr.json"), &bad);
    let err = load_lareqa(&dir, PassageUnit::Sentence).unwrap_err();
    assert!(err.to_string().contains("fr.json"), "{err}");
    assert!(err.to_string().contains("outside its context"), "{err}");

    let dup = squad(vec![json!({
        "context": "A b.",
        "sentence_breaks": [[0, 4]],
        "qas": [qa("a", "q", "A", 0), qa("a", "q2", "b", 2)],
    })]);
    write(&dir.join("fr.json"), &dup);
    let err = load_lareqa(&dir, PassageUnit::Sentence).unwrap_err();
    assert!(err.to_string().contains("appears twice"), "{err}");

    let none = squad(vec![json!({
        "context": "A b.",
        "sentence_breaks": [[0, 2]],
        "qas": [qa("a", "q", "b.", 2)],
    })]);
    write(&dir.join("fr.json"), &none);
    let err = load_lareqa(&dir, PassageUnit::Sentence).unwrap_err();
    assert!(matches!(err, SamplerError::EmptyCorpus { .. }), "{err}");
    assert!(err.to_string().contains("outside every sentence"), "{err}");

    let empty = temp_dir("lareqa-empty");
    let err = load_lareqa(&empty, PassageUnit::Sentence).unwrap_err();
    assert!(err.to_string().contains("no LANG.json"), "{err}");
}

#[test]
fn jsonl_loads_and_resolves_cross_language_texts() {
    let dir = temp_dir("jsonl");
    let path = dir.join("train.jsonl");
    let lines = [
        json!({"group": "a", "lang": "en", "query": "q-a-en", "positive": "p-a-en", "negatives": ["n1-en", "n2-en"]}),
        json!({"group": "a", "lang": "de", "query": "q-a-de", "positive": "p-a-de"}),
        json!(null),
        json!({"group": 7, "lang": "en", "query": "q-7", "positive": "p-7", "extra": 1}),
        json!({"group": 8, "lang": "en", "query": "", "positive": "p-8"}),
    ];
    let mut text = String::new();
    for l in &lines {
        if l.is_null() {
            text.push_str("   \n");
        } else {
            text.push_str(&l.to_string());
            text.push('\n');
        }
    }
    write(&path, &text);
    let c = load_jsonl(&path).unwrap();
    assert_eq!(c.name(), "train");
    assert_eq!(c.len(), 2);
    assert_eq!(c.group_id(1), "7");
    assert_eq!(c.languages(), ["de", "en"]);
    let t = c
        .texts(&PairRef {
            group: 0,
            query_lang: 0,
            passage_lang: 1,
        })
        .unwrap();
    assert_eq!(t.query, "q-a-de");
    assert_eq!(t.positive, "p-a-en");
    assert_eq!(t.negatives, vec!["n1-en", "n2-en"]);
    let t = c
        .texts(&PairRef {
            group: 0,
            query_lang: 1,
            passage_lang: 0,
        })
        .unwrap();
    assert_eq!(t.query, "q-a-en");
    assert!(t.negatives.is_empty());
    assert_eq!(c.stats().read, 4);
    assert_eq!(c.stats().skipped["empty query or positive"], 1);
}

#[test]
fn jsonl_bad_lines_name_file_and_line() {
    let dir = temp_dir("jsonl-bad");
    let path = dir.join("bad.jsonl");
    let good = json!({"group": "a", "lang": "en", "query": "q", "positive": "p"}).to_string();
    write(&path, &format!("{good}\n\n{{not json\n"));
    let err = load_jsonl(&path).unwrap_err();
    assert!(
        matches!(err, SamplerError::BadLine { line: 3, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("bad.jsonl:3"), "{err}");

    write(
        &path,
        &format!("{good}\n{{\"group\": \"b\", \"lang\": \"en\", \"query\": \"q\"}}\n"),
    );
    let err = load_jsonl(&path).unwrap_err();
    assert!(err.to_string().contains("bad.jsonl:2"), "{err}");
    assert!(err.to_string().contains("positive"), "{err}");

    write(&path, &format!("{good}\n{good}\n"));
    let err = load_jsonl(&path).unwrap_err();
    assert!(err.to_string().contains("bad.jsonl:2"), "{err}");
    assert!(err.to_string().contains("first on line 1"), "{err}");

    let bad_group = json!({"group": [1], "lang": "en", "query": "q", "positive": "p"});
    write(&path, &format!("{bad_group}\n"));
    let err = load_jsonl(&path).unwrap_err();
    assert!(err.to_string().contains("bad.jsonl:1"), "{err}");

    write(&path, "\n\n");
    let err = load_jsonl(&path).unwrap_err();
    assert!(matches!(err, SamplerError::EmptyCorpus { .. }), "{err}");

    let err = load_jsonl(&dir.join("missing.jsonl")).unwrap_err();
    assert!(matches!(err, SamplerError::Io { .. }), "{err}");
    assert!(err.to_string().contains("missing.jsonl"), "{err}");
}

fn mmarco_fixture() -> std::path::PathBuf {
    let dir = temp_dir("mmarco");
    write(
        &dir.join("triples.tsv"),
        "1\t10\t11\n1\t10\t12\n1\t10\t13\n2\t20\t21\n3\t30\t31\n4\t40\n",
    );
    write(
        &dir.join("en/queries.tsv"),
        "1\tquery one\n2\tquery two\n3\tquery three\n4\tq4\n99\tunused\n",
    );
    write(
        &dir.join("en/collection.tsv"),
        "10\tpassage ten\n11\tneg eleven\n12\tneg twelve\n13\tneg 13\n20\tpassage twenty\n21\tneg 21\n30\tp30\n31\tn31\n40\tp40\n5\tunused\n",
    );
    // German: query 3 is missing, negative 11 is missing; CRLF line ends.
    write(
        &dir.join("de/queries.tsv"),
        "2\tAnfrage zwei\r\n1\tAnfrage eins\r\n4\tq4 de\r\n",
    );
    write(
        &dir.join("de/collection.tsv"),
        "12\tnegativ zwölf\r\n10\tPassage zehn\r\n20\tPassage zwanzig\r\n30\tp30 de\r\n40\tp40 de\r\n",
    );
    // Not a language dir (no collection).
    write(&dir.join("docs/queries.tsv"), "x");
    dir
}

#[test]
fn mmarco_streams_texts_from_disk() {
    let dir = mmarco_fixture();
    let opts = MmarcoOptions {
        max_negatives: 2,
        ..Default::default()
    };
    let c = load_mmarco(&dir, &opts).unwrap();
    assert_eq!(c.languages(), ["de", "en"]);
    let ids: Vec<&str> = (0..c.len()).map(|g| c.group_id(g)).collect();
    assert_eq!(ids, ["1", "2", "3", "4"]);
    assert_eq!(c.group_langs(0), [0, 1]);
    assert_eq!(c.group_langs(2), [1]); // query 3 missing in de
    let t = c
        .texts(&PairRef {
            group: 0,
            query_lang: 0,
            passage_lang: 1,
        })
        .unwrap();
    assert_eq!(t.query, "Anfrage eins");
    assert_eq!(t.positive, "passage ten");
    assert_eq!(t.negatives, vec!["neg eleven", "neg twelve"]);
    let t = c
        .texts(&PairRef {
            group: 0,
            query_lang: 1,
            passage_lang: 0,
        })
        .unwrap();
    assert_eq!(t.query, "query one");
    assert_eq!(t.positive, "Passage zehn");
    assert_eq!(t.negatives, vec!["negativ zwölf"]); // 11 missing in de
    let t = c
        .texts(&PairRef {
            group: 3,
            query_lang: 0,
            passage_lang: 0,
        })
        .unwrap();
    assert_eq!(t.query, "q4 de");
    assert!(t.negatives.is_empty());
    assert_eq!(c.stats().read, 6);

    let one = load_mmarco(
        &dir,
        &MmarcoOptions {
            max_groups: Some(2),
            languages: Some(vec!["en".into()]),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(one.len(), 2);
    assert_eq!(one.languages(), ["en"]);
    let t = one
        .texts(&PairRef {
            group: 0,
            query_lang: 0,
            passage_lang: 0,
        })
        .unwrap();
    assert_eq!(t.negatives, vec!["neg eleven"]); // default max_negatives = 1
    assert_eq!(one.stats().skipped["triple beyond max_groups"], 2);
}

#[test]
fn mmarco_bad_lines_name_file_and_line() {
    let dir = mmarco_fixture();
    let opts = MmarcoOptions::default();
    write(&dir.join("triples.tsv"), "1\t10\t11\n1\t10\t11\t12\n");
    let err = load_mmarco(&dir, &opts).unwrap_err();
    assert!(err.to_string().contains("triples.tsv:2"), "{err}");
    assert!(err.to_string().contains("4 columns"), "{err}");

    write(&dir.join("triples.tsv"), "1\tten\t11\n");
    let err = load_mmarco(&dir, &opts).unwrap_err();
    assert!(err.to_string().contains("triples.tsv:1"), "{err}");
    assert!(err.to_string().contains("positive pid"), "{err}");

    write(&dir.join("triples.tsv"), "1\t10\t11\n");
    write(&dir.join("en/collection.tsv"), "10\tok\n11 no tab\n");
    let err = load_mmarco(&dir, &opts).unwrap_err();
    assert!(err.to_string().contains("collection.tsv:2"), "{err}");

    write(&dir.join("en/collection.tsv"), "10\tok\n10\tagain\n");
    let err = load_mmarco(&dir, &opts).unwrap_err();
    assert!(err.to_string().contains("collection.tsv:2"), "{err}");
    assert!(err.to_string().contains("twice"), "{err}");

    write(&dir.join("en/collection.tsv"), "5\tunused\n");
    write(&dir.join("de/collection.tsv"), "5\tunused\n");
    let err = load_mmarco(&dir, &opts).unwrap_err();
    assert!(matches!(err, SamplerError::EmptyCorpus { .. }), "{err}");

    let err = load_mmarco(
        &dir,
        &MmarcoOptions {
            languages: Some(vec!["fr".into()]),
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("fr"), "{err}");
    let empty = temp_dir("mmarco-empty");
    write(&empty.join("triples.tsv"), "1\t2\n");
    let err = load_mmarco(&empty, &opts).unwrap_err();
    assert!(err.to_string().contains("no language directory"), "{err}");
}

#[test]
fn specs_dispatch_on_what_the_path_is() {
    let lareqa = lareqa_fixture();
    let mmarco = mmarco_fixture();
    let jsonl_dir = temp_dir("spec-jsonl");
    let jsonl = jsonl_dir.join("x.jsonl");
    write(
        &jsonl,
        &json!({"group": "a", "lang": "en", "query": "q", "positive": "p"}).to_string(),
    );
    let data = temp_dir("spec-data");
    let opts = LoadOptions::default();

    let c = load_corpus(lareqa.to_str().unwrap(), &data, &opts).unwrap();
    assert_eq!(c.languages(), ["de", "en"]);
    assert_eq!(c.name(), lareqa.to_str().unwrap());
    let c = load_corpus(mmarco.to_str().unwrap(), &data, &opts).unwrap();
    assert_eq!(c.len(), 4);
    let c = load_corpus(jsonl.to_str().unwrap(), &data, &opts).unwrap();
    assert_eq!(c.len(), 1);

    let err = load_corpus("mlqa-r", &data, &opts).unwrap_err();
    assert!(err.to_string().contains("MULTIRET_DATA"), "{err}");
    let err = load_corpus("/definitely/not/here", &data, &opts).unwrap_err();
    assert!(err.to_string().contains("no such file"), "{err}");
    let err = load_corpus(lareqa.join("en.json").to_str().unwrap(), &data, &opts).unwrap_err();
    assert!(err.to_string().contains("single .json"), "{err}");
    let err = load_corpus(data.to_str().unwrap(), &data, &opts).unwrap_err();
    assert!(err.to_string().contains("neither"), "{err}");

    // Named datasets resolve inside the data dir.
    std::fs::create_dir_all(data.join("xquad-r")).unwrap();
    for f in ["en.json", "de.json"] {
        std::fs::copy(lareqa.join(f), data.join("xquad-r").join(f)).unwrap();
    }
    let list = format!("xquad-r:3,{}:1", jsonl.display());
    let (corpora, weights) = load_train(&list, &data, &opts).unwrap();
    assert_eq!(corpora.len(), 2);
    assert_eq!(corpora[0].name(), "xquad-r");
    assert_eq!(weights, Some(vec![3.0, 1.0]));
    let (_, weights) = load_train(&format!("xquad-r,{}", jsonl.display()), &data, &opts).unwrap();
    assert_eq!(weights, None);
}

#[test]
fn lareqa_context_negatives_are_the_other_sentences_of_the_paragraph() {
    use multiret_sampler::load_lareqa_with;
    let dir = lareqa_fixture();
    let c = load_lareqa_with(&dir, PassageUnit::Sentence, true).unwrap();
    // q1 de -> en: the English paragraph's other sentences, and the German ones apart.
    let t = c
        .texts(&PairRef {
            group: 0,
            query_lang: 0,
            passage_lang: 1,
        })
        .unwrap();
    assert_eq!(t.positive, "The cat sat on the mat.");
    assert_eq!(t.negatives, ["Ünïcödé façade héré.", "Dogs bark loudly."]);
    assert_eq!(t.query_negatives, ["Hunde bellen."]);
    // Mono pairs carry no second list.
    let t = c
        .texts(&PairRef {
            group: 0,
            query_lang: 0,
            passage_lang: 0,
        })
        .unwrap();
    assert_eq!(t.negatives, ["Hunde bellen."]);
    assert!(t.query_negatives.is_empty());
    // q1, q9 and q3 draw on the same paragraph (de and en versions of it): one topic.
    let topics: Vec<Option<u64>> = (0..c.len()).map(|g| c.topic(g)).collect();
    assert!(
        topics.iter().all(|t| t.is_some() && *t == topics[0]),
        "{topics:?}"
    );
    // Without the option: no negatives, the same topics.
    let plain = load_lareqa(&dir, PassageUnit::Sentence).unwrap();
    assert!(plain
        .texts(&PairRef {
            group: 0,
            query_lang: 0,
            passage_lang: 1,
        })
        .unwrap()
        .negatives
        .is_empty());
    assert_eq!(plain.topic(0), c.topic(0));
    // Paragraph positives have no other sentences to offer.
    let err = load_lareqa_with(&dir, PassageUnit::Paragraph, true).unwrap_err();
    assert!(err.to_string().contains("--passage sentence"), "{err}");
}

#[test]
fn lareqa_topics_separate_groups_of_other_paragraphs() {
    use multiret_sampler::load_lareqa_with;
    let dir = temp_dir("lareqa-topics");
    let (c1, b1) = paragraph(&["Alpha one.", "Alpha two."]);
    let (c2, b2) = paragraph(&["Beta one.", "Beta one.", "Beta two."]);
    let en = squad(vec![
        json!({"context": c1, "sentence_breaks": b1, "sentences": ["Alpha one.", "Alpha two."],
               "qas": [qa("a", "A?", "Alpha", 0)]}),
        json!({"context": c2, "sentence_breaks": b2,
               "sentences": ["Beta one.", "Beta one.", "Beta two."],
               "qas": [qa("b", "B?", "Beta", 0)]}),
    ]);
    write(&dir.join("en.json"), &en);
    let c = load_lareqa_with(&dir, PassageUnit::Sentence, true).unwrap();
    assert_ne!(c.topic(0), c.topic(1));
    let t = c
        .texts(&PairRef {
            group: 1,
            query_lang: 0,
            passage_lang: 0,
        })
        .unwrap();
    // The repeated gold text is never a negative.
    assert_eq!(t.negatives, ["Beta two."]);
}
