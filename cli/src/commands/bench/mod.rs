//! `mentalqlm bench`: the kernels against Burn's LoRA and matmul (`kernels`), and the
//! runtime's side of the end-to-end comparison with PyTorch that `bench/run.py` drives
//! (`inputs`, `e2e`).

mod e2e;
mod kernels;

use anyhow::Result;
use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Time the LoRA linear: base matmul, Burn's LoRA, unfused Burn ops, our fused kernels.
    Kernels(kernels::KernelArgs),
    /// Write the token ids every side of bench/run.py runs on: IMHI test prompts, each cut to
    /// exactly --seq tokens.
    Inputs(e2e::InputArgs),
    /// Time one end-to-end workload (prefill, generate or a LoRA training step) on the
    /// inputs of `bench inputs`, after one warm-up; prints one JSON line.
    E2e(e2e::E2eArgs),
}

pub fn run(cmd: BenchCommand) -> Result<()> {
    match cmd {
        BenchCommand::Kernels(args) => kernels::run(args),
        BenchCommand::Inputs(args) => e2e::inputs(args),
        BenchCommand::E2e(args) => e2e::run(args),
    }
}
