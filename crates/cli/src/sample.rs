//! `multiret sample`: draw training batches and print them, one JSON object per line:
//! `{"batch":i,"kind":"mono"|"cross"|"mixed"|"group","pairs":[{"group":..,"query_lang":..,"passage_lang":..}]}`
//! (plus `"corpus"` when several corpora are mixed).

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{ensure, Context};
use multiret_sampler::{
    load_train, Corpus, LoadOptions, MmarcoOptions, PassageUnit, Sampler, SamplerConfig,
    SamplerState,
};

use crate::args::{show_default, DataDirArgs, PassageArgs, PassageChoice, SamplerArgs};

/// Arguments of `multiret sample`.
#[derive(clap::Args, Debug, Clone)]
#[command(
    mut_arg("passage", |a| show_default(a, PassageChoice::name_of(PassageUnit::default()))),
    mut_arg("max_negatives", |a| show_default(a, MmarcoOptions::default().max_negatives)),
)]
pub struct SampleArgs {
    /// Training data: `mlqa-r`, `xquad-r` (inside --data-dir), or a path (a directory of
    /// LANG.json, a .jsonl file, or an mMARCO directory with triples.tsv). Several corpora are
    /// mixed with commas, optionally weighted: `mlqa-r:2,extra.jsonl:1` (default weights: the
    /// corpus sizes).
    #[arg(long, value_name = "SPEC")]
    pub train: String,
    #[command(flatten)]
    pub sampler: SamplerArgs,
    /// Pairs per batch.
    #[arg(long, value_name = "N")]
    pub batch_size: usize,
    /// Number of batches to print.
    #[arg(long, value_name = "K")]
    pub batches: u64,
    /// Seed of every random choice.
    #[arg(long, value_name = "S", default_value_t = 0)]
    pub seed: u64,
    #[command(flatten)]
    pub data: DataDirArgs,
    #[command(flatten)]
    pub passage: PassageArgs,
    /// Hard negatives kept per query of mMARCO corpora.
    #[arg(long)]
    pub max_negatives: Option<usize>,
    /// Data-parallel shard: this worker's rank (prints batches i with i % world == rank).
    #[arg(long, default_value_t = 0)]
    pub rank: u64,
    /// Data-parallel shard: number of workers.
    #[arg(long, default_value_t = 1)]
    pub world: u64,
    /// Resume from a sampler state saved by --save-state (the other flags must match it).
    #[arg(long, value_name = "FILE")]
    pub resume: Option<PathBuf>,
    /// Write the sampler state after the last batch to FILE (JSON).
    #[arg(long, value_name = "FILE")]
    pub save_state: Option<PathBuf>,
}

/// Loads the corpora and builds (or resumes) the sampler the arguments describe.
pub fn build(args: &SampleArgs) -> anyhow::Result<(Vec<Corpus>, Sampler)> {
    let kind = args.sampler.kind()?;
    let mut mmarco = MmarcoOptions::default();
    if let Some(n) = args.max_negatives {
        mmarco.max_negatives = n;
    }
    let options = LoadOptions {
        unit: args.passage.unit_or(PassageUnit::default()),
        mmarco,
        context_negatives: false,
    };
    let (corpora, weights) = load_train(&args.train, &args.data.dir(), &options)
        .with_context(|| format!("loading --train {}", args.train))?;
    let config = SamplerConfig {
        kind,
        batch_size: args.batch_size,
        seed: args.seed,
        weights,
    };
    let sampler = match &args.resume {
        Some(path) => {
            let state = read_state(path)?;
            ensure!(
                state.config == config,
                "{}: saved with {:?}, but the flags give {:?}",
                path.display(),
                state.config,
                config
            );
            ensure!(
                (state.rank, state.world) == (args.rank, args.world),
                "{}: saved for shard {} of {}, but the flags give {} of {}",
                path.display(),
                state.rank,
                state.world,
                args.rank,
                args.world
            );
            Sampler::resume(&corpora, &state)
                .with_context(|| format!("resuming from {}", path.display()))?
        }
        None => Sampler::new(&corpora, config)?.shard(args.rank, args.world)?,
    };
    Ok((corpora, sampler))
}

fn read_state(path: &Path) -> anyhow::Result<SamplerState> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: not a sampler state", path.display()))
}

/// Runs `multiret sample`, printing the batches to `out`; a summary of each corpus goes to
/// stderr. A closed output (broken pipe, e.g. `| head`) ends the run without error.
pub fn run_to(args: &SampleArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let (corpora, mut sampler) = build(args)?;
    for c in &corpora {
        eprintln!(
            "corpus {}: {} groups in {} languages ({}), {} groups in one language only, {} \
             records skipped",
            c.name(),
            c.len(),
            c.languages().len(),
            c.languages().join(","),
            c.single_language_groups(),
            c.stats().skipped_total()
        );
    }
    let mut out = BufWriter::new(out);
    let written = (|| -> anyhow::Result<()> {
        for _ in 0..args.batches {
            let batch = sampler.next_batch();
            serde_json::to_writer(&mut out, &batch.record(&corpora)?)?;
            out.write_all(b"\n")?;
        }
        out.flush()?;
        Ok(())
    })();
    if let Err(e) = written {
        let broken_pipe = e.chain().any(|c| {
            c.downcast_ref::<std::io::Error>()
                .map(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
                .or_else(|| {
                    c.downcast_ref::<serde_json::Error>()
                        .map(|j| j.io_error_kind() == Some(std::io::ErrorKind::BrokenPipe))
                })
                .unwrap_or(false)
        });
        if broken_pipe {
            return Ok(());
        }
        return Err(e);
    }
    if let Some(path) = &args.save_state {
        let json = serde_json::to_string_pretty(&sampler.state())?;
        std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// Runs `multiret sample`, printing the batches to stdout.
pub fn run(args: &SampleArgs) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut lock = stdout.lock();
    run_to(args, &mut lock)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: SampleArgs,
    }

    fn temp_path(name: &str) -> PathBuf {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("multiret-sample-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join(name)
    }

    fn temp_jsonl() -> PathBuf {
        let path = temp_path("tiny.jsonl");
        let mut text = String::new();
        for g in 0..6 {
            for lang in ["en", "de", "fr"] {
                text.push_str(&format!(
                    "{{\"group\":\"g{g}\",\"lang\":\"{lang}\",\"query\":\"q\",\"positive\":\"p\"}}\n"
                ));
            }
        }
        std::fs::write(&path, text).unwrap();
        path
    }

    fn parse(extra: &[&str]) -> SampleArgs {
        let path = temp_jsonl();
        let mut argv = vec!["sample", "--train", path.to_str().unwrap()];
        argv.extend_from_slice(extra);
        Cli::try_parse_from(argv).unwrap().args
    }

    fn lines(args: &SampleArgs) -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        run_to(args, &mut out).unwrap();
        String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn prints_one_json_object_per_batch() {
        let args = parse(&[
            "--sampler",
            "hybrid",
            "--alpha",
            "0.5",
            "--batch-size",
            "3",
            "--batches",
            "20",
        ]);
        let out = lines(&args);
        assert_eq!(out.len(), 20);
        for (i, b) in out.iter().enumerate() {
            assert_eq!(b["batch"], i as u64);
            let kind = b["kind"].as_str().unwrap();
            assert!(kind == "mono" || kind == "cross");
            let pairs = b["pairs"].as_array().unwrap();
            assert_eq!(pairs.len(), 3);
            for p in pairs {
                let (q, d) = (
                    p["query_lang"].as_str().unwrap(),
                    p["passage_lang"].as_str().unwrap(),
                );
                assert_eq!(kind == "mono", q == d);
                assert!(p["group"].as_str().unwrap().starts_with('g'));
            }
        }
        assert!(out.iter().all(|b| b.get("corpus").is_none()));
    }

    #[test]
    fn resume_continues_the_stream() {
        let all = lines(&parse(&[
            "--sampler",
            "cross",
            "--batch-size",
            "2",
            "--batches",
            "10",
        ]));
        let state = temp_path("state.json");
        let s = state.to_str().unwrap();
        let first = lines(&parse(&[
            "--sampler",
            "cross",
            "--batch-size",
            "2",
            "--batches",
            "4",
            "--save-state",
            s,
        ]));
        let rest = lines(&parse(&[
            "--sampler",
            "cross",
            "--batch-size",
            "2",
            "--batches",
            "6",
            "--resume",
            s,
        ]));
        assert_eq!([first, rest].concat(), all);
        let mismatch = parse(&[
            "--sampler",
            "mono",
            "--batch-size",
            "2",
            "--batches",
            "1",
            "--resume",
            s,
        ]);
        assert!(run_to(&mismatch, &mut Vec::new()).is_err());
    }

    #[test]
    fn rejects_bad_arguments() {
        let bad_alpha = parse(&[
            "--sampler",
            "mono",
            "--alpha",
            "0.3",
            "--batch-size",
            "2",
            "--batches",
            "1",
        ]);
        assert!(run_to(&bad_alpha, &mut Vec::new()).is_err());
        let too_big = parse(&["--sampler", "mono", "--batch-size", "7", "--batches", "1"]);
        let err = run_to(&too_big, &mut Vec::new()).unwrap_err();
        assert!(format!("{err:#}").contains("at least 7 groups"), "{err:#}");
        let alpha_range = parse(&[
            "--sampler",
            "hybrid",
            "--alpha",
            "1.5",
            "--batch-size",
            "2",
            "--batches",
            "1",
        ]);
        assert!(run_to(&alpha_range, &mut Vec::new()).is_err());
    }
}
