//! Tiny models generated in code: the E5S1 format (round trip, truncation, corruption), the HF
//! directory round trip, and the encoder against a naive f64 forward (BERT and XLM-R
//! positions, mean and CLS pooling, padded batches).

use std::collections::HashMap;
use std::path::Path;

use multiret_model::e5s1::{self, BinVocab, MatrixFormat};
use multiret_model::{
    Arch, Config, EmbedOptions, EncodeSettings, Encoder, Model, ModelError, Pooling, Precision,
    Prefixes, Tokenizer, Weights,
};

mod common;

fn tiny_config(arch: Arch) -> Config {
    Config {
        arch,
        hidden: 64,
        layers: 2,
        heads: 4,
        ffn: 96,
        vocab: 40,
        max_pos: 34,
        type_vocab: 2,
        layer_norm_eps: 1e-12,
        pad_id: 1,
    }
}

fn tiny_weights(c: &Config, seed: u64) -> Weights {
    Weights::random(c, seed)
}

fn tiny_vocab(c: &Config) -> BinVocab {
    let mut pieces: Vec<String> = ["<s>", "<pad>", "</s>", "<unk>", "▁"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for w in [
        "▁the", "▁tower", "▁where", "▁is", "▁a", "b", "c", "▁ab", "?", "é",
    ] {
        pieces.push(w.to_string());
    }
    while pieces.len() < c.vocab {
        pieces.push(format!("▁w{}", pieces.len()));
    }
    let scores = (0..pieces.len()).map(|i| -(i as f32) * 0.1 - 1.0).collect();
    BinVocab {
        pieces,
        scores,
        bos: 0,
        eos: 2,
        pad: 1,
        unk: 3,
        norm: vec![('\u{7}', vec![]), ('\t', vec![' ']), ('É', vec!['é'])],
    }
}

#[test]
fn encoder_matches_naive_forward() {
    let seqs: Vec<Vec<u32>> = vec![
        vec![0, 5, 6, 7, 2],
        vec![0, 9, 2],
        vec![
            0, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32,
            33, 34, 35, 36, 37, 38, 39, 2,
        ],
        vec![0, 2],
    ];
    for arch in [Arch::Bert, Arch::XlmRoberta] {
        let c = tiny_config(arch);
        let w = tiny_weights(&c, 42);
        for pooling in Pooling::ALL {
            for precision in [Precision::F32, Precision::Bf16] {
                let enc = Encoder::new(&c, &w, precision).unwrap();
                let batched = enc
                    .forward(&seqs, pooling, true, multiret_kernels::Par::Threads(2))
                    .unwrap();
                for (i, s) in seqs.iter().enumerate() {
                    let want = common::naive_forward(&c, &w, s, pooling);
                    let single = enc
                        .forward(
                            std::slice::from_ref(s),
                            pooling,
                            true,
                            multiret_kernels::Par::Seq,
                        )
                        .unwrap();
                    let tol = if precision == Precision::F32 {
                        2e-5
                    } else {
                        3e-2
                    };
                    for (what, got) in [
                        ("single", &single[..]),
                        ("batched", &batched[i * c.hidden..(i + 1) * c.hidden]),
                    ] {
                        let err = got
                            .iter()
                            .zip(&want)
                            .map(|(g, w)| (*g as f64 - w).abs())
                            .fold(0.0, f64::max);
                        assert!(
                            err < tol,
                            "{arch:?} {pooling:?} {precision:?} {what} seq {i}: max error {err}"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn encoder_rejects_bad_input() {
    let c = tiny_config(Arch::Bert);
    let enc = Encoder::new(&c, &tiny_weights(&c, 1), Precision::F32).unwrap();
    let p = multiret_kernels::Par::Seq;
    assert!(matches!(
        enc.forward(&[vec![]], Pooling::Mean, true, p),
        Err(ModelError::Input(_))
    ));
    assert!(matches!(
        enc.forward(&[vec![0, 99, 2]], Pooling::Mean, true, p),
        Err(ModelError::Input(_))
    ));
    assert!(matches!(
        enc.forward(&[vec![4; 40]], Pooling::Mean, true, p),
        Err(ModelError::Input(_))
    ));
    assert!(enc.forward(&[], Pooling::Mean, true, p).unwrap().is_empty());
}

#[test]
fn e5s1_round_trip_and_bin_tokenizer() {
    let c = tiny_config(Arch::Bert);
    let w = tiny_weights(&c, 7);
    let v = tiny_vocab(&c);
    let bytes = e5s1::encode(&c, &v, &w, MatrixFormat::F32);
    let parsed = e5s1::parse(&bytes, Path::new("tiny.bin")).unwrap();
    assert_eq!(parsed.config, c);
    assert_eq!(parsed.vocab, v);
    assert_eq!(parsed.weights, w);
    // Q4_0: the dequantised matrices are within half a quantisation step of the originals.
    let q = e5s1::parse(
        &e5s1::encode(&c, &v, &w, MatrixFormat::Q4_0),
        Path::new("tiny-q4.bin"),
    )
    .unwrap();
    for (a, b) in q.weights.layers[0]
        .fi
        .w
        .chunks(32)
        .zip(w.layers[0].fi.w.chunks(32))
    {
        let amax = b.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        for (x, y) in a.iter().zip(b) {
            // One step at most (the extreme of the other sign clamps at 7), plus f16 rounding.
            assert!(
                (x - y).abs() <= amax / 8.0 * 1.01 + amax * 2e-3,
                "{x} vs {y}"
            );
        }
    }
    assert_eq!(q.weights.pos, w.pos, "position table stays f32");
    // The rebuilt tokenizer: normalisation map (tab -> space, É -> é, BEL removed), space
    // collapsing, Metaspace, Viterbi, truncation.
    let t = Tokenizer::from_bin(&parsed.vocab).unwrap();
    assert_eq!(
        t.encode("where is\t the  tower?", 34).unwrap(),
        vec![0, 7, 8, 5, 6, 13, 2]
    );
    assert_eq!(t.encode("ab\u{7}É", 34).unwrap(), vec![0, 12, 14, 2]);
    // White space alone makes no word (the genuine tokenizer, split on white space as
    // transformers builds it, gives `<s> </s>` for the empty text too).
    assert_eq!(t.encode("", 34).unwrap(), vec![0, 2]);
    assert_eq!(t.encode("where ", 34).unwrap(), vec![0, 7, 2]);
    assert_eq!(t.encode("zzz", 34).unwrap(), vec![0, 4, 3, 2]);
    assert_eq!(t.encode("a a a a a a", 4).unwrap(), vec![0, 9, 9, 2]);
}

#[test]
fn e5s1_truncated_and_corrupted_files_are_errors() {
    let c = tiny_config(Arch::Bert);
    let bytes = e5s1::encode(
        &c,
        &tiny_vocab(&c),
        &tiny_weights(&c, 3),
        MatrixFormat::Q4_0,
    );
    let path = Path::new("model.bin");
    // Every truncation point in the header and directory, and a sample of the tensor data.
    let cuts: Vec<usize> = (0..2000.min(bytes.len()))
        .chain((2000..bytes.len()).step_by(97))
        .collect();
    for cut in cuts {
        let Err(err) = e5s1::parse(&bytes[..cut], path) else {
            panic!("truncation at {cut} accepted")
        };
        assert!(err.to_string().starts_with("model.bin: "), "{err}");
    }
    let patch = |at: usize, val: &[u8]| {
        let mut b = bytes.clone();
        b[at..at + val.len()].copy_from_slice(val);
        match e5s1::parse(&b, path) {
            Ok(_) => panic!("patch at {at} was accepted"),
            Err(e) => e.to_string(),
        }
    };
    assert!(patch(0, b"E5S2").contains("bad magic"));
    assert!(patch(4, &2u32.to_le_bytes()).contains("version 2"));
    assert!(patch(8, &(-5i32).to_le_bytes()).contains("hidden"));
    let e = patch(8, &(63i32).to_le_bytes());
    assert!(e.contains("not divisible"), "{e}");
    assert!(patch(40, &16i32.to_le_bytes()).contains("quantisation block"));
    assert!(patch(36, &(-1.0f32).to_le_bytes()).contains("layer_norm_eps"));
    // A NaN in an f32 tensor (the position table) is refused.
    let pos_off = find_tensor_offset(&bytes, "emb.pos");
    assert!(patch(pos_off, &f32::NAN.to_le_bytes()).contains("NaN"));
}

/// The data offset of a tensor, read from the directory of an encoded file.
fn find_tensor_offset(bytes: &[u8], name: &str) -> usize {
    let needle = [&(name.len() as u16).to_le_bytes()[..], name.as_bytes()].concat();
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle.as_slice())
        .expect("tensor in directory")
        + needle.len();
    u64::from_le_bytes(bytes[at + 5..at + 13].try_into().unwrap()) as usize
}

fn word_level_tokenizer(vocab: &BinVocab) -> Tokenizer {
    use tokenizers::models::wordlevel::WordLevel;
    let map: HashMap<String, u32> = vocab
        .pieces
        .iter()
        .enumerate()
        .map(|(i, p)| (p.trim_start_matches('▁').to_string(), i as u32))
        .collect();
    let model = WordLevel::builder()
        .vocab(map.into_iter().collect())
        .unk_token("<unk>".into())
        .build()
        .unwrap();
    let mut t = tokenizers::Tokenizer::new(model);
    t.with_pre_tokenizer(Some(tokenizers::pre_tokenizers::whitespace::Whitespace {}));
    t.with_post_processor(Some(
        tokenizers::processors::template::TemplateProcessing::builder()
            .try_single("<s> $A </s>")
            .unwrap()
            .special_tokens(vec![("<s>", 0), ("</s>", 2)])
            .build()
            .unwrap(),
    ));
    Tokenizer::from_tokenizers(&t).unwrap()
}

#[test]
fn hf_directory_round_trip() {
    let dir = std::env::temp_dir().join(format!("multiret-hf-{}", std::process::id()));
    for arch in [Arch::Bert, Arch::XlmRoberta] {
        let c = tiny_config(arch);
        let v = tiny_vocab(&c);
        let settings = EncodeSettings::new(
            Pooling::Cls,
            true,
            Prefixes {
                query: "q: ".into(),
                passage: String::new(),
            },
        );
        let m = Model {
            name: "tiny".into(),
            config: c.clone(),
            settings: settings.clone(),
            tokenizer: word_level_tokenizer(&v),
            weights: tiny_weights(&c, 11),
            head: Default::default(),
        };
        m.save_hf_dir(&dir, &Default::default()).unwrap();
        let back = Model::load(dir.to_str().unwrap(), Path::new("/nonexistent")).unwrap();
        assert_eq!(back.config, c);
        assert_eq!(back.settings, settings);
        assert_eq!(back.weights, m.weights);
        let texts = ["where is the tower", "a b c"];
        let e1 = m
            .embedder(Precision::F32)
            .unwrap()
            .embed(
                &texts,
                multiret_model::Kind::Query,
                EmbedOptions::default(),
                &|_| {},
            )
            .unwrap();
        let e2 = back
            .embedder(Precision::F32)
            .unwrap()
            .embed(
                &texts,
                multiret_model::Kind::Query,
                EmbedOptions::default(),
                &|_| {},
            )
            .unwrap();
        assert_eq!(e1, e2);
        assert_eq!(
            back.tokenize(&["tower"], multiret_model::Kind::Query)
                .unwrap()[0],
            vec![0, 3, 3, 6, 2],
            "prefix 'q: ' is unknown here, then 'tower'"
        );
    }
    // Broken pieces: a missing tensor, a truncated safetensors file, a bad config.
    let st = dir.join("model.safetensors");
    let bytes = std::fs::read(&st).unwrap();
    std::fs::write(&st, &bytes[..bytes.len() / 2]).unwrap();
    let err = Model::load_hf_dir(&dir).unwrap_err().to_string();
    assert!(
        err.contains("model.safetensors") && err.contains("not a valid safetensors"),
        "{err}"
    );
    std::fs::write(
        dir.join("config.json"),
        "{\"model_type\": \"bert\", \"hidden_size\": 64",
    )
    .unwrap();
    let err = Model::load_hf_dir(&dir).unwrap_err().to_string();
    assert!(
        err.contains("config.json") && err.contains("invalid configuration"),
        "{err}"
    );
    std::fs::write(dir.join("config.json"), c_json_with_act("relu")).unwrap();
    let err = Model::load_hf_dir(&dir).unwrap_err().to_string();
    assert!(err.contains("hidden_act"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

fn c_json_with_act(act: &str) -> String {
    tiny_config(Arch::Bert)
        .to_hf_json()
        .replace("\"gelu\"", &format!("\"{act}\""))
}

#[test]
fn missing_tensor_is_named() {
    let c = tiny_config(Arch::Bert);
    let w = tiny_weights(&c, 5);
    let mut named: std::collections::BTreeMap<String, Vec<f32>> = w
        .named(&c)
        .into_iter()
        .map(|(n, _, d)| (n, d.to_vec()))
        .collect();
    named.remove("encoder.layer.1.output.LayerNorm.bias");
    let err = Weights::from_named(&c, named.clone(), Path::new("x.safetensors"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("missing tensor encoder.layer.1.output.LayerNorm.bias"),
        "{err}"
    );
    named.insert("encoder.layer.1.output.LayerNorm.bias".into(), vec![0.0; 3]);
    let err = Weights::from_named(&c, named, Path::new("x.safetensors"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("has 3 elements"), "{err}");
}

/// An HF directory's f32 word table is memory-mapped, not copied or scanned at load; a
/// non-finite value in it is an error naming the file and the token when a batch uses that
/// row, and rows without one embed as usual.
#[test]
fn mapped_word_table_rows_are_checked_when_used() {
    let dir = std::env::temp_dir().join(format!("multiret-hf-nan-{}", std::process::id()));
    let c = tiny_config(Arch::Bert);
    let v = tiny_vocab(&c);
    let mut weights = tiny_weights(&c, 5);
    let tower = v.pieces.iter().position(|p| p == "▁tower").unwrap();
    weights.word[tower * c.hidden + 7] = f32::NAN;
    let m = Model {
        name: "tiny".into(),
        config: c.clone(),
        settings: EncodeSettings::new(Pooling::Mean, true, Prefixes::none()),
        tokenizer: word_level_tokenizer(&v),
        weights,
        head: Default::default(),
    };
    m.save_hf_dir(&dir, &Default::default()).unwrap();
    let back = Model::load_hf_dir(&dir).unwrap();
    assert!(back.weights.word.is_mapped());
    let emb = back.embedder(Precision::F32).unwrap();
    let run = |t: &str| {
        emb.embed(
            &[t],
            multiret_model::Kind::Query,
            EmbedOptions::default(),
            &|_| {},
        )
    };
    assert!(run("where is a b").is_ok());
    let err = run("where is the tower").unwrap_err().to_string();
    assert!(
        err.contains("model.safetensors")
            && err.contains(&format!("token id {tower}"))
            && err.contains("NaN"),
        "{err}"
    );
    drop(emb);
    drop(back);
    let _ = std::fs::remove_dir_all(&dir);
}
