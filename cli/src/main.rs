//! `mentalqlm`: classify mental-health signals in text with a small LLM, on any GPU, on the
//! CPU, or in the browser. Results are for research and screening support, never a diagnosis.

mod commands;
mod device;
mod model_arg;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "mentalqlm", version, about, long_about = None)]
#[command(after_help = "Results are for research and screening support, not a diagnosis.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Answer chat prompts with the model (ChatML), streaming the text.
    Generate(commands::generate::Args),
    /// Print the last position's logits for given token ids as JSON (debugging).
    Logits(commands::logits::Args),
}

fn main() {
    let cli = Cli::parse();
    let result: Result<()> = match cli.command {
        Command::Generate(args) => commands::generate::run(args),
        Command::Logits(args) => commands::logits::run(args),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
