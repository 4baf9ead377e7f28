//! `LoraOps` on Burn's wgpu backend: our WGSL kernels where [`wgsl_ready`] says they
//! can take the tensors, the reference in Burn ops otherwise.

use burn::backend::DType;
use burn::backend::wgpu::{CubeBackend, CubeTensor};
use burn_cubecl::cubecl::RuntimeId;

use super::{backward, factors, forward, operands};
use crate::{LoraOps, reference, shaders};

/// Whether our WGSL kernels can take these tensors: a wgpu device, f32 values, and (for
/// the quantized base) 32-bit words of codes.
fn wgsl_ready(floats: &[&CubeTensor], words: Option<&CubeTensor>) -> bool {
    let device_ok = floats[0].device.runtime() == RuntimeId::Wgpu;
    let floats_ok = floats.iter().all(|t| t.dtype == DType::F32);
    let words_ok = words.is_none_or(|t| matches!(t.dtype, DType::I32 | DType::U32));
    device_ok && floats_ok && words_ok
}

impl LoraOps for CubeBackend {
    fn lora_linear(
        x: CubeTensor,
        w: CubeTensor,
        a: CubeTensor,
        b: CubeTensor,
        bias: CubeTensor,
        scaling: f32,
    ) -> CubeTensor {
        if !wgsl_ready(&[&x, &w, &a, &b, &bias], None) {
            return reference::lora_linear::<Self>(x, w, a, b, bias, scaling);
        }
        forward::launch(x, forward::f32_weight(w), a, b, bias, scaling).0
    }

    fn lora_linear_keep(
        x: CubeTensor,
        w: CubeTensor,
        a: CubeTensor,
        b: CubeTensor,
        bias: CubeTensor,
        scaling: f32,
    ) -> (CubeTensor, CubeTensor) {
        if !wgsl_ready(&[&x, &w, &a, &b, &bias], None) {
            return reference::lora_linear_keep::<Self>(x, w, a, b, bias, scaling);
        }
        forward::launch(x, forward::f32_weight(w), a, b, bias, scaling)
    }

    fn lora_grad_input_keep(
        g: CubeTensor,
        w: CubeTensor,
        a: CubeTensor,
        b: CubeTensor,
        scaling: f32,
    ) -> (CubeTensor, CubeTensor) {
        if !wgsl_ready(&[&g, &w, &a, &b], None) {
            return reference::grad_input_keep::<Self>(g, w, a, b, scaling);
        }
        backward::launch_grad_input(g, w, a, b, scaling)
    }

    /// The factors' gradients (`s·(g·B)ᵀ·x`, `s·gᵀ·(x·Aᵀ)`) each have a side of length r:
    /// our kernel would run them as a handful of tiles that each walk a long inner dimension
    /// alone (the H200 measurements in docs/kernels.md), so they go to CubeCL's autotuned matmul
    /// on every runtime, as does `gᵀ·x` when the base is trained.
    /// (Under Fusion, which the wgpu device runs, they never reach this: they stay Fusion's
    /// own ops, see `LoraOps::lora_scaled_matmul`.)
    fn lora_scaled_matmul(
        lhs: CubeTensor,
        rhs: CubeTensor,
        lhs_transposed: bool,
        rhs_transposed: bool,
        scaling: f32,
    ) -> CubeTensor {
        reference::scaled_matmul::<Self>(lhs, rhs, lhs_transposed, rhs_transposed, scaling)
    }

    fn lora_factor_grads(
        x: CubeTensor,
        g: CubeTensor,
        t: CubeTensor,
        u: CubeTensor,
        scaling: f32,
    ) -> (CubeTensor, CubeTensor) {
        let r = t.meta.shape()[1];
        if !wgsl_ready(&[&x, &g, &t, &u], None) || r > shaders::FACTOR_RANKS_MAX {
            return reference::factor_grads::<Self>(x, g, t, u, scaling);
        }
        factors::launch(x, g, t, u, scaling)
    }

    fn lora_linear_quantized(
        x: CubeTensor,
        quants: CubeTensor,
        scales: CubeTensor,
        mins: CubeTensor,
        a: CubeTensor,
        b: CubeTensor,
        bias: CubeTensor,
        bits: u32,
        scaling: f32,
    ) -> CubeTensor {
        // The WGSL kernels read 8- and 4-bit codes; half floats take the reference.
        if bits == 16 || !wgsl_ready(&[&x, &scales, &mins, &a, &b, &bias], Some(&quants)) {
            let w = reference::dequantize::<Self>(quants, scales, mins, bits);
            return reference::lora_linear::<Self>(x, w, a, b, bias, scaling);
        }
        let base = operands::Weight::Quantized {
            quants,
            scales,
            mins,
            bits,
        };
        forward::launch(x, base, a, b, bias, scaling).0
    }
}
