//! The `multiret` command: a thin layer over the library crates.

use clap::{Parser, Subcommand};

mod eval;
mod model_cmd;
mod progress;
mod sample;
mod train;

/// Multilingual dense retrieval: embed, evaluate, sample hybrid batches, train.
#[derive(Parser, Debug)]
#[command(name = "multiret", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Draw training batches (X-X-mono, X-Y, mixed, hybrid) and print them as JSON lines.
    Sample(sample::SampleArgs),
    /// Fine-tune an encoder with InfoNCE over mono / cross / mixed / hybrid batches.
    Train(train::TrainArgs),
    /// Evaluate a model on XQuAD-R, MLQA-R, a BEIR-style corpus or the built-in sample.
    Eval(eval::EvalArgs),
    /// Embed texts (one per line, or JSONL) into an f32 .npy.
    Embed(model_cmd::EmbedArgs),
    /// Fetch or convert models.
    #[command(subcommand)]
    Model(model_cmd::ModelCommand),
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Sample(args) => sample::run(&args),
        Command::Eval(args) => {
            let cache = args
                .cache_dir
                .clone()
                .unwrap_or_else(multiret_model::default_cache_dir);
            eval::run(&args, &|spec| {
                let enc = model_cmd::ModelEncoder::load(
                    spec,
                    &cache,
                    &args.precision,
                    args.batch_size as usize,
                )?;
                Ok(Box::new(enc))
            })
        }
        Command::Embed(args) => model_cmd::run_embed(&args),
        Command::Train(args) => {
            // `--eval NAME`: the eval command on the final checkpoint, into DIR/eval.json.
            let (data_dir, cache) = (args.data_dir.clone(), args.cache_dir.clone());
            let mut hook = |ckpt: &std::path::Path, dataset: &str, out: &std::path::Path| {
                let mut argv: Vec<std::ffi::OsString> = vec!["eval".into(), "--quiet".into()];
                argv.extend(["--model".into(), ckpt.as_os_str().to_owned()]);
                argv.extend(["--dataset".into(), dataset.into()]);
                if let Some(d) = &data_dir {
                    argv.extend(["--data-dir".into(), d.as_os_str().to_owned()]);
                }
                argv.extend(["--out".into(), out.as_os_str().to_owned()]);
                argv.extend([
                    "--markdown".into(),
                    out.with_extension("md").into_os_string(),
                ]);
                let cli = Cli::try_parse_from(std::iter::once("multiret".into()).chain(argv))
                    .map_err(|e| e.to_string())?;
                let Command::Eval(mut eval_args) = cli.command else {
                    unreachable!("parsed as eval")
                };
                eval_args.cache_dir = cache.clone();
                run(Cli {
                    command: Command::Eval(eval_args),
                })
                .map_err(|e| format!("{e:#}"))
            };
            train::run_with_eval(&args, Some(&mut hook))
        }
        Command::Model(cmd) => model_cmd::run_model(&cmd),
    }
}
