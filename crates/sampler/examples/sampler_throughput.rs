//! Sampler throughput on MLQA-R: batches per second for each sampler at batch size 100.
//!
//! ```text
//! cargo run --release -p multiret-sampler --example sampler_throughput [-- DATA_DIR [BATCHES]]
//! ```
//!
//! `DATA_DIR` defaults to `MULTIRET_DATA`, else the repository's `data/`.
//! Reports the pure sampling rate (batch of pair references), and the rate when every pair is
//! also resolved to its texts (what a trainer does before tokenising).

use std::path::PathBuf;
use std::time::Instant;

use multiret_sampler::{load_corpus, LoadOptions, Sampler, SamplerConfig, SamplerKind};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let data = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(multiret_data::env_data_dir);
    let batches: usize = match args.next() {
        Some(n) => n.parse()?,
        None => 200_000,
    };
    let t = Instant::now();
    let corpora = vec![load_corpus("mlqa-r", &data, &LoadOptions::default())?];
    println!(
        "loaded mlqa-r: {} groups, {} languages in {:.2} s",
        corpora[0].len(),
        corpora[0].languages().len(),
        t.elapsed().as_secs_f64()
    );
    let b = 100;
    for (name, kind) in [
        ("mono", SamplerKind::Mono),
        ("cross", SamplerKind::Cross),
        ("mixed", SamplerKind::Mixed),
        ("hybrid(0.5)", SamplerKind::Hybrid { alpha: 0.5 }),
    ] {
        let mut s = Sampler::new(&corpora, SamplerConfig::new(kind, b, 1))?;
        let t = Instant::now();
        let mut checksum = 0usize;
        for _ in 0..batches {
            let batch = s.next_batch();
            checksum = checksum.wrapping_add(batch.pairs[b - 1].group);
        }
        let secs = t.elapsed().as_secs_f64();
        let mut s = Sampler::new(&corpora, SamplerConfig::new(kind, b, 1))?;
        let with_texts = batches / 10;
        let t = Instant::now();
        let mut bytes = 0usize;
        for _ in 0..with_texts {
            let batch = s.next_batch();
            for p in &batch.pairs {
                let texts = corpora[0].texts(p)?;
                bytes += texts.query.len() + texts.positive.len();
            }
        }
        let secs_texts = t.elapsed().as_secs_f64();
        println!(
            "{name:>12}: {:>10.0} batches/s ({:>6.2} M pairs/s); with texts resolved: {:>9.0} \
             batches/s  [checksum {checksum}, {bytes} bytes]",
            batches as f64 / secs,
            (batches * b) as f64 / secs / 1e6,
            with_texts as f64 / secs_texts,
        );
    }
    Ok(())
}
