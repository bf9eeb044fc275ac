//! Writes a tiny valid E5S1 file (random weights, 8-piece vocabulary), e.g. as a fuzzing seed:
//! `cargo run --release -p multiret-model --example e5s1_seed -- fuzz/seeds/e5s1/tiny.bin`

use multiret_model::e5s1::{encode, BinVocab, MatrixFormat};
use multiret_model::weights::{Layer, Linear, Norm};
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
    let mut s = 1u32;
    let mut v = |n: usize| -> Vec<f32> {
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (s >> 8) as f32 / (1 << 24) as f32 - 0.5
            })
            .collect()
    };
    let h = c.hidden;
    let mut lin = |o: usize, i: usize| Linear {
        out: o,
        inp: i,
        w: v(o * i),
        b: v(o),
    };
    let layer = Layer {
        q: lin(h, h),
        k: lin(h, h),
        v: lin(h, h),
        ao: lin(h, h),
        aln: Norm {
            w: vec![1.0; h],
            b: vec![0.0; h],
        },
        fi: lin(c.ffn, h),
        fo: lin(h, c.ffn),
        oln: Norm {
            w: vec![1.0; h],
            b: vec![0.0; h],
        },
    };
    let w = Weights {
        word: vec![0.1; c.vocab * h],
        pos: vec![0.0; c.max_pos * h],
        typ: vec![0.0; h],
        emb_ln: Norm {
            w: vec![1.0; h],
            b: vec![0.0; h],
        },
        layers: vec![layer],
    };
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
