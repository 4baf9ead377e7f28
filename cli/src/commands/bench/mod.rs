//! `mentalqlm bench`: the kernels against Burn's LoRA and matmul (`kernels`), the kernels'
//! WGSL as the runtime renders it (`shaders`), and the runtime's side of the end-to-end
//! comparison with PyTorch that `bench/run.py` drives (`inputs`, `e2e`).

mod e2e;
mod kernels;

use anyhow::Result;
use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Time the LoRA linear: base matmul, Burn's LoRA, unfused Burn ops, our fused kernels.
    Kernels(kernels::KernelArgs),
    /// Write every WGSL kernel as the runtime renders it (each weight encoding, tile and row
    /// count) to a folder, for other shader compilers to check: the browser test compiles
    /// them in Chromium, whose compiler is stricter than naga about barriers.
    Shaders(kernels::ShaderArgs),
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
        BenchCommand::Shaders(args) => kernels::write_shaders(args),
        BenchCommand::Inputs(args) => e2e::inputs(args),
        BenchCommand::E2e(args) => e2e::run(args),
    }
}
