//! sentence-transformers directories: the `st-tiny` fixtures (made and encoded by
//! sentence-transformers itself) to cosine > 0.99999, our own output read back by the same
//! rules, and clear errors for what is not supported.

use std::path::{Path, PathBuf};

use multiret_model::{
    Activation, Dense, EmbedOptions, Kind, Model, ModelCard, ModelError, Pooling, Precision,
};
use serde_json::{json, Value};

mod common;

fn st_tiny() -> PathBuf {
    common::fixture_path("st-tiny/expected.json")
        .parent()
        .expect("fixture folder")
        .to_path_buf()
}

fn expected() -> Value {
    let p = st_tiny().join("expected.json");
    serde_json::from_str(&std::fs::read_to_string(&p).expect("expected.json")).expect("JSON")
}

fn texts(v: &Value) -> Vec<String> {
    v["texts"]
        .as_array()
        .expect("texts")
        .iter()
        .map(|t| t.as_str().expect("text").to_string())
        .collect()
}

fn rows(v: &Value) -> Vec<Vec<f64>> {
    v.as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            r.as_array()
                .expect("row")
                .iter()
                .map(|x| x.as_f64().expect("number"))
                .collect()
        })
        .collect()
}

fn cosine(a: &[f32], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * y).sum();
    let na = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb = b.iter().map(|x| x * x).sum::<f64>().sqrt();
    dot / (na * nb)
}

fn embed(m: &Model, texts: &[String], kind: Kind) -> Vec<f32> {
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    m.embedder(Precision::F32)
        .unwrap()
        .embed(&refs, kind, EmbedOptions::default(), &|_| {})
        .unwrap()
}

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("multiret-st-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Copies a fixture model into a writable temporary directory.
fn copy_fixture(name: &str, tag: &str) -> PathBuf {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            let dst = to.join(e.file_name());
            if e.path().is_dir() {
                copy(&e.path(), &dst);
            } else {
                std::fs::copy(e.path(), &dst).unwrap();
                let mut perm = std::fs::metadata(&dst).unwrap().permissions();
                #[allow(clippy::permissions_set_readonly_false)]
                perm.set_readonly(false);
                std::fs::set_permissions(&dst, perm).unwrap();
            }
        }
    }
    let d = temp_dir(tag);
    copy(&st_tiny().join(name), &d);
    d
}

const MODELS: [&str; 3] = ["xlmr-mean", "labse-cls-dense", "e5-prompts"];

#[test]
fn every_st_tiny_fixture_matches_sentence_transformers() {
    let exp = expected();
    let texts = texts(&exp);
    for name in MODELS {
        let m = Model::load_hf_dir(&st_tiny().join(name)).unwrap();
        let e = &exp["models"][name];
        let dim = e["dim"].as_u64().unwrap() as usize;
        assert_eq!(m.dim(), dim, "{name}: dimension");
        for (kind, key) in [(Kind::Query, "query"), (Kind::Passage, "passage")] {
            let got = embed(&m, &texts, kind);
            let want = rows(&e[key]);
            assert_eq!(got.len(), want.len() * dim, "{name} {key}");
            for (i, w) in want.iter().enumerate() {
                let c = cosine(&got[i * dim..(i + 1) * dim], w);
                assert!(
                    c > 0.99999,
                    "{name} {key} text {i} {:?}: cosine {c}",
                    texts[i]
                );
            }
        }
    }
}

#[test]
fn fixture_settings_are_read_as_sentence_transformers_reads_them() {
    let xlmr = Model::load_hf_dir(&st_tiny().join("xlmr-mean")).unwrap();
    assert_eq!(xlmr.settings.pooling, Pooling::Mean);
    assert!(xlmr.settings.normalize);
    assert_eq!(xlmr.settings.prefixes.query, "");
    // No max_seq_length: min(max_position_embeddings 130, model_max_length 64).
    assert_eq!(xlmr.max_tokens(), 64);
    let labse = Model::load_hf_dir(&st_tiny().join("labse-cls-dense")).unwrap();
    assert_eq!(labse.settings.pooling, Pooling::Cls);
    assert_eq!(labse.head.dense.len(), 1);
    assert_eq!(labse.head.dense[0].act, Activation::Tanh);
    assert_eq!((labse.head.dense[0].inp, labse.head.dense[0].out), (32, 24));
    let e5 = Model::load_hf_dir(&st_tiny().join("e5-prompts")).unwrap();
    assert_eq!(e5.settings.prefixes.query, "query: ");
    assert_eq!(e5.settings.prefixes.passage, "passage: ");
}

#[test]
fn our_output_reads_back_by_the_same_rules_and_embeds_alike() {
    let exp = expected();
    let texts = texts(&exp);
    for name in MODELS {
        let m = Model::load_hf_dir(&st_tiny().join(name)).unwrap();
        let out = temp_dir(&format!("rt-{name}"));
        let card = ModelCard {
            base_model: Some(format!("st-tiny/{name}")),
            training: vec![("steps".into(), "3 of 3".into())],
            evaluation: Some("| Mo. | 0.5 |".into()),
        };
        m.save_hf_dir(&out, &card).unwrap();
        let back = Model::load_hf_dir(&out).unwrap();
        assert_eq!(back.config, m.config, "{name}");
        assert_eq!(back.settings, m.settings, "{name}");
        assert_eq!(back.head, m.head, "{name}");
        assert_eq!(back.weights, m.weights, "{name}");
        for kind in [Kind::Query, Kind::Passage] {
            assert_eq!(
                embed(&back, &texts, kind),
                embed(&m, &texts, kind),
                "{name}"
            );
        }
        // The layout sentence-transformers reads.
        let read = |p: &str| -> Value {
            serde_json::from_str(&std::fs::read_to_string(out.join(p)).unwrap()).unwrap()
        };
        let modules = read("modules.json");
        let types: Vec<&str> = modules
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["type"].as_str().unwrap())
            .collect();
        let mut want = vec![
            "sentence_transformers.models.Transformer",
            "sentence_transformers.models.Pooling",
        ];
        if name == "labse-cls-dense" {
            want.push("sentence_transformers.models.Dense");
        }
        want.push("sentence_transformers.models.Normalize");
        assert_eq!(types, want, "{name}");
        let pool = read("1_Pooling/config.json");
        assert_eq!(pool["word_embedding_dimension"], json!(32));
        let mode = if name == "labse-cls-dense" {
            "pooling_mode_cls_token"
        } else {
            "pooling_mode_mean_tokens"
        };
        assert_eq!(pool[mode], json!(true), "{name}");
        let tok = read("tokenizer_config.json");
        // The fixtures' XLM-R tokenizers are used as their tokenizer.json says (transformers'
        // generic class): naming XLMRobertaTokenizer would make transformers rebuild them.
        let class = if name == "labse-cls-dense" {
            "BertTokenizer"
        } else {
            "PreTrainedTokenizerFast"
        };
        assert_eq!(tok["tokenizer_class"], json!(class), "{name}");
        assert_eq!(tok["model_max_length"], json!(64), "{name}");
        assert_eq!(
            read("sentence_bert_config.json")["max_seq_length"],
            json!(64)
        );
        let card_text = std::fs::read_to_string(out.join("README.md")).unwrap();
        assert!(card_text.contains(&format!("base_model: \"st-tiny/{name}\"")));
        assert!(card_text.contains("| steps | 3 of 3 |"));
        assert!(card_text.contains("## Evaluation"));
    }
}

#[test]
fn an_xlm_roberta_tokenizer_class_is_tokenised_as_transformers_builds_it() {
    let d = copy_fixture("xlmr-mean", "xlmr-class");
    edit_json(&d.join("tokenizer_config.json"), |v| {
        v["tokenizer_class"] = json!("XLMRobertaTokenizer");
    });
    let m = Model::load_hf_dir(&d).unwrap();
    assert!(m.tokenizer.splits_on_whitespace());
    let raw = Model::load_hf_dir(&st_tiny().join("xlmr-mean")).unwrap();
    assert!(!raw.tokenizer.splits_on_whitespace());
    // Trailing white space adds a `▁` token to the bare Metaspace only.
    let with = raw.tokenizer.encode("a b ", 64).unwrap();
    let split = m.tokenizer.encode("a b ", 64).unwrap();
    assert_eq!(with.len(), split.len() + 1, "{with:?} {split:?}");
    assert_eq!(split, m.tokenizer.encode("a b", 64).unwrap());
    // Written back, it keeps the class and the split form.
    let out = temp_dir("xlmr-class-out");
    m.save_hf_dir(&out, &ModelCard::default()).unwrap();
    let back = Model::load_hf_dir(&out).unwrap();
    assert!(back.tokenizer.splits_on_whitespace());
    let cfg: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("tokenizer_config.json")).unwrap())
            .unwrap();
    assert_eq!(cfg["tokenizer_class"], json!("XLMRobertaTokenizer"));
}

fn edit_json(path: &Path, f: impl FnOnce(&mut Value)) {
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(path, serde_json::to_string_pretty(&v).unwrap()).unwrap();
}

fn load_err(dir: &Path) -> String {
    match Model::load_hf_dir(dir) {
        Ok(_) => panic!("{}: loaded, expected an error", dir.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn every_pooling_mode_is_read_in_both_layouts() {
    let d = copy_fixture("xlmr-mean", "modes");
    let cfg = d.join("1_Pooling").join("config.json");
    for p in Pooling::ALL {
        std::fs::write(
            &cfg,
            json!({"embedding_dimension": 32, "pooling_mode": p.st_name(), "include_prompt": true})
                .to_string(),
        )
        .unwrap();
        assert_eq!(Model::load_hf_dir(&d).unwrap().settings.pooling, p);
        let mut old = serde_json::Map::new();
        old.insert("word_embedding_dimension".into(), json!(32));
        for q in Pooling::ALL {
            old.insert(q.st_flag().into(), json!(q == p));
        }
        std::fs::write(&cfg, Value::Object(old).to_string()).unwrap();
        assert_eq!(Model::load_hf_dir(&d).unwrap().settings.pooling, p);
    }
}

#[test]
fn unsupported_layouts_are_clear_errors_naming_the_file() {
    // An unknown module type.
    let d = copy_fixture("xlmr-mean", "unknown");
    edit_json(&d.join("modules.json"), |v| {
        v[2]["type"] = json!("sentence_transformers.models.LayerNorm");
    });
    let e = load_err(&d);
    assert!(e.contains("modules.json") && e.contains("LayerNorm"), "{e}");

    // A Dense weight of the wrong shape.
    let d = copy_fixture("labse-cls-dense", "shape");
    edit_json(&d.join("2_Dense").join("config.json"), |v| {
        v["out_features"] = json!(16);
    });
    let e = load_err(&d);
    assert!(
        e.contains("2_Dense") && e.contains("linear.weight") && e.contains("[16, 32]"),
        "{e}"
    );

    // An activation we do not have.
    let d = copy_fixture("labse-cls-dense", "act");
    edit_json(&d.join("2_Dense").join("config.json"), |v| {
        v["activation_function"] = json!("torch.nn.modules.activation.PReLU");
    });
    let e = load_err(&d);
    assert!(e.contains("2_Dense") && e.contains("PReLU"), "{e}");

    // Several pooling modes (concatenated by sentence-transformers).
    let d = copy_fixture("xlmr-mean", "multi");
    edit_json(&d.join("1_Pooling").join("config.json"), |v| {
        v["pooling_mode"] = json!(["mean", "max"]);
    });
    let e = load_err(&d);
    assert!(e.contains("1_Pooling") && e.contains("several"), "{e}");

    // Prompt tokens left out of the pooling.
    let d = copy_fixture("e5-prompts", "prompt");
    edit_json(&d.join("1_Pooling").join("config.json"), |v| {
        v["include_prompt"] = json!(false);
    });
    let e = load_err(&d);
    assert!(e.contains("include_prompt"), "{e}");

    // A default prompt that names no prompt.
    let d = copy_fixture("e5-prompts", "default");
    edit_json(&d.join("config_sentence_transformers.json"), |v| {
        v["default_prompt_name"] = json!("classification");
    });
    let e = load_err(&d);
    assert!(
        e.contains("config_sentence_transformers.json") && e.contains("classification"),
        "{e}"
    );

    // Pickled Dense weights.
    let d = copy_fixture("labse-cls-dense", "pickle");
    std::fs::rename(
        d.join("2_Dense").join("model.safetensors"),
        d.join("2_Dense").join("pytorch_model.bin"),
    )
    .unwrap();
    let e = load_err(&d);
    assert!(
        e.contains("pytorch_model.bin") && e.contains("safetensors"),
        "{e}"
    );

    // A pooling dimension that is not the hidden size.
    let d = copy_fixture("xlmr-mean", "dim");
    edit_json(&d.join("1_Pooling").join("config.json"), |v| {
        v["embedding_dimension"] = json!(48);
    });
    let e = load_err(&d);
    assert!(e.contains("1_Pooling") && e.contains("48"), "{e}");
}

#[test]
fn a_dense_head_and_its_activations() {
    let exp = expected();
    let texts = texts(&exp);
    let mut m = Model::load_hf_dir(&st_tiny().join("labse-cls-dense")).unwrap();
    let base = embed(&m, &texts, Kind::Query);
    // Identity then tanh by hand equals the tanh head.
    let d = m.head.dense[0].clone();
    m.head.dense[0].act = Activation::Identity;
    let lin = {
        m.settings.normalize = false;
        embed(&m, &texts, Kind::Query)
    };
    m.settings.normalize = true;
    let mut by_hand: Vec<f32> = lin.iter().map(|v| v.tanh()).collect();
    for row in by_hand.chunks_mut(d.out) {
        let n = row.iter().map(|v| v * v).sum::<f32>().sqrt();
        row.iter_mut().for_each(|v| *v /= n);
    }
    for (a, b) in base.iter().zip(&by_hand) {
        assert!((a - b).abs() < 1e-5, "{a} {b}");
    }
    // Every activation round-trips through its torch name.
    for a in [
        Activation::Identity,
        Activation::Tanh,
        Activation::Relu,
        Activation::Gelu,
        Activation::Sigmoid,
        Activation::Silu,
        Activation::LeakyRelu,
        Activation::Elu,
        Activation::Softplus,
        Activation::Mish,
        Activation::Hardtanh,
        Activation::Softsign,
    ] {
        assert_eq!(Activation::from_torch_name(a.torch_name()), Some(a));
    }
    // Values against torch's definitions.
    for (a, x, want) in [
        (Activation::Tanh, 0.5, 0.462_117_16),
        (Activation::Relu, -1.0, 0.0),
        (Activation::Gelu, 1.0, 0.841_344_7),
        (Activation::Sigmoid, 0.0, 0.5),
        (Activation::Silu, 1.0, 0.731_058_6),
        (Activation::LeakyRelu, -2.0, -0.02),
        (Activation::Elu, -1.0, -0.632_120_56),
        (Activation::Softplus, 0.0, std::f32::consts::LN_2),
        (Activation::Softplus, 30.0, 30.0),
        (Activation::Mish, 1.0, 0.865_098_4),
        (Activation::Hardtanh, 2.0, 1.0),
        (Activation::Softsign, 1.0, 0.5),
        (Activation::Identity, -3.0, -3.0),
    ] {
        let mut v = [x];
        a.apply(&mut v);
        assert!(
            (v[0] - want).abs() < 1e-6,
            "{a:?}({x}) = {}, want {want}",
            v[0]
        );
    }
    // A head whose sizes do not chain is refused.
    let bad = Dense { inp: 7, ..d };
    assert!(matches!(bad.check(), Err(ModelError::Input(_))));
}

#[test]
fn weight_space_merge_interpolates_every_weight() {
    let a = Model::load_hf_dir(&st_tiny().join("labse-cls-dense")).unwrap();
    let mut b = Model::load_hf_dir(&st_tiny().join("labse-cls-dense")).unwrap();
    b.weights.word.iter_mut().for_each(|v| *v += 1.0);
    b.weights.layers[1].fi.w.iter_mut().for_each(|v| *v *= -1.0);
    b.head.dense[0].w.iter_mut().for_each(|v| *v += 0.5);
    assert_eq!(a.interpolate(&b, 0.0).unwrap().weights, a.weights);
    assert_eq!(a.interpolate(&b, 1.0).unwrap().weights, b.weights);
    let m = a.interpolate(&b, 0.25).unwrap();
    for (got, (x, y)) in m.weights.layers[1].fi.w.iter().zip(
        a.weights.layers[1]
            .fi
            .w
            .iter()
            .zip(&b.weights.layers[1].fi.w),
    ) {
        assert!((got - (0.75 * x + 0.25 * y)).abs() < 1e-6);
    }
    assert!((m.weights.word[0] - (a.weights.word[0] + 0.25)).abs() < 1e-6);
    assert!((m.head.dense[0].w[0] - (a.head.dense[0].w[0] + 0.125)).abs() < 1e-6);
    assert_eq!(m.settings, a.settings);
    // Models that are not one architecture, and bad weights, are refused.
    let other = Model::load_hf_dir(&st_tiny().join("xlmr-mean")).unwrap();
    let e = a.interpolate(&other, 0.5).unwrap_err().to_string();
    assert!(e.contains("cannot merge"), "{e}");
    assert!(a.interpolate(&b, f32::NAN).is_err());
    let e5 = Model::load_hf_dir(&st_tiny().join("e5-prompts")).unwrap();
    let e = other.interpolate(&e5, 0.5).unwrap_err().to_string();
    assert!(e.contains("settings"), "{e}");
}
