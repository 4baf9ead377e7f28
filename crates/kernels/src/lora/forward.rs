//! Launching `shaders/lora_forward.wgsl` on Burn's wgpu backend.

use burn::backend::DType;
use burn::backend::wgpu::{
    CubeBackend, CubeTensor, KernelSource, SourceKernel, SourceTemplate, into_contiguous,
};
use burn_cubecl::cubecl::ir::attributes::BufferIOAttr;
use burn_cubecl::cubecl::prelude::KernelId;
use burn_cubecl::cubecl::server::KernelArguments;
use burn_cubecl::cubecl::{CubeCount, CubeDim, RuntimeId};

use crate::{LoraOps, reference, shaders};

/// The forward kernel for one rank bucket (the rank rounded up to a multiple of 8 sizes its
/// workgroup arrays, so each bucket is its own pipeline).
struct LoraForward {
    r_max: usize,
}

impl KernelSource for LoraForward {
    fn source(&self) -> SourceTemplate {
        SourceTemplate::new(shaders::lora_forward(self.r_max))
    }

    fn id(&self) -> KernelId {
        KernelId::new::<Self>().info(self.r_max)
    }

    fn lang(&self) -> &'static str {
        "wgsl"
    }
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
        let f32_only = [&x, &w, &a, &b, &bias]
            .iter()
            .all(|t| t.dtype == DType::F32);
        if x.device.runtime() != RuntimeId::Wgpu || !f32_only {
            return reference::lora_linear::<Self>(x, w, a, b, bias, scaling);
        }
        let [x, w, a, b, bias] = [x, w, a, b, bias].map(into_contiguous);
        let (m, k) = (x.meta.shape()[0], x.meta.shape()[1]);
        let (n, r) = (w.meta.shape()[0], a.meta.shape()[0]);
        let client = x.client.clone();
        let out = CubeTensor::new_contiguous(
            client.clone(),
            x.device.clone(),
            [m, n].into(),
            client.empty(m * n * 4),
            DType::F32,
        );
        let params = [m as u32, n as u32, k as u32, r as u32, scaling.to_bits()];
        let params = client.create_from_slice(bytemuck::cast_slice(&params));
        let io = |t: &CubeTensor| t.handle.clone().binding();
        let args = KernelArguments::new()
            .with_buffer_io(io(&x), BufferIOAttr::ReadWrite)
            .with_buffer_io(io(&w), BufferIOAttr::ReadWrite)
            .with_buffer_io(io(&a), BufferIOAttr::ReadWrite)
            .with_buffer_io(io(&b), BufferIOAttr::ReadWrite)
            .with_buffer_io(io(&bias), BufferIOAttr::ReadWrite)
            .with_buffer_io(io(&out), BufferIOAttr::ReadWrite)
            .with_buffer_io(params.binding(), BufferIOAttr::ReadWrite);
        let kernel = LoraForward {
            r_max: shaders::lora_forward_sizes(r).0,
        };
        client.launch(
            Box::new(SourceKernel::new(kernel, CubeDim::new_2d(16, 16))),
            CubeCount::Static(n.div_ceil(32) as u32, m.div_ceil(32) as u32, 1),
            args,
        );
        out
    }
}
