//! The gradients of both LoRA factors on wgpu in one launch of `shaders/lora_factors.wgsl`:
//! `dA = s·uᵀ·x` and `dB = s·gᵀ·t`, where CubeCL's matmul takes two (each an output with a
//! side of length r). `schedule::factors_in_one` says when the backward asks for it.

use burn::backend::DType;
use burn::backend::wgpu::{
    CubeTensor, KernelSource, SourceKernel, SourceTemplate, into_contiguous,
};
use burn_cubecl::cubecl::prelude::KernelId;
use burn_cubecl::cubecl::{CubeCount, CubeDim};

use super::args::arguments;
use crate::shaders;

/// `lora_factors.wgsl` for r rounded up to 4 (one pipeline each).
struct LoraFactors {
    ranks: usize,
}

impl KernelSource for LoraFactors {
    fn source(&self) -> SourceTemplate {
        SourceTemplate::new(shaders::lora_factors(self.ranks))
    }

    fn id(&self) -> KernelId {
        KernelId::new::<Self>().info(self.ranks)
    }

    fn lang(&self) -> &'static str {
        "wgsl"
    }
}

/// `(s·uᵀ·x [r, k], s·gᵀ·t [n, r])` for `x [m, k]`, `g [m, n]` and `t`, `u` `[m, r]`, r at
/// most [`shaders::FACTOR_RANKS_MAX`].
pub fn launch(
    x: CubeTensor,
    g: CubeTensor,
    t: CubeTensor,
    u: CubeTensor,
    scaling: f32,
) -> (CubeTensor, CubeTensor) {
    let [x, g, t, u] = [x, g, t, u].map(into_contiguous);
    let (m, k) = (x.meta.shape()[0], x.meta.shape()[1]);
    let (n, r) = (g.meta.shape()[1], t.meta.shape()[1]);
    let client = x.client.clone();
    let fresh = |rows: usize, cols: usize| {
        CubeTensor::new_contiguous(
            client.clone(),
            x.device.clone(),
            [rows, cols].into(),
            client.empty(rows * cols * 4),
            DType::F32,
        )
    };
    let (da, db) = (fresh(r, k), fresh(n, r));
    let params = [m, k, n, r, scaling.to_bits() as usize];
    // `CW` columns per workgroup (the shader's), dA's then dB's.
    let columns = shaders::FACTOR_COLUMNS;
    let workgroups = k.div_ceil(columns) + n.div_ceil(columns);
    client.launch(
        Box::new(SourceKernel::new(
            LoraFactors {
                ranks: r.next_multiple_of(4),
            },
            CubeDim::new_1d(256),
        )),
        CubeCount::Static(workgroups as u32, 1, 1),
        arguments(&[&x, &u, &g, &t, &da, &db], &params),
    );
    (da, db)
}
