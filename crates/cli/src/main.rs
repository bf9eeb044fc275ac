//! The `multiret` command: a thin layer over the library crates.

use clap::{Parser, Subcommand};

mod args;
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
    ///
    /// `--model ngram` or `ngram:N:DIM` is a built-in, model-free character n-gram baseline;
    /// with --embeddings, --model is only the name in the report.
    Eval(eval::EvalArgs),
    /// Embed texts (one per line, or JSONL) into an f32 .npy.
    Embed(model_cmd::EmbedArgs),
    /// Fetch or convert models.
    #[command(subcommand)]
    Model(model_cmd::ModelCommand),
}

fn main() {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Sample(args) => sample::run(args),
        Command::Train(args) => train::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Embed(args) => model_cmd::run_embed(args),
        Command::Model(cmd) => model_cmd::run_model(cmd),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
