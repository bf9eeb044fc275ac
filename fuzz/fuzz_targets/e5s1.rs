//! Arbitrary bytes as an E5S1 model file: the parser must return an error or a model, never
//! panic, hang or allocate without bound.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = multiret_model::e5s1::parse(data, std::path::Path::new("fuzz.bin"));
});
