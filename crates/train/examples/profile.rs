//! Times the parts of a training step on e5-small (development aid).
use std::time::Instant;

use burn::module::AutodiffModule;
use burn::optim::GradientsParams;
use burn::prelude::Backend;
use burn::tensor::backend::AutodiffBackend;
use multiret_model::{EmbedOptions, Model, Precision};
use multiret_train::{info_nce, AdamWOptimizer, AdamWParams, Encoder};

fn ids(n: usize, len: usize, seed: u32) -> Vec<Vec<u32>> {
    (0..n)
        .map(|i| {
            let mut v = vec![0u32];
            for j in 0..len - 2 {
                v.push(1000 + ((i as u32 * 7919 + j as u32 * 104729 + seed) % 200000));
            }
            v.push(2);
            v
        })
        .collect()
}

fn bench<B: AutodiffBackend>(name: &str, model: &Model, freeze: bool) {
    let device = B::Device::default();
    let enc = Encoder::<B>::from_weights(&model.config, &model.weights, &device)
        .unwrap()
        .freeze_word_embeddings(freeze);
    let q = ids(32, 16, 1);
    let d = ids(32, 40, 2);
    let tokens = 32 * 56;
    let inner = enc.valid();
    for _ in 0..2 {
        let t = Instant::now();
        let _ = inner.embed_ids(&d, &device).unwrap();
        println!("{name}: inner forward 32x40: {:.3}s", t.elapsed().as_secs_f64());
    }
    let mut optim = AdamWOptimizer::<B, Encoder<B>>::new(&AdamWParams::default());
    let mut enc = enc;
    for _ in 0..2 {
        let t = Instant::now();
        let qe = enc.forward(&enc.batch(&q, &device).unwrap());
        let de = enc.forward(&enc.batch(&d, &device).unwrap());
        let l = info_nce(qe, de, 0.05, false);
        let _ = l.clone().into_data();
        let t1 = t.elapsed().as_secs_f64();
        let g = l.backward();
        let grads = GradientsParams::from_grads(g, &enc);
        let t2 = t.elapsed().as_secs_f64();
        enc = optim.step(1e-5, enc, grads);
        // force
        let _ = enc.layers[0].q.w.val().into_data();
        let _ = enc.word.val().slice(burn::prelude::s![0..1, ..]).into_data();
        let t3 = t.elapsed().as_secs_f64();
        println!(
            "{name} freeze={freeze}: fwd {t1:.2}s bwd {:.2}s optim {:.2}s => {:.0} tok/s",
            t2 - t1,
            t3 - t2,
            tokens as f64 / t3
        );
    }
}

fn main() {
    let model = Model::load("e5-small", &multiret_model::default_cache_dir()).unwrap();
    let d = ids(32, 40, 2);
    for _ in 0..2 {
        let t = Instant::now();
        let _ = model
            .embedder(Precision::F32)
            .embed_ids(&d, EmbedOptions { batch_size: 32, threads: 2 }, &|_| {})
            .unwrap();
        println!("engine forward 32x40: {:.3}s", t.elapsed().as_secs_f64());
    }
    let which = std::env::args().nth(1).unwrap_or_default();
    let freeze = std::env::args().nth(2).as_deref() == Some("freeze");
    if which != "ndarray" {
        bench::<multiret_train::FlexTrain>("flex", &model, freeze);
    }
    if which != "flex" {
        bench::<multiret_train::NdArrayTrain>("ndarray", &model, freeze);
    }
    let _ = <burn::backend::Flex as Backend>::name(&Default::default());
}
