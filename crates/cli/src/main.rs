//! The `multiret` command: a thin layer over the library crates.

use clap::{Parser, Subcommand};

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
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Sample(args) => sample::run(&args),
    }
}
