//! `mentalqlm`: classify mental-health signals in text with a small LLM, on any GPU, on the
//! CPU, or in the browser. Results are for research and screening support, never a diagnosis.

mod answer_journal;
mod classifiers;
mod commands;
mod device;
mod endpoint;
mod explainer;
mod model_arg;
mod paths;
mod runner;
mod serve;

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
    /// Print the token ids (and pieces) of texts, to check a tokenizer against other tools.
    Tokenize(commands::tokenize::Args),
    /// Classify texts for a task: label and per-label probabilities (--explain for reasoning).
    Classify(commands::classify::Args),
    /// Evaluate on IMHI / DEP-SEVERITY: predictions JSONL and a report beside the paper's figures.
    Eval(commands::eval::Args),
    /// Prune training data: answer-perplexity outliers, then a diverse k-center subset.
    Select(commands::select::Args),
    /// Train: `train sft` is MentalQLM's stage 1 (instruction tuning), `train classifier` stage 2 (LoRA + dense head).
    #[command(subcommand)]
    Train(commands::train::TrainCommand),
    /// Compare two predictions files' explanations with an LLM judge at an OpenAI-compatible endpoint (each pair asked in both orders).
    Judge(commands::judge::Args),
    /// Score a predictions JSONL file (this tool's or LLaMA-Factory's) with the label rules.
    Score(commands::score::Args),
    /// Benchmarks: `bench kernels` (our LoRA kernels against Burn's LoRA and matmul), `bench e2e` (prefill, generation and a training step, the runtime's side of bench/run.py).
    #[command(subcommand)]
    Bench(commands::bench::BenchCommand),
    /// An OpenAI-compatible server (/v1/chat/completions, /v1/completions, /v1/models) with /v1/classify, adapters resident, continuous batching.
    Serve(serve::Args),
}

/// glibc serves every allocation over its mmap threshold (128 KiB, raised adaptively) with
/// fresh pages and unmaps them on free, so each tensor of a CPU forward pass faulted in and
/// zeroed its memory again: about 10% of a prefill in `perf`. Up to 32 MiB (glibc's ceiling
/// for this knob) allocations now come from the heap and are reused, and the heap is never
/// trimmed (-1, as `man mallopt` says), so freed memory stays with the process: a training
/// step's activations (3.5 GB for the default model) are not zeroed anew every step.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_freed_memory() {
    // SAFETY: mallopt only sets allocator parameters; it is called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, -1);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_freed_memory() {}

/// Commands that print to stdout and use no sockets end quietly when stdout is closed
/// (`mentalqlm logits ... | head`), as Unix tools do, instead of panicking in `println!`:
/// SIGPIPE goes back to its default. `serve` and `eval --endpoint` write to sockets, where
/// Rust's ignored SIGPIPE turns a closed connection into an error to handle, so they keep it.
#[cfg(unix)]
fn quiet_on_closed_stdout() {
    // SAFETY: resets one signal's disposition before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

#[cfg(not(unix))]
fn quiet_on_closed_stdout() {}

fn main() {
    if std::env::var("MENTALQLM_MALLOPT").as_deref() != Ok("0") {
        keep_freed_memory();
    }
    let cli = Cli::parse();
    if matches!(
        cli.command,
        Command::Generate(_)
            | Command::Logits(_)
            | Command::Tokenize(_)
            | Command::Classify(_)
            | Command::Score(_)
    ) {
        quiet_on_closed_stdout();
    }
    // The run-time switches, read from the environment here and nowhere else
    // (docs/settings.md), then installed for the library.
    let (settings, notes) =
        kernels::settings::Settings::from_variables(|name| std::env::var(name).ok());
    for note in notes {
        eprintln!("mentalqlm: {note}");
    }
    kernels::settings::install(settings);
    // On a worker of the CPU backend's thread pool, so that its parallel products start at
    // once instead of waking a worker and sleeping until it is done (`on_worker`).
    let result: Result<()> = kernels::cpu::on_worker(move || match cli.command {
        Command::Generate(args) => commands::generate::run(args),
        Command::Logits(args) => commands::logits::run(args),
        Command::Tokenize(args) => commands::tokenize::run(args),
        Command::Classify(args) => commands::classify::run(args),
        Command::Eval(args) => commands::eval::run(args),
        Command::Score(args) => commands::score::run(args),
        Command::Judge(args) => commands::judge::run(args),
        Command::Select(args) => commands::select::run(args),
        Command::Train(cmd) => commands::train::run(cmd),
        Command::Bench(cmd) => commands::bench::run(cmd),
        Command::Serve(args) => serve::run(args),
    });
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
