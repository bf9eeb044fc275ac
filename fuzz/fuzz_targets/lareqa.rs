//! Arbitrary bytes as the content of a LAReQA `LANG.json` file: the loader must return a value
//! or an error naming the file, never panic, whatever the input (broken JSON, offsets outside
//! the context or in the middle of multi-byte characters, overlapping sentence breaks, huge
//! numbers, duplicate ids, ...).
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz/xx.json");
    match multiret_eval::parse_lareqa_file("xx", data, path) {
        Ok(lang) => {
            // Every gold points at a candidate, every candidate at a paragraph.
            for q in &lang.questions {
                assert!(q.gold < lang.candidates.len());
            }
            for c in &lang.candidates {
                assert!(c.paragraph < lang.contexts.len());
            }
            let _ =
                multiret_eval::LareqaDataset::from_langs("fuzz".into(), "fuzz".into(), vec![lang]);
        }
        Err(e) => assert!(e.to_string().contains("xx.json")),
    }
});
