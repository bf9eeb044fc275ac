//! The burn encoder against the inference engine of `multiret-model`.

mod common;

use burn::backend::Flex;
use burn::prelude::Backend;
use multiret_model::config::{Arch, Pooling};
use multiret_model::{EmbedOptions, Kind, Model, Precision};
use multiret_train::TrainableEncoder;

fn engine(model: &Model, ids: &[Vec<u32>]) -> Vec<f32> {
    model
        .embedder(Precision::F32)
        .unwrap()
        .embed_ids(
            ids,
            EmbedOptions {
                batch_size: 64,
                threads: 1,
            },
            &|_| {},
        )
        .unwrap()
}

fn burn_embed<B: Backend>(model: &Model, ids: &[Vec<u32>]) -> Vec<f32> {
    let device = B::Device::default();
    TrainableEncoder::<B>::from_weights(&model.config, &model.weights, &device)
        .unwrap()
        .with_settings(&model.settings)
        .embed_ids(ids, &device)
        .unwrap()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn tiny_models_match_the_engine() {
    let ids = common::random_ids(9, 2, 30, 5);
    for (arch, pooling, normalize) in [
        (Arch::Bert, Pooling::Mean, true),
        (Arch::XlmRoberta, Pooling::Cls, true),
        (Arch::Bert, Pooling::Cls, false),
        (Arch::XlmRoberta, Pooling::Mean, false),
    ] {
        let mut model = common::tiny_model(arch, pooling, 11);
        model.settings.normalize = normalize;
        let want = engine(&model, &ids);
        let got = burn_embed::<Flex>(&model, &ids);
        let d = max_diff(&want, &got);
        assert!(
            d < 1e-4,
            "{arch:?} {pooling:?} normalize={normalize}: max diff {d}"
        );
    }
}

#[test]
fn weights_round_trip_exactly() {
    for arch in [Arch::Bert, Arch::XlmRoberta] {
        let model = common::tiny_model(arch, Pooling::Mean, 3);
        let device = Default::default();
        let enc =
            TrainableEncoder::<Flex>::from_weights(&model.config, &model.weights, &device).unwrap();
        assert_eq!(enc.to_weights(), model.weights);
        let n: usize = multiret_model::weights::tensor_specs(&model.config)
            .iter()
            .map(|(_, s)| s.iter().product::<usize>())
            .sum();
        assert_eq!(enc.parameters(), n);
    }
}

#[test]
fn bad_inputs_are_errors() {
    let model = common::tiny_model(Arch::Bert, Pooling::Mean, 3);
    let device = Default::default();
    let enc =
        TrainableEncoder::<Flex>::from_weights(&model.config, &model.weights, &device).unwrap();
    assert!(enc.embed_ids(&[], &device).is_err());
    assert!(enc.embed_ids(&[vec![]], &device).is_err());
    assert!(enc.embed_ids(&[vec![2, 9999, 3]], &device).is_err());
    assert!(enc.embed_ids(&[vec![2; 41]], &device).is_err());
    let mut w = model.weights.clone();
    w.layers.pop();
    assert!(TrainableEncoder::<Flex>::from_weights(&model.config, &w, &device).is_err());
}

/// The real multilingual-E5-small: a few sequences, padded together.
#[test]
fn e5_small_matches_the_engine() {
    let model = Model::load("e5-small", &multiret_model::default_cache_dir())
        .unwrap_or_else(|e| panic!("cannot load the default model e5-small: {e}"));
    let texts = [
        "Where is the Eiffel tower?",
        "Wie hoch ist der Eiffelturm? Er ist 330 Meter hoch und steht in Paris.",
        "東京タワーはどこにありますか",
    ];
    let mut ids = model.tokenize(&texts, Kind::Query).unwrap();
    ids.extend(model.tokenize(&texts[..1], Kind::Passage).unwrap());
    let want = engine(&model, &ids);
    let got = burn_embed::<Flex>(&model, &ids);
    let d = max_diff(&want, &got);
    assert!(d < 1e-4, "e5-small: max diff {d}");
}

/// The dense layers on multiret-kernels (the CPU default) against the same layers composed
/// from burn ops: same embeddings, same loss, same gradient for every parameter.
#[test]
fn kernel_dense_layers_match_burn_ops_forward_and_backward() {
    use burn::tensor::Tensor;
    use multiret_train::{info_nce, FlexTrain};
    type B = FlexTrain;
    let device = burn::backend::flex::FlexDevice;
    for arch in [Arch::Bert, Arch::XlmRoberta] {
        let model = common::tiny_model(arch, Pooling::Mean, 21);
        let q = common::random_ids(6, 2, 17, 8);
        let d = common::random_ids(6, 3, 29, 9);
        let run = |kernels: bool, bf16: bool| {
            let enc = TrainableEncoder::<B>::from_weights(&model.config, &model.weights, &device)
                .unwrap()
                .with_settings(&model.settings)
                .with_kernels(kernels)
                .with_bf16_matmul(bf16);
            let eq = enc.encode(&q, &device).unwrap();
            let ed = enc.encode(&d, &device).unwrap();
            let loss = info_nce(eq.clone(), ed, 0.05, true);
            let grads = loss.backward();
            let mut out: Vec<(String, Vec<f32>)> = Vec::new();
            let flat = |t: Tensor<burn::backend::Flex, 2>| t.into_data().into_vec::<f32>().unwrap();
            let flat1 =
                |t: Tensor<burn::backend::Flex, 1>| t.into_data().into_vec::<f32>().unwrap();
            out.push(("embedding".into(), flat(eq.inner())));
            out.push(("pos grad".into(), flat(enc.pos.val().grad(&grads).unwrap())));
            for (i, l) in enc.layers.iter().enumerate() {
                for (name, dense) in [
                    ("q", &l.q),
                    ("k", &l.k),
                    ("v", &l.v),
                    ("ao", &l.ao),
                    ("fi", &l.fi),
                    ("fo", &l.fo),
                ] {
                    out.push((
                        format!("layer {i} {name} w grad"),
                        flat(dense.w.val().grad(&grads).unwrap()),
                    ));
                    out.push((
                        format!("layer {i} {name} b grad"),
                        flat1(dense.b.val().grad(&grads).unwrap()),
                    ));
                }
                for (name, norm) in [("aln", &l.aln), ("oln", &l.oln)] {
                    for (part, p) in [("w", &norm.w), ("b", &norm.b)] {
                        out.push((
                            format!("layer {i} {name} {part} grad"),
                            flat1(p.val().grad(&grads).unwrap()),
                        ));
                    }
                }
            }
            for (part, p) in [("w", &enc.emb_ln.w), ("b", &enc.emb_ln.b)] {
                out.push((
                    format!("embedding ln {part} grad"),
                    flat1(p.val().grad(&grads).unwrap()),
                ));
            }
            out.push((
                "word grad".into(),
                flat(enc.word.val().grad(&grads).unwrap()),
            ));
            out
        };
        let slow = run(false, false);
        // f32 kernels: round-off only. bf16 products (8-bit mantissas, f32 accumulation):
        // within a few percent of each gradient's scale.
        for (bf16, tol) in [(false, 1e-4f32), (true, 4e-2)] {
            let fast = run(true, bf16);
            for ((name, a), (_, b)) in fast.iter().zip(&slow) {
                // Key-bias gradients are zero in exact arithmetic (softmax ignores a shift
                // shared by all keys): their round-off is measured against a floor.
                let scale = b.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-3);
                let d = max_diff(a, b);
                assert!(
                    d <= tol * scale,
                    "{arch:?} bf16={bf16} {name}: max diff {d} (scale {scale})"
                );
                assert!(
                    a.iter().all(|v| v.is_finite()),
                    "{arch:?} {name}: non-finite"
                );
            }
        }
    }
}
