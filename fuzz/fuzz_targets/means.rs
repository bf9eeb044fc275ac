//! Arbitrary bytes as a language-means file (`multiret eval --center FILE`): the parser must
//! return an error or checked means, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = multiret_eval::LanguageMeans::parse(data, std::path::Path::new("means.json"));
});
