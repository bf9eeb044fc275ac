//! The `multiret` command: a thin layer over the library crates.

use clap::{Parser, Subcommand};

mod eval;
mod model_cmd;
mod progress;
mod sample;

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
        Command::Model(cmd) => model_cmd::run_model(&cmd),
    }
}
