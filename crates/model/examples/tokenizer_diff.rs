//! How often the `.bin`-only Unigram tokenizer differs from the genuine `tokenizer.json`:
//! reads the texts of a `multiret eval --dump-texts` file (JSONL with a `text` field) and
//! counts the texts whose ids differ.
//!
//! ```text
//! multiret eval --dataset xquad-r --dump-texts texts.jsonl
//! cargo run --release -p multiret-model --example tokenizer_diff -- texts.jsonl
//! ```

use multiret_model::{e5s1, Model, Tokenizer};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: tokenizer_diff TEXTS.jsonl")?;
    let cache = multiret_model::default_cache_dir();
    let model = Model::load("e5-small", &cache)?;
    let parsed = e5s1::load(&cache.join("e5-small").join("model.bin"))?;
    let bin = Tokenizer::from_bin(&parsed.vocab)?;
    let max = model.config.max_tokens();
    let (mut n, mut diff) = (0usize, 0usize);
    let mut by_lang = std::collections::BTreeMap::<String, (usize, usize)>::new();
    for line in std::fs::read_to_string(&path)?.lines() {
        let v: serde_json::Value = serde_json::from_str(line)?;
        let text = v["text"].as_str().ok_or("no text field")?;
        let lang = v["lang"].as_str().unwrap_or("?").to_string();
        let same = model.tokenizer.encode(text, max)? == bin.encode(text, max)?;
        n += 1;
        let e = by_lang.entry(lang).or_default();
        e.0 += 1;
        if !same {
            diff += 1;
            e.1 += 1;
        }
    }
    // Decomposed diacritics: the genuine normaliser composes sequences, the per-code-point map
    // of the .bin cannot.
    for probe in [
        "Vie\u{0302}\u{0323}t Nam",
        "Vi\u{1EC7}t Nam",
        "\u{0627}\u{064E}\u{0644}",
    ] {
        let (a, b) = (model.tokenizer.encode(probe, max)?, bin.encode(probe, max)?);
        let mark = if a == b { "" } else { "  <- differs" };
        println!("{probe:?}: genuine {a:?}, bin {b:?}{mark}");
    }
    println!(
        "{diff} of {n} texts ({:.3}%) tokenised differently",
        100.0 * diff as f64 / n as f64
    );
    for (lang, (t, d)) in by_lang {
        if d > 0 {
            println!("  {lang}: {d} of {t}");
        }
    }
    Ok(())
}
