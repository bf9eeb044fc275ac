//! The `multiret` command: a thin layer over the library crates.

use clap::{Parser, Subcommand};

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
        Command::Embed(args) => model_cmd::run_embed(&args),
        Command::Model(cmd) => model_cmd::run_model(&cmd),
    }
}
