//! Device choice happens here, at the edge: `--device cpu|wgpu|auto`.

use anyhow::{Context, Result, bail};
use burn::tensor::Device;
use clap::ValueEnum;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DeviceArg {
    /// wgpu where a hardware adapter exists, else the CPU.
    Auto,
    /// Burn's Flex backend (pure-Rust CPU).
    Cpu,
    /// Burn's wgpu backend (Vulkan, Metal, DX12; Mesa's software Vulkan without a GPU).
    Wgpu,
}

/// The chosen device and a one-line description for the user.
pub struct Chosen {
    pub device: Device,
    pub description: String,
    /// A CPU-emulated wgpu adapter.
    pub software: bool,
}

pub fn choose(arg: DeviceArg) -> Result<Chosen> {
    let cpu = || Chosen {
        device: Device::flex(),
        description: "cpu (Burn flex)".into(),
        software: false,
    };
    match arg {
        DeviceArg::Cpu => Ok(cpu()),
        DeviceArg::Wgpu => wgpu().context("--device wgpu: no usable wgpu adapter"),
        // A software adapter (Mesa's llvmpipe, SwiftShader) runs the same kernels an order of
        // magnitude slower than the CPU backend: `auto` takes wgpu only on real hardware;
        // `--device wgpu` still forces it.
        DeviceArg::Auto => Ok(match wgpu() {
            Ok(chosen) if !chosen.software => chosen,
            Ok(chosen) => {
                let mut c = cpu();
                c.description = format!(
                    "{} (auto: the only wgpu adapter is software, {})",
                    c.description, chosen.description
                );
                c
            }
            Err(_) => cpu(),
        }),
    }
}

fn wgpu() -> Result<Chosen> {
    let (device, setup) = Device::wgpu_options()
        .init_with_setup()
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let info = setup.adapter.get_info();
    if info.name.is_empty() {
        bail!("the wgpu adapter has no name");
    }
    let software = info.device_type == burn::tensor::wgpu::wgpu::DeviceType::Cpu;
    Ok(Chosen {
        device,
        description: format!(
            "wgpu ({}, {:?}, {:?})",
            info.name, setup.backend, info.device_type
        ),
        software,
    })
}
