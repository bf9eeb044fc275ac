//! The built-in parallel QA sample: 33 questions with their answer paragraphs in five
//! languages (de, en, es, fr, zh), written for the project and compiled into the crate, so that
//! `multiret eval` works on a fresh machine with no data directory.
//!
//! The files are `crates/eval/data/sample/LANG.json` (LAReQA format), written by
//! `data/sample/generate.py` from the texts it holds.

use std::path::Path;

use crate::error::Result;
use crate::lareqa::{parse_lareqa_file, LareqaDataset};

/// The name under which the sample is evaluated (and the value of `--dataset` that selects it).
pub const SAMPLE_NAME: &str = "sample";

const FILES: [(&str, &str); 5] = [
    ("de", include_str!("../data/sample/de.json")),
    ("en", include_str!("../data/sample/en.json")),
    ("es", include_str!("../data/sample/es.json")),
    ("fr", include_str!("../data/sample/fr.json")),
    ("zh", include_str!("../data/sample/zh.json")),
];

/// The built-in sample as a dataset.
pub fn builtin_sample() -> Result<LareqaDataset> {
    let langs = FILES
        .iter()
        .map(|(lang, json)| {
            let path = Path::new("<built-in sample>").join(format!("{lang}.json"));
            parse_lareqa_file(lang, json.as_bytes(), &path)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(LareqaDataset::from_langs(
        SAMPLE_NAME.into(),
        "built-in sample".into(),
        langs,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_loads_with_no_skip_and_is_parallel() {
        let ds = builtin_sample().unwrap();
        assert_eq!(ds.langs.len(), 5);
        assert_eq!(ds.num_skipped(), 0);
        for l in &ds.langs {
            assert_eq!(l.questions.len(), 33, "{}", l.lang);
            assert_eq!(l.candidates.len(), 32, "{}", l.lang);
            assert_eq!(l.sentence_text_mismatches, 0);
            assert_eq!(l.answer_text_mismatches, 0);
        }
        // Same ids, same gold (paragraph, sentence) in every language.
        let key = |l: &crate::lareqa::LangData| -> Vec<(String, usize, usize)> {
            let mut v: Vec<_> = l
                .questions
                .iter()
                .map(|q| {
                    let c = &l.candidates[q.gold];
                    (q.id.clone(), c.paragraph, c.sentence)
                })
                .collect();
            v.sort();
            v
        };
        let en = key(&ds.langs[1]);
        for l in &ds.langs {
            assert_eq!(key(l), en, "{}", l.lang);
        }
    }
}
