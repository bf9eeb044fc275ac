//! Arbitrary bytes as the model.safetensors of a tiny BERT configuration.
#![no_main]

use libfuzzer_sys::fuzz_target;
use multiret_model::{Arch, Config, Weights};

fuzz_target!(|data: &[u8]| {
    let config = Config {
        arch: Arch::Bert,
        hidden: 8,
        layers: 1,
        heads: 2,
        ffn: 16,
        vocab: 10,
        max_pos: 16,
        type_vocab: 2,
        layer_norm_eps: 1e-12,
        pad_id: 0,
    };
    let _ = Weights::from_safetensors(&config, data, std::path::Path::new("fuzz.safetensors"));
});
