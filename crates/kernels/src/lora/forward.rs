//! The LoRA forward on wgpu: `t = x·Aᵀ`, then `x·Wᵀ + bias + s·t·Bᵀ` in one pass over the
//! base weight (f32 or quantized).

use burn::backend::wgpu::CubeTensor;

use super::launch::{LowRank, Strided, Weight, matmul};

/// `x·Wᵀ + bias + s·(x·Aᵀ)·Bᵀ` for `x [m, k]`, `a [r, k]`, `b [n, r]`, `bias [n]`.
pub fn launch(
    x: CubeTensor,
    w: Weight,
    a: CubeTensor,
    b: CubeTensor,
    bias: CubeTensor,
    scaling: f32,
) -> CubeTensor {
    // One contiguous view of x serves both passes.
    let x = Strided::of(x, false);
    let t = matmul(
        x.clone(),
        Weight::F32(Strided::of(a, false)),
        None,
        None,
        1.0,
    );
    let low = LowRank {
        t,
        f: Strided::of(b, false),
        scaling,
    };
    matmul(x, w, Some(low), Some(bias), 1.0)
}

/// The f32 base weight `[n, k]` as the kernel reads it.
pub fn f32_weight(w: CubeTensor) -> Weight {
    Weight::F32(Strided::of(w, false))
}
