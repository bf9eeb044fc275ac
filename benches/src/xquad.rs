//! The XQuAD-R candidate sentences that the embedding benches encode.
//!
//! XQuAD-R (LAReQA format) holds the same 240 paragraphs in 11 languages; each `LANG.json`
//! is SQuAD JSON whose paragraphs carry a `sentences` array. The benches take sentences
//! round-robin across the languages in [`XQUAD_R_LANGS`] order: the first sentence of every
//! language, then the second of every language, and so on (a language that runs out is
//! skipped). The first 2,000 are thus about 182 parallel sentences in each of the 11
//! languages, Latin, Greek, Cyrillic, Arabic, Devanagari, Thai and CJK scripts alike.

use std::path::{Path, PathBuf};

/// The languages of XQuAD-R, in the order their sentences are interleaved.
pub const XQUAD_R_LANGS: [&str; 11] = [
    "ar", "de", "el", "en", "es", "hi", "ru", "th", "tr", "vi", "zh",
];

/// The evaluation data directory: `$MULTIRET_DATA` when set and not empty, else the
/// repository's `data/` ([`multiret_data::env_data_dir`]).
pub fn default_data_dir() -> PathBuf {
    multiret_data::env_data_dir()
}

/// The candidate sentences of one `LANG.json` of XQuAD-R, in document order.
pub fn xquad_r_language(path: &Path) -> Result<Vec<String>, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("parsing {}: {e}", path.display()))?;
    let bad = |what: &str| format!("{}: not SQuAD JSON with sentences ({what})", path.display());
    let mut out = Vec::new();
    for article in v["data"].as_array().ok_or_else(|| bad("no data array"))? {
        let paragraphs = article["paragraphs"]
            .as_array()
            .ok_or_else(|| bad("no paragraphs array"))?;
        for p in paragraphs {
            let sentences = p["sentences"]
                .as_array()
                .ok_or_else(|| bad("no sentences array"))?;
            for s in sentences {
                out.push(
                    s.as_str()
                        .ok_or_else(|| bad("non-string sentence"))?
                        .to_string(),
                );
            }
        }
    }
    Ok(out)
}

/// The first `n` XQuAD-R candidate sentences of `data_dir/xquad-r/`, taken round-robin
/// across [`XQUAD_R_LANGS`] (see the module docs); fewer when the files hold fewer.
pub fn xquad_r_sentences(data_dir: &Path, n: usize) -> Result<Vec<String>, String> {
    let dir = data_dir.join("xquad-r");
    let per_lang: Vec<Vec<String>> = XQUAD_R_LANGS
        .iter()
        .map(|l| xquad_r_language(&dir.join(format!("{l}.json"))))
        .collect::<Result<_, _>>()?;
    let mut iters: Vec<_> = per_lang.into_iter().map(Vec::into_iter).collect();
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let before = out.len();
        for it in &mut iters {
            if out.len() == n {
                break;
            }
            if let Some(s) = it.next() {
                out.push(s);
            }
        }
        if out.len() == before {
            break;
        }
    }
    Ok(out)
}
