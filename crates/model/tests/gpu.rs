//! The engine on every device, and the GPU (feature `cuda`) against the CPU engine and the
//! reference fixtures.
//!
//! `test_device!` (candle's pattern) makes one test per device from one body: the CPU test
//! always runs; the CUDA test runs where [`gpu::available`] finds a GPU. Without one, the GPU
//! tests print `skipping: <reason>` and pass, unless `MULTIRET_REQUIRE_GPU=1` (the device
//! script sets it), which makes them fail. A build without `cuda` has the same API (its `gpu`
//! module reports that it has no CUDA), so this file always compiles. With a GPU:
//! - tiny random models (BERT and XLM-R positions, mean and CLS pooling, normalised or not,
//!   padded batches, singly, and with the attention in chunks): GPU vs CPU engine, max abs
//!   difference `< 1e-4` in f32 and `< 2e-2` in bf16;
//! - [`multiret_model::GpuEmbedder`] keeps the input order (length-sorted batching);
//! - the real `e5-small` on `me5-small-embeddings.json` (in the directory `MULTIRET_FIXTURES`,
//!   default `tests/fixtures/` beside the repository), in padded batches: cosine to the fixture
//!   embeddings `> 0.9999` in f32 and `> 0.999` in bf16, and close to the CPU engine. The model
//!   comes from `Model::load("e5-small", default_cache_dir())` (`MULTIRET_CACHE`); the test
//!   fails with the load error when it cannot be had.
use std::sync::Arc;

use multiret_kernels::Par;
use multiret_model::e5s1::BinVocab;
use multiret_model::gpu::{self, Gpu};
use multiret_model::{
    Arch, Config, EmbedOptions, EncodeSettings, Encoder, GpuEncoder, Model, ModelError, Pooling,
    Precision, Tokenizer, Weights,
};

mod common;

/// The GPU, or `None` after printing why there is none (a failure instead when
/// `MULTIRET_REQUIRE_GPU=1`). A GPU that is there but cannot be opened fails the test.
fn gpu() -> Option<Arc<Gpu>> {
    if let Err(reason) = gpu::available() {
        if std::env::var("MULTIRET_REQUIRE_GPU").as_deref() == Ok("1") {
            panic!("MULTIRET_REQUIRE_GPU=1, but there is no usable GPU: {reason}");
        }
        println!("skipping: {reason}");
        return None;
    }
    match gpu::open_gpu(0) {
        Ok(g) => {
            println!("{}", g.describe());
            Some(g)
        }
        Err(e) => panic!("CUDA is available but opening the GPU failed: {e}"),
    }
}

/// A device the engine runs on.
enum Dev {
    Cpu,
    Cuda(Arc<Gpu>),
}

impl Dev {
    /// The engine on this device, run on one batch.
    #[allow(clippy::too_many_arguments)]
    fn forward(
        &self,
        c: &Config,
        w: &Weights,
        precision: Precision,
        seqs: &[Vec<u32>],
        pooling: Pooling,
        normalize: bool,
    ) -> Result<Vec<f32>, ModelError> {
        match self {
            Dev::Cpu => Encoder::new(c, w, precision)?.forward(seqs, pooling, normalize, Par::Seq),
            Dev::Cuda(g) => {
                GpuEncoder::new(g.clone(), c, w, precision)?.forward(seqs, pooling, normalize)
            }
        }
    }

    /// The pooling modes the device runs (CUDA: the weighted sums).
    fn poolings(&self) -> Vec<Pooling> {
        Pooling::ALL
            .into_iter()
            .filter(|&p| matches!(self, Dev::Cpu) || p != Pooling::Max)
            .collect()
    }
}

/// One body, one test per device: `test_device!(body, body_cpu, body_cuda)`.
macro_rules! test_device {
    ($body:ident, $cpu:ident, $cuda:ident) => {
        #[test]
        fn $cpu() {
            $body(&Dev::Cpu);
        }

        #[test]
        fn $cuda() {
            if let Some(g) = gpu() {
                $body(&Dev::Cuda(g));
            }
        }
    };
}

/// Every pooling mode the device runs, normalised or not, f32 and bf16, against the f64
/// forward pass written independently of the crate.
fn engine_matches_the_f64_reference(dev: &Dev) {
    for arch in [Arch::Bert, Arch::XlmRoberta] {
        let c = tiny_config(arch);
        let w = tiny_weights(&c, 42);
        let seqs = random_batch(9, c.max_tokens(), c.vocab, 5);
        for precision in [Precision::F32, Precision::Bf16] {
            let tol = match precision {
                Precision::F32 => 1e-4,
                Precision::Bf16 => 3e-2,
            };
            for pooling in dev.poolings() {
                for normalize in [true, false] {
                    let got = dev
                        .forward(&c, &w, precision, &seqs, pooling, normalize)
                        .unwrap();
                    for (i, s) in seqs.iter().enumerate() {
                        let row = &got[i * c.hidden..(i + 1) * c.hidden];
                        // The reference is normalised: without normalisation, compare the
                        // direction and measure the error relative to the row's norm.
                        let norm = if normalize {
                            1.0
                        } else {
                            row.iter().map(|v| (*v as f64).powi(2)).sum::<f64>().sqrt()
                        };
                        let want = common::naive_forward(&c, &w, s, pooling);
                        let err = row
                            .iter()
                            .zip(&want)
                            .map(|(g, w)| (*g as f64 / norm - w).abs())
                            .fold(0.0, f64::max);
                        assert!(
                            err < tol,
                            "{arch:?} {precision:?} {pooling:?} normalize={normalize} seq {i}: {err}"
                        );
                    }
                }
            }
        }
    }
}

test_device!(
    engine_matches_the_f64_reference,
    engine_matches_the_f64_reference_cpu,
    engine_matches_the_f64_reference_cuda
);

/// Bad batches and weights that do not fit are errors on every device.
fn bad_input_is_an_error_on(dev: &Dev) {
    let c = tiny_config(Arch::Bert);
    let w = tiny_weights(&c, 1);
    for bad in [vec![vec![]], vec![vec![0, 99, 2]], vec![vec![4; 40]]] {
        assert!(matches!(
            dev.forward(&c, &w, Precision::F32, &bad, Pooling::Mean, true),
            Err(ModelError::Input(_))
        ));
    }
    let empty = dev.forward(&c, &w, Precision::F32, &[], Pooling::Mean, true);
    assert!(empty.unwrap().is_empty());
    let mut short = w.clone();
    short.pos.truncate(10);
    assert!(matches!(
        dev.forward(
            &c,
            &short,
            Precision::F32,
            &[vec![0, 2]],
            Pooling::Mean,
            true
        ),
        Err(ModelError::Input(_))
    ));
}

test_device!(
    bad_input_is_an_error_on,
    bad_input_is_an_error_cpu,
    bad_input_is_an_error_cuda
);

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
    fn below(&mut self, n: usize) -> usize {
        (((self.next() + 1.0) * 0.5 * n as f32) as usize).min(n - 1)
    }
}

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
        norm: vec![],
    }
}

/// Random sequences `<s> ... </s>` of 1..=max tokens (a 1-token sequence included).
fn random_batch(n: usize, max: usize, vocab: usize, seed: u64) -> Vec<Vec<u32>> {
    let mut r = Rng(seed | 1);
    (0..n)
        .map(|i| {
            let len = if i == 0 { 1 } else { 1 + r.below(max) };
            (0..len).map(|_| r.below(vocab) as u32).collect()
        })
        .collect()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(
            0.0f32,
            |m, d| if d.is_nan() { f32::INFINITY } else { m.max(d) },
        )
}

fn tolerance(p: Precision) -> f32 {
    match p {
        Precision::F32 => 1e-4,
        Precision::Bf16 => 2e-2,
    }
}

#[test]
fn tiny_models_match_the_cpu_engine() {
    let Some(g) = gpu() else { return };
    let fixed: Vec<Vec<u32>> = vec![
        vec![0, 5, 6, 7, 2],
        vec![0, 9, 2],
        (0..32)
            .map(|i| if i == 0 { 0 } else { 4 + i % 36 })
            .collect(),
        vec![0, 2],
    ];
    for arch in [Arch::Bert, Arch::XlmRoberta] {
        let c = tiny_config(arch);
        let w = tiny_weights(&c, 42);
        let random = random_batch(37, c.max_tokens(), c.vocab, 9);
        for precision in [Precision::F32, Precision::Bf16] {
            let cpu = Encoder::new(&c, &w, precision).unwrap();
            let mut enc = GpuEncoder::new(g.clone(), &c, &w, precision).unwrap();
            let tol = tolerance(precision);
            for pooling in [Pooling::Mean, Pooling::Cls] {
                for normalize in [true, false] {
                    for (name, seqs) in [("fixed", &fixed), ("random", &random)] {
                        let want = cpu.forward(seqs, pooling, normalize, Par::Seq).unwrap();
                        for max_scores in [usize::MAX, 5 * c.heads * 32 * 32, 1] {
                            enc.set_max_score_elems(max_scores);
                            let got = enc.forward(seqs, pooling, normalize).unwrap();
                            let err = max_abs_diff(&got, &want);
                            assert!(
                                err < tol,
                                "{arch:?} {precision:?} {pooling:?} normalize={normalize} \
                                 {name} max_scores={max_scores}: max abs diff {err}"
                            );
                        }
                        enc.set_max_score_elems(usize::MAX);
                        for (i, s) in seqs.iter().enumerate().take(6) {
                            let one = enc
                                .forward(std::slice::from_ref(s), pooling, normalize)
                                .unwrap();
                            let want1 = &want[i * c.hidden..(i + 1) * c.hidden];
                            let err = max_abs_diff(&one, want1);
                            assert!(
                                err < tol,
                                "{arch:?} {precision:?} {pooling:?} {name} single {i}: {err}"
                            );
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn gpu_embedder_keeps_the_input_order() {
    let Some(g) = gpu() else { return };
    let c = tiny_config(Arch::XlmRoberta);
    let model = Model {
        name: "tiny".into(),
        config: c.clone(),
        settings: EncodeSettings::e5(),
        tokenizer: Tokenizer::from_bin(&tiny_vocab(&c)).unwrap(),
        weights: tiny_weights(&c, 3),
        head: Default::default(),
    };
    let ids = random_batch(101, c.max_tokens(), c.vocab, 17);
    for precision in [Precision::F32, Precision::Bf16] {
        let want = model
            .embedder(precision)
            .unwrap()
            .embed_ids(
                &ids,
                EmbedOptions {
                    batch_size: 8,
                    threads: 1,
                },
                &|_| {},
            )
            .unwrap();
        let emb = model.gpu_embedder_on(g.clone(), precision).unwrap();
        assert_eq!(emb.dim(), c.hidden);
        let last = std::cell::Cell::new(0);
        let got = emb.embed_ids(&ids, 7, &|d| last.set(d)).unwrap();
        assert_eq!(last.get(), ids.len(), "progress reaches the total");
        let err = max_abs_diff(&got, &want);
        assert!(err < tolerance(precision), "{precision:?}: {err}");
        // Texts go through the tokenizer and the prefix, as on the CPU.
        let texts = ["where is the tower?", "a b c", "é"];
        let kind = multiret_model::Kind::Query;
        let want = model
            .embedder(precision)
            .unwrap()
            .embed(&texts, kind, EmbedOptions::default(), &|_| {})
            .unwrap();
        let got = emb.embed(&texts, kind, 2, &|_| {}).unwrap();
        assert!(max_abs_diff(&got, &want) < tolerance(precision));
    }
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

#[test]
fn real_model_matches_the_fixtures_and_the_cpu() {
    let Some(g) = gpu() else { return };
    let cache = multiret_model::default_cache_dir();
    let model = Model::load("e5-small", &cache).unwrap_or_else(|e| {
        panic!(
            "cannot load the default model e5-small from {} (set MULTIRET_CACHE to a directory \
             holding e5-small/model.bin and e5-small/tokenizer.json): {e}",
            cache.display()
        )
    });
    let rows = common::me5_rows();
    let ids: Vec<Vec<u32>> = rows.iter().map(|r| r.ids.clone()).collect();
    let dim = model.config.hidden;
    let s = &model.settings;
    for (precision, min_cos) in [(Precision::F32, 0.9999), (Precision::Bf16, 0.999)] {
        let emb = model.gpu_embedder_on(g.clone(), precision).unwrap();
        // Everything as one padded batch (512 positions), in input order; length-sorted
        // batches of 8; singly.
        let all = emb.encoder().forward(&ids, s.pooling, s.normalize).unwrap();
        let sorted8 = emb.embed_ids(&ids, 8, &|_| {}).unwrap();
        let single: Vec<f32> = ids
            .iter()
            .flat_map(|x| {
                emb.encoder()
                    .forward(std::slice::from_ref(x), s.pooling, s.normalize)
                    .unwrap()
            })
            .collect();
        let mut worst = 1.0f64;
        for (i, r) in rows.iter().enumerate() {
            for (what, got) in [("all", &all), ("sorted8", &sorted8), ("single", &single)] {
                let c = cosine(&got[i * dim..(i + 1) * dim], &r.emb);
                worst = worst.min(c);
                assert!(
                    c > min_cos,
                    "{precision:?} {what}: cosine {c} for {:?}",
                    r.text
                );
            }
        }
        let cpu = model
            .embedder(precision)
            .unwrap()
            .embed_ids(
                &ids,
                EmbedOptions {
                    batch_size: 8,
                    threads: 0,
                },
                &|_| {},
            )
            .unwrap();
        let err = max_abs_diff(&sorted8, &cpu);
        println!("{precision:?}: worst cosine to the fixtures {worst:.7}, max |GPU - CPU| {err:e}");
        assert!(
            err < tolerance(precision),
            "{precision:?}: GPU vs CPU max abs diff {err}"
        );
    }
}
