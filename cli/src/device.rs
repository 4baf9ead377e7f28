//! Device choice happens here, at the edge: `--device cpu|wgpu|auto`.

use anyhow::{Context, Result, bail};
use burn::tensor::Device;
use clap::ValueEnum;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DeviceArg {
    /// wgpu where an adapter exists, else the CPU.
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
}

pub fn choose(arg: DeviceArg) -> Result<Chosen> {
    let cpu = || Chosen {
        device: Device::flex(),
        description: "cpu (Burn flex)".into(),
    };
    match arg {
        DeviceArg::Cpu => Ok(cpu()),
        DeviceArg::Wgpu => wgpu().context("--device wgpu: no usable wgpu adapter"),
        DeviceArg::Auto => Ok(wgpu().unwrap_or_else(|_| cpu())),
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
    Ok(Chosen {
        device,
        description: format!(
            "wgpu ({}, {:?}, {:?})",
            info.name, setup.backend, info.device_type
        ),
    })
}
