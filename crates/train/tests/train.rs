//! The training loop on a tiny model: determinism, resume, checkpoints, validation.

mod common;

use std::path::{Path, PathBuf};

use multiret_model::{EmbedOptions, Kind, Model, Precision};
use multiret_train::checkpoint::{self, write_dir_atomic};
use multiret_train::{train, FlexTrain, SamplerKind, TrainConfig, TrainError, TrainableEncoder};

fn config(model: &Path, data: &Path, out: &Path) -> TrainConfig {
    let mut c = TrainConfig::new(model.to_str().unwrap(), data.to_str().unwrap(), out);
    c.sampler = SamplerKind::Hybrid { alpha: 0.5 };
    c.batch_size = 4;
    c.steps = 4;
    c.lr = 1e-3;
    c.warmup = Some(1);
    c.seed = 3;
    c
}

struct Fixture {
    dir: PathBuf,
    model: PathBuf,
    data: PathBuf,
}

fn fixture(tag: &str, negatives: usize) -> Fixture {
    let dir = common::temp_dir(tag);
    let model = common::tiny_model_dir(1);
    let data = common::tiny_corpus(&dir, 16, &["de", "en", "fr"], negatives);
    Fixture { dir, model, data }
}

fn weights_bytes(dir: &Path) -> Vec<u8> {
    std::fs::read(dir.join("model.safetensors")).unwrap()
}

#[test]
fn same_seed_same_losses() {
    let f = fixture("det", 1);
    let mut runs = Vec::new();
    for (i, seed) in [3, 3, 4].into_iter().enumerate() {
        let mut c = config(&f.model, &f.data, &f.dir.join(format!("run{i}")));
        c.steps = 3;
        c.seed = seed;
        c.max_negatives = Some(1);
        let s = train(&c, None).unwrap();
        assert_eq!(s.steps, 3);
        runs.push(common::losses(&c.out));
    }
    assert_eq!(runs[0].len(), 3);
    assert_eq!(runs[0], runs[1], "same seed, same losses");
    assert_ne!(runs[0], runs[2], "another seed draws other batches");
    assert_eq!(
        weights_bytes(&f.dir.join("run0/checkpoint")),
        weights_bytes(&f.dir.join("run1/checkpoint"))
    );
}

#[test]
fn resume_continues_bit_for_bit() {
    let f = fixture("resume", 2);
    // The whole run, with a resumable checkpoint after step 2.
    let full = f.dir.join("full");
    let mut c = config(&f.model, &f.data, &full);
    c.checkpoint_every = Some(2);
    c.max_negatives = Some(1);
    c.symmetric = true;
    c.accumulate = 2;
    train(&c, None).unwrap();
    let all = common::losses(&full);
    assert_eq!(all.len(), 4);
    assert!(full.join("checkpoint-2").join("optimizer.mpk").is_file());

    // An interrupted run: its checkpoint after step 2 and a log that went on to step 3
    // (written after that checkpoint, so resuming drops it).
    let part = f.dir.join("part");
    std::fs::create_dir_all(&part).unwrap();
    let ck = part.join("checkpoint-2");
    std::fs::create_dir_all(&ck).unwrap();
    checkpoint::copy_dir(&full.join("checkpoint-2"), &ck, &[]).unwrap();
    let log = std::fs::read_to_string(full.join("log.jsonl")).unwrap();
    let three: Vec<&str> = log.lines().take(3).collect();
    std::fs::write(
        part.join("log.jsonl"),
        three.join("\n") + "\n{\"step\":4,\"lo",
    )
    .unwrap();

    let mut r = c.clone();
    r.out = part.clone();
    r.resume = true;
    let s = train(&r, None).unwrap();
    assert_eq!(s.resumed_from, Some(2));
    assert_eq!(common::losses(&part), all, "2 + resume 2 = 4");
    assert_eq!(
        weights_bytes(&part.join("checkpoint")),
        weights_bytes(&full.join("checkpoint")),
        "identical final weights"
    );

    // A finished run resumes to nothing; other settings are refused.
    let again = train(&r, None).unwrap();
    assert!(again.already_finished);
    let mut other = r.clone();
    other.lr = 2e-3;
    let e = train(&other, None).unwrap_err();
    assert!(e.to_string().contains("lr"), "{e}");
    // Without --resume, an existing run is not overwritten.
    let mut fresh = c.clone();
    fresh.out = part;
    assert!(matches!(train(&fresh, None), Err(TrainError::Config(_))));
}

#[test]
fn checkpoint_is_an_hf_directory_the_engine_loads() {
    let f = fixture("ckpt", 0);
    let out = f.dir.join("run");
    let mut c = config(&f.model, &f.data, &out);
    c.steps = 2;
    c.freeze_embeddings = true;
    train(&c, None).unwrap();
    let ck = out.join("checkpoint");
    for name in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "modules.json",
        "sentence_bert_config.json",
        "1_Pooling/config.json",
        "2_Normalize/config.json",
        "config_sentence_transformers.json",
        "README.md",
    ] {
        assert!(ck.join(name).is_file(), "{name}");
    }
    let trained = Model::load(ck.to_str().unwrap(), Path::new("/nonexistent")).unwrap();
    let base = Model::load_hf_dir(&f.model).unwrap();
    assert_ne!(
        trained.weights.layers, base.weights.layers,
        "training moved the weights"
    );
    assert_eq!(
        trained.weights.word, base.weights.word,
        "frozen word embeddings"
    );
    assert_eq!(trained.settings, base.settings);

    // The engine and the burn encoder agree on the checkpoint's weights.
    let texts = ["w1 w2 w3", "w4 w5", "w6 w7 w8 w9 w10 w11"];
    let ids = trained.tokenize(&texts, Kind::Passage).unwrap();
    let engine = trained
        .embedder(Precision::F32)
        .unwrap()
        .embed_ids(&ids, EmbedOptions::default(), &|_| {})
        .unwrap();
    let device = Default::default();
    let ours =
        TrainableEncoder::<FlexTrain>::from_weights(&trained.config, &trained.weights, &device)
            .unwrap()
            .with_settings(&trained.settings)
            .embed_ids(&ids, &device)
            .unwrap();
    let d = engine
        .iter()
        .zip(&ours)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(d < 1e-4, "{d}");

    // The log has the documented fields.
    for line in common::read_log(&out) {
        for key in [
            "step",
            "loss",
            "lr",
            "tokens_per_s",
            "tokens",
            "grad_norm",
            "kind",
        ] {
            assert!(line.get(key).is_some(), "{key} missing in {line}");
        }
    }
}

#[test]
fn interrupted_writes_leave_no_corrupt_checkpoint() {
    let dir = common::temp_dir("atomic");
    let dest = dir.join("checkpoint");
    write_dir_atomic(&dest, |tmp| checkpoint::write_file(tmp, "a", b"old")).unwrap();
    // A write that fails half-way leaves the old directory and no temporary one.
    let failed = write_dir_atomic(&dest, |tmp| {
        checkpoint::write_file(tmp, "a", b"new")?;
        Err(TrainError::Config("disk full".into()))
    });
    assert!(failed.is_err());
    assert_eq!(std::fs::read(dest.join("a")).unwrap(), b"old");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
    // A successful one replaces it whole.
    write_dir_atomic(&dest, |tmp| checkpoint::write_file(tmp, "b", b"new")).unwrap();
    assert!(!dest.join("a").exists());
    assert_eq!(std::fs::read(dest.join("b")).unwrap(), b"new");

    // What a killed process leaves: a temporary directory, and a set-aside old directory
    // whose replacement never arrived.
    let tmp = dir.join(".checkpoint-2.tmp-999-0");
    std::fs::create_dir_all(&tmp).unwrap();
    std::fs::write(tmp.join("model.safetensors"), b"trunc").unwrap();
    let old = dir.join(".best.old-999-1");
    std::fs::create_dir_all(&old).unwrap();
    std::fs::write(old.join("x"), b"1").unwrap();
    assert!(checkpoint::periodic_checkpoints(&dir).is_empty());
    let touched = checkpoint::recover(&dir).unwrap();
    assert_eq!(touched.len(), 2);
    assert!(!tmp.exists());
    assert_eq!(std::fs::read(dir.join("best").join("x")).unwrap(), b"1");
}

#[test]
fn a_run_ignores_and_cleans_leftover_temporaries() {
    let f = fixture("leftover", 0);
    let out = f.dir.join("run");
    let mut c = config(&f.model, &f.data, &out);
    c.steps = 2;
    c.checkpoint_every = Some(1);
    train(&c, None).unwrap();
    // A crash while writing checkpoint-2 of a longer run: a partial temporary directory.
    let junk = out.join(".checkpoint-2.tmp-1-1");
    std::fs::create_dir_all(&junk).unwrap();
    std::fs::write(junk.join("trainer_state.json"), b"{").unwrap();
    std::fs::remove_dir_all(out.join("checkpoint")).unwrap();
    let mut r = c.clone();
    r.resume = true;
    let s = train(&r, None).unwrap();
    assert_eq!(s.resumed_from, Some(1));
    assert!(s.recovered.contains(&junk));
    assert!(!junk.exists());
    assert_eq!(common::losses(&out).len(), 2);
}

#[test]
fn validation_and_early_stopping() {
    let f = fixture("val", 0);
    let out = f.dir.join("run");
    let mut c = config(&f.model, &f.data, &out);
    c.steps = 6;
    c.lr = 0.0; // the validation loss never improves after the first validation
    c.val_groups = 6;
    c.eval_every = Some(1);
    c.patience = Some(1);
    let s = train(&c, None).unwrap();
    assert!(s.stopped_early);
    assert_eq!(s.steps, 2);
    assert_eq!(s.best_val.map(|(_, step)| step), Some(1));
    let log = common::read_log(&out);
    assert_eq!(log.len(), 2);
    assert!(log.iter().all(|l| l["val_loss"].as_f64().is_some()));
    assert_eq!(log[0]["val_loss"], log[1]["val_loss"]);
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("checkpoint").join("trainer_state.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(state["weights_step"], 1);
    assert_eq!(
        weights_bytes(&out.join("checkpoint")),
        weights_bytes(&out.join("best"))
    );
    // Held-out groups cannot cover the whole corpus.
    let mut too_many = config(&f.model, &f.data, &f.dir.join("run2"));
    too_many.val_groups = 16;
    assert!(train(&too_many, None).is_err());
}

#[test]
fn eval_hook_runs_on_the_final_checkpoint() {
    let f = fixture("eval", 0);
    let out = f.dir.join("run");
    let mut c = config(&f.model, &f.data, &out);
    c.steps = 1;
    c.eval = Some("xquad-r".into());
    assert!(train(&c, None).is_err(), "no hook, no evaluation");
    let mut seen = Vec::new();
    let mut hook = |ck: &Path, name: &str, report: &Path| -> Result<(), String> {
        seen.push((ck.to_path_buf(), name.to_string()));
        std::fs::write(
            report.with_extension("md"),
            "# report\n\n| Mo. mAP | 0.42 |\n",
        )
        .map_err(|e| e.to_string())?;
        std::fs::write(report, b"{}").map_err(|e| e.to_string())
    };
    let s = train(&c, Some(&mut hook)).unwrap();
    assert_eq!(seen, vec![(out.join("checkpoint"), "xquad-r".to_string())]);
    assert_eq!(s.eval_report, Some(out.join("eval.json")));
    assert!(out.join("eval.json").is_file());
    // The model card carries the training settings and the evaluation report.
    let card = std::fs::read_to_string(out.join("checkpoint").join("README.md")).unwrap();
    assert!(
        card.contains("## Training") && card.contains("| steps | 1 of 1 |"),
        "{card}"
    );
    assert!(
        card.contains("## Evaluation") && card.contains("| Mo. mAP | 0.42 |"),
        "{card}"
    );
    assert!(
        card.contains("\n### report"),
        "report headings sit under Evaluation: {card}"
    );
}

#[test]
fn hard_negatives_join_the_batch() {
    let f = fixture("negs", 3);
    let model = Model::load_hf_dir(&f.model).unwrap();
    let (corpora, _) = multiret_sampler::load_train(
        f.data.to_str().unwrap(),
        Path::new("."),
        &Default::default(),
    )
    .unwrap();
    let mut sampler = multiret_sampler::Sampler::new(
        &corpora,
        multiret_sampler::SamplerConfig::new(SamplerKind::Cross, 4, 1),
    )
    .unwrap();
    let batch = sampler.next_batch();
    let mut rng =
        <rand_chacha::ChaCha8Rng as rand_chacha::rand_core::SeedableRng>::seed_from_u64(1);
    for (max, want) in [(None, 4 + 12), (Some(1), 4 + 4), (Some(0), 4)] {
        let tb = multiret_train::tokenize_batch(
            &model,
            &corpora[0],
            &batch.pairs,
            batch.kind,
            16,
            multiret_train::NegativeDraw {
                max,
                langs: multiret_train::NegativeLangs::Passage,
            },
            &mut rng,
        )
        .unwrap();
        assert_eq!(tb.queries.len(), 4);
        assert_eq!(tb.passages.len(), want);
        // The prefixes are part of the text: "query : ..." -> [CLS] query : ... [SEP].
        assert!(tb.queries.iter().all(|q| q[1] == 4 && q[2] == 6));
        assert!(tb.passages.iter().all(|p| p[1] == 5 && p.len() <= 16));
    }
}

/// In-context negatives on the shipped XQuAD-R: per pair and language list at most the drawn
/// number; cross pairs add the query language's list with `both`; a negative is excluded for
/// exactly the queries on its pair's topic (other than that pair) and those whose positive
/// has its text.
#[test]
fn context_negatives_are_shared_except_with_their_topic() {
    use multiret_sampler::{load_lareqa_with, PairRef, PassageUnit};
    use multiret_train::{NegativeDraw, NegativeLangs};
    let f = fixture("ctx", 0);
    let model = Model::load_hf_dir(&f.model).unwrap();
    let dir = multiret_data::repository_data_dir().join("xquad-r");
    let corpus = load_lareqa_with(&dir, PassageUnit::Sentence, true).unwrap();
    // Two groups on one paragraph, and one on another.
    let t0 = corpus.topic(0).unwrap();
    let same = (1..corpus.len())
        .find(|&g| corpus.topic(g) == Some(t0))
        .unwrap();
    let other = (1..corpus.len())
        .find(|&g| corpus.topic(g) != Some(t0))
        .unwrap();
    let (de, en) = (corpus.lang_id("de").unwrap(), corpus.lang_id("en").unwrap());
    let pairs = [
        PairRef {
            group: 0,
            query_lang: de,
            passage_lang: en,
        },
        PairRef {
            group: same,
            query_lang: de,
            passage_lang: en,
        },
        PairRef {
            group: other,
            query_lang: de,
            passage_lang: en,
        },
    ];
    let mut rng =
        <rand_chacha::ChaCha8Rng as rand_chacha::rand_core::SeedableRng>::seed_from_u64(3);
    let kind = multiret_sampler::BatchKind::Cross;
    let draw = |max, langs| NegativeDraw { max, langs };
    let both = multiret_train::tokenize_batch(
        &model,
        &corpus,
        &pairs,
        kind,
        64,
        draw(Some(2), NegativeLangs::Both),
        &mut rng,
    )
    .unwrap();
    let passage = multiret_train::tokenize_batch(
        &model,
        &corpus,
        &pairs,
        kind,
        64,
        draw(Some(2), NegativeLangs::Passage),
        &mut rng,
    )
    .unwrap();
    let all = multiret_train::tokenize_batch(
        &model,
        &corpus,
        &pairs,
        kind,
        64,
        draw(None, NegativeLangs::Passage),
        &mut rng,
    )
    .unwrap();
    let negs = |tb: &multiret_train::TokenizedBatch| tb.passages.len() - 3;
    assert!(negs(&passage) <= 6 && negs(&passage) > 0);
    assert!(negs(&both) > negs(&passage) && negs(&both) <= 12);
    let paragraph_sizes: usize = pairs
        .iter()
        .map(|p| corpus.texts(p).unwrap().negatives.len())
        .sum();
    assert!(negs(&all) <= paragraph_sizes && negs(&all) >= negs(&passage));
    // Queries 0 and 1 share a topic: each one's positive, and the negatives only the other
    // drew, are excluded for it, and never for query 2, whose topic differs (its own negatives
    // are its own distractors). Drawing all of the paragraph, each of the two draws every
    // sentence the other does (the golds are dropped as positives): nothing else is excluded.
    let mut only_positives = all.mask.excluded.clone();
    only_positives.sort_unstable();
    assert_eq!(only_positives, [(0, 1), (1, 0)]);
    for tb in [&both, &passage, &all] {
        let excluded = &tb.mask.excluded;
        assert!(tb.mask.positives.is_empty());
        assert!(excluded.contains(&(0, 1)) && excluded.contains(&(1, 0)));
        for &(q, p) in excluded {
            assert!(q < 2 && (p >= 3 || p == 1 - q), "{excluded:?}");
        }
        let ex = |q: usize, p: usize| excluded.contains(&(q, p));
        let negatives = 3..tb.passages.len();
        assert!(
            negatives.clone().any(|p| !ex(0, p) && !ex(1, p)),
            "pair 2's are shared with every query"
        );
    }
}

/// A LAReQA corpus in `dir`: per language, a list of paragraphs, each a list of sentences
/// and the questions `(id, question, answer sentence index)` on it.
/// One paragraph: its sentences and its questions `(id, question, answer sentence index)`.
type Paragraph<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str, usize)>);

fn write_lareqa(dir: &Path, langs: &[(&str, Vec<Paragraph<'_>>)]) {
    std::fs::create_dir_all(dir).unwrap();
    for (lang, paragraphs) in langs {
        let paragraphs: Vec<serde_json::Value> = paragraphs
            .iter()
            .map(|(sentences, qas)| {
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
                let qas: Vec<serde_json::Value> = qas
                    .iter()
                    .map(|(id, q, k)| {
                        serde_json::json!({"id": id, "question": q, "answers": [
                            {"text": sentences[*k], "answer_start": breaks[*k][0]}]})
                    })
                    .collect();
                serde_json::json!({"context": context, "sentence_breaks": breaks,
                    "sentences": sentences, "qas": qas})
            })
            .collect();
        let doc = serde_json::json!({"version": "1.1", "data": [{"title": "t", "paragraphs": paragraphs}]});
        std::fs::write(dir.join(format!("{lang}.json")), doc.to_string()).unwrap();
    }
}

/// The mask of a batch: another group's positive on the query's topic is excluded (both
/// ways); a negative with a positive's text is dropped; a negative drawn by several pairs is
/// excluded for every query on one of their topics that drew it through no pair of its own;
/// in a group batch the language versions of a group are positives for each other, and the
/// negatives their own pairs drew are not excluded for them.
#[test]
fn the_batch_mask_keeps_false_negatives_out_and_groups_together() {
    use multiret_sampler::{load_lareqa_with, BatchKind, PairRef, PassageUnit};
    use multiret_train::{NegativeDraw, NegativeLangs};
    let f = fixture("mask", 0);
    let dir = f.dir.join("lareqa");
    // Paragraph 1 holds questions a and b, paragraph 2 question c; "Shared line." is in both.
    let p1 = vec!["Alpha one.", "Shared line.", "Beta two."];
    let p2 = vec!["Gamma three.", "Shared line."];
    let p1_de = vec!["Alpha eins.", "Geteilt.", "Beta zwei."];
    let p2_de = vec!["Gamma drei.", "Geteilt."];
    write_lareqa(
        &dir,
        &[
            (
                "en",
                vec![
                    (p1, vec![("a", "Which alpha?", 0), ("b", "Which beta?", 2)]),
                    (p2, vec![("c", "Which gamma?", 0)]),
                ],
            ),
            (
                "de",
                vec![
                    (
                        p1_de,
                        vec![("a", "Welches alpha?", 0), ("b", "Welches beta?", 2)],
                    ),
                    (p2_de, vec![("c", "Welches gamma?", 0)]),
                ],
            ),
        ],
    );
    let model = Model::load_hf_dir(&f.model).unwrap();
    let corpus = load_lareqa_with(&dir, PassageUnit::Sentence, true).unwrap();
    assert!(corpus.has_context_negatives());
    let g = |id: &str| {
        (0..corpus.len())
            .find(|&i| corpus.group_id(i) == id)
            .unwrap()
    };
    let (de, en) = (corpus.lang_id("de").unwrap(), corpus.lang_id("en").unwrap());
    let pair = |id: &str, q, p| PairRef {
        group: g(id),
        query_lang: q,
        passage_lang: p,
    };
    let all = NegativeDraw {
        max: None,
        langs: NegativeLangs::Passage,
    };
    let mut rng =
        <rand_chacha::ChaCha8Rng as rand_chacha::rand_core::SeedableRng>::seed_from_u64(0);
    // c draws "Shared line." first, then a; b (de -> en, on a's topic) draws in German.
    let pairs = [pair("c", en, en), pair("a", en, en), pair("b", de, en)];
    let query = NegativeDraw {
        max: None,
        langs: NegativeLangs::Query,
    };
    let tb = multiret_train::tokenize_batch(
        &model,
        &corpus,
        &pairs,
        BatchKind::Cross,
        32,
        query,
        &mut rng,
    )
    .unwrap();
    // The negatives: 3 "Shared line." (c's and a's), 4 "Alpha eins.", 5 "Geteilt." (b's). a's
    // "Beta two." is b's positive: dropped. "Shared line." is excluded for b, on a's topic (not
    // only c's, which drew it first); b's are excluded for a ("Alpha eins." is a's positive in
    // German); a and b exclude each other's positive.
    assert_eq!(tb.passages.len(), 6);
    let mut excluded = tb.mask.excluded.clone();
    excluded.sort_unstable();
    assert_eq!(excluded, [(1, 2), (1, 4), (1, 5), (2, 1), (2, 3)]);
    assert!(tb.mask.positives.is_empty());
    // A group batch: a in English and in German, and c.
    let pairs = [pair("a", en, en), pair("a", de, de), pair("c", en, en)];
    let tb = multiret_train::tokenize_batch(
        &model,
        &corpus,
        &pairs,
        BatchKind::Group,
        32,
        all,
        &mut rng,
    )
    .unwrap();
    assert_eq!(tb.mask.positives, [(0, 1), (1, 0)]);
    assert!(tb.mask.excluded.is_empty(), "{:?}", tb.mask.excluded);
    // a's negatives in each language, once each: "Shared line.", "Beta two.", "Geteilt.",
    // "Beta zwei." ("Shared line." again from c).
    assert_eq!(tb.passages.len(), 3 + 4);
}

/// `select` by a retrieval score: the hook sees the held-out group ids and the current
/// weights at every validation, its scores are logged, the kept weights are those of the best
/// score (not the last step, nor the lowest loss), and the final checkpoint holds them.
#[test]
fn retrieval_scores_select_the_kept_weights() {
    use multiret_train::{train_with, RetrievalScores, Select};
    let f = fixture("select", 0);
    let out = f.dir.join("run");
    let mut c = config(&f.model, &f.data, &out);
    c.steps = 4;
    c.val_groups = 6;
    c.eval_every = Some(1);
    c.select = Select::Mul;
    // Without a hook, a retrieval selection is an error.
    assert!(train(&c, None).is_err());
    let mut calls = Vec::new();
    let mut hook = |m: Model, held: &[String]| -> Result<Option<RetrievalScores>, String> {
        assert_eq!(held.len(), 6);
        calls.push(m.weights.layers[0].q.w[0]);
        // Multilingual mAP peaks at the second validation.
        let mul = [0.2, 0.9, 0.5, 0.4][calls.len() - 1];
        Ok(Some(RetrievalScores {
            mo: 0.5,
            cr: 0.5,
            mul,
            rank_distance: Some(3.0),
        }))
    };
    let _ = std::fs::remove_dir_all(&out);
    let s = train_with(&c, None, Some(&mut hook)).unwrap();
    assert_eq!(calls.len(), 4);
    assert_ne!(calls[0], calls[1], "the hook sees the current weights");
    assert_eq!(s.best_val.map(|(_, step)| step), Some(2));
    let log = common::read_log(&out);
    assert_eq!(log[1]["val_mul"], 0.9);
    assert_eq!(log[1]["val_rank_distance"], 3.0);
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("checkpoint").join("trainer_state.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(state["weights_step"], 2);
    assert_eq!(
        weights_bytes(&out.join("checkpoint")),
        weights_bytes(&out.join("best"))
    );
    // A hook that cannot score (other training data) leaves a retrieval selection without
    // scores: an error naming the option.
    let mut none = |_: Model, _: &[String]| -> Result<Option<RetrievalScores>, String> { Ok(None) };
    let out2 = f.dir.join("run2");
    let mut c2 = c.clone();
    c2.out = out2;
    let err = train_with(&c2, None, Some(&mut none))
        .unwrap_err()
        .to_string();
    assert!(err.contains("--select mul"), "{err}");
}

/// `merge_grid`: the weight with the best score on the held-out groups is written to
/// `merged/`, its card gives the selected checkpoint's step, and `merge.json` every score. A
/// merge that did not happen (deleted here) is made on `--resume`; a finished merge is not
/// made again. A non-finite validation score is an error, not a best.
#[test]
fn merge_grid_picks_its_weight_and_is_made_on_resume() {
    use multiret_train::{train_with, RetrievalScores, Select};
    let f = fixture("merge", 0);
    let out = f.dir.join("run");
    let mut c = config(&f.model, &f.data, &out);
    c.steps = 4;
    c.val_groups = 6;
    c.eval_every = Some(2);
    c.select = Select::Mul;
    c.merge_grid = vec![0.0, 0.5, 1.0];
    let calls = std::sync::atomic::AtomicUsize::new(0);
    // Validations at steps 2 and 4 (the best: step 2), then the grid (the best: w = 0.5).
    let muls = [0.9, 0.2, 0.1, 0.8, 0.3, 0.1, 0.8, 0.3];
    let mut hook = |_: Model, _: &[String]| -> Result<Option<RetrievalScores>, String> {
        let k = calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(Some(RetrievalScores {
            mo: 0.5,
            cr: 0.5,
            mul: muls[k],
            rank_distance: None,
        }))
    };
    let s = train_with(&c, None, Some(&mut hook)).unwrap();
    let (dir, w) = s.merged.clone().unwrap();
    assert_eq!((dir.clone(), w), (out.join("merged"), 0.5));
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("merge.json")).unwrap()).unwrap();
    assert_eq!(record["chosen_weight"], 0.5);
    assert_eq!(record["step"], 2);
    assert_eq!(record["grid"].as_array().unwrap().len(), 3);
    let card = std::fs::read_to_string(dir.join("README.md")).unwrap();
    assert!(card.contains("| steps | 2 of 4 |"), "{card}");
    assert!(card.contains("w = 0.5"), "{card}");
    // The merge undone: --resume makes it (the grid scored again), and only it.
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_file(out.join("merge.json")).unwrap();
    c.resume = true;
    let s = train_with(&c, None, Some(&mut hook)).unwrap();
    assert!(!s.already_finished);
    assert_eq!(s.merged.as_ref().map(|m| m.1), Some(0.5));
    assert!(dir.join("model.safetensors").is_file());
    let s = train_with(&c, None, Some(&mut hook)).unwrap();
    assert!(s.already_finished);
    assert_eq!(s.merged.map(|m| m.1), Some(0.5));
    assert_eq!(
        calls.load(std::sync::atomic::Ordering::SeqCst),
        8,
        "a finished merge is not scored again"
    );
    // A stale merge.json alone marks the directory as holding a run.
    let stale = f.dir.join("stale");
    std::fs::create_dir_all(&stale).unwrap();
    std::fs::write(stale.join("merge.json"), "{}").unwrap();
    let mut c2 = c.clone();
    c2.out = stale.clone();
    c2.resume = false;
    let err = train_with(&c2, None, Some(&mut hook))
        .unwrap_err()
        .to_string();
    assert!(err.contains("already holds a training run"), "{err}");
    // NaN scores.
    let mut nan = |_: Model, _: &[String]| -> Result<Option<RetrievalScores>, String> {
        Ok(Some(RetrievalScores {
            mo: f64::NAN,
            cr: 0.5,
            mul: f64::NAN,
            rank_distance: None,
        }))
    };
    let mut c3 = c.clone();
    c3.out = f.dir.join("nan");
    c3.resume = false;
    let err = train_with(&c3, None, Some(&mut nan)).unwrap_err();
    assert!(
        matches!(err, TrainError::NonFiniteValidation { step: 2, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("not finite"), "{err}");
}

/// Freezing every layer and the word embeddings leaves next to nothing to train: an error
/// naming the flags, before any step. One layer fewer trains, and group batches train too.
#[test]
fn freezing_everything_is_an_error_and_group_batches_train() {
    let f = fixture("freeze", 0);
    let mut c = config(&f.model, &f.data, &f.dir.join("all"));
    c.freeze_embeddings = true;
    c.freeze_layers = 2;
    let err = train(&c, None).unwrap_err().to_string();
    assert!(
        err.contains("--freeze-layers 2 freezes every layer")
            && err.contains("--freeze-embeddings"),
        "{err}"
    );
    assert!(!f.dir.join("all").join("checkpoint").exists());
    c.freeze_layers = 1;
    c.out = f.dir.join("one");
    c.sampler = SamplerKind::Group { langs: 2 };
    c.steps = 3;
    let s = train(&c, None).unwrap();
    assert_eq!(s.steps, 3);
    let log = common::read_log(&c.out);
    assert!(log.iter().all(|l| l["kind"] == "group"), "{log:?}");
    assert!(log.iter().all(|l| l["loss"].as_f64().unwrap().is_finite()));
}
