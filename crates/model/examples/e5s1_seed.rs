//! Writes a tiny valid E5S1 file (random weights, 8-piece vocabulary), e.g. as a fuzzing seed:
//! `cargo run --release -p multiret-model --example e5s1_seed -- fuzz/seeds/e5s1/tiny.bin`

use multiret_model::e5s1::{encode, BinVocab, MatrixFormat};
use multiret_model::{Arch, Config, Weights};

fn main() {
    let out = std::env::args().nth(1).expect("usage: e5s1_seed OUT.bin");
    let c = Config {
        arch: Arch::Bert,
        hidden: 32,
        layers: 1,
        heads: 2,
        ffn: 64,
        vocab: 8,
        max_pos: 8,
        type_vocab: 1,
        layer_norm_eps: 1e-12,
        pad_id: 1,
    };
    let w = Weights::random(&c, 1);
    let pieces: Vec<String> = ["<s>", "<pad>", "</s>", "<unk>", "▁", "▁a", "b", "c"]
        .iter()
        .map(|p| p.to_string())
        .collect();
    let vocab = BinVocab {
        scores: vec![-1.0; pieces.len()],
        pieces,
        bos: 0,
        eos: 2,
        pad: 1,
        unk: 3,
        norm: vec![('\t', vec![' '])],
    };
    std::fs::write(&out, encode(&c, &vocab, &w, MatrixFormat::Q4_0)).expect("write");
}
