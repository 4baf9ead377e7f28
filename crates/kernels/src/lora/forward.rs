//! Launching `shaders/lora_forward.wgsl`, over an f32 base weight or a quantized one.

use burn::backend::wgpu::{CubeTensor, KernelSource, SourceTemplate};
use burn_cubecl::cubecl::prelude::KernelId;

use super::launch;
use crate::shaders::{self, ForwardTile};

/// The forward kernel for one weight encoding and output tile.
struct LoraForward {
    bits: u32,
    tile: ForwardTile,
}

impl KernelSource for LoraForward {
    fn source(&self) -> SourceTemplate {
        SourceTemplate::new(shaders::lora_forward(self.bits, self.tile))
    }

    fn id(&self) -> KernelId {
        KernelId::new::<Self>().info((self.bits, self.tile))
    }

    fn lang(&self) -> &'static str {
        "wgsl"
    }
}

/// The base weight `[n, k]` as the kernel reads it.
pub enum Base {
    F32(CubeTensor),
    /// Packed codes with their block scales and minimums (see `crate::quant`).
    Quantized {
        quants: CubeTensor,
        scales: CubeTensor,
        mins: CubeTensor,
        bits: u32,
    },
}

/// `x·Wᵀ + bias + s·(x·Aᵀ)·Bᵀ`: `t = x·Aᵀ` by the factor kernel, then the fused kernel.
pub fn launch(
    x: CubeTensor,
    base: Base,
    a: CubeTensor,
    b: CubeTensor,
    bias: CubeTensor,
    scaling: f32,
) -> CubeTensor {
    let (m, k) = (x.meta.shape()[0], x.meta.shape()[1]);
    let r = a.meta.shape()[0];
    let n = b.meta.shape()[0];
    let (bits, weights) = match base {
        Base::F32(w) => {
            // The kernel binds scales and mins for every encoding; f32 reads neither.
            let (scales, mins) = (placeholder(&w), placeholder(&w));
            (32, vec![w, scales, mins])
        }
        Base::Quantized {
            quants,
            scales,
            mins,
            bits,
        } => (bits, vec![quants, scales, mins]),
    };
    let t = super::backward::launch_scaled_matmul(x.clone(), a, false, true, 1.0);
    let mut inputs = vec![x];
    inputs.extend(weights);
    inputs.extend([t, b, bias]);
    let tile = ForwardTile::for_rows(m);
    let kernel = LoraForward { bits, tile };
    let params = [m as u32, n as u32, k as u32, r as u32, scaling.to_bits()];
    let (wm, wn) = tile.threads();
    launch::run(
        kernel,
        inputs,
        [m, n],
        (tile.size(), (wm * wn) as u32),
        &params,
    )
}

/// A one-value f32 tensor on `like`'s device, for a binding the kernel declares but does
/// not read.
fn placeholder(like: &CubeTensor) -> CubeTensor {
    let client = like.client.clone();
    CubeTensor::new_contiguous(
        client.clone(),
        like.device.clone(),
        [1].into(),
        client.create_from_slice(bytemuck::cast_slice(&[0f32])),
        burn::backend::DType::F32,
    )
}
