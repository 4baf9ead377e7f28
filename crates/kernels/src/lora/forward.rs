//! The LoRA forward on wgpu: `t = x·Aᵀ` (or a `t` given), then `x·Wᵀ + bias + s·t·Bᵀ` in
//! one pass over the base weight (f32 or quantized).

use burn::backend::wgpu::{CubeBackend, CubeTensor, into_contiguous};

use super::launch::{LowRank, Strided, Weight, matmul};
use crate::reference;

/// `x·Wᵀ + bias + s·(x·Aᵀ)·Bᵀ` for `x [m, k]`, `a [r, k]`, `b [n, r]`, `bias [n]`.
pub fn launch(
    x: CubeTensor,
    w: Weight,
    a: CubeTensor,
    b: CubeTensor,
    bias: CubeTensor,
    scaling: f32,
) -> CubeTensor {
    // `t [m, r]` has r columns: our kernel would give it one column of tiles, each walking
    // all of k alone (on an H200 the fused forward's time followed k, not the work), so it
    // goes to CubeCL's matmul, whose autotune picks a schedule for skinny outputs.
    let x = into_contiguous(x);
    let t = reference::scaled_matmul::<CubeBackend>(x.clone(), a, false, true, 1.0);
    launch_low(x, w, t, b, bias, scaling)
}

/// `x·Wᵀ + bias + s·t·Bᵀ` for a given `t = x·Aᵀ [m, r]`.
pub fn launch_low(
    x: CubeTensor,
    w: Weight,
    t: CubeTensor,
    b: CubeTensor,
    bias: CubeTensor,
    scaling: f32,
) -> CubeTensor {
    let low = LowRank {
        t,
        f: Strided::of(b, false),
        scaling,
    };
    matmul(Strided::of(x, false), w, Some(low), Some(bias), 1.0)
}

/// The f32 base weight `[n, k]` as the kernel reads it.
pub fn f32_weight(w: CubeTensor) -> Weight {
    Weight::F32(Strided::of(w, false))
}
