//! The LoRA forward on wgpu: `x·Wᵀ + bias + s·t·Bᵀ` with `t = x·Aᵀ`, over an f32 or
//! quantized base, by `launch::matmul`: the one-pass kernels compute `t` in the same pass
//! over x where they are chosen, the epilogue schedule in a launch of CubeCL's matmul before.

use burn::backend::wgpu::{CubeBackend, CubeTensor};

use super::launch::matmul;
use super::operands::{LowRank, Strided, Weight};
use crate::reference;

/// `(x·Wᵀ + bias + s·t·Bᵀ, t)` with `t = x·Aᵀ [m, r]`, for `x [m, k]`, `a [r, k]`,
/// `b [n, r]`, `bias [n]`: `t` is what the gradient of B needs.
pub fn launch(
    x: CubeTensor,
    w: Weight,
    a: CubeTensor,
    b: CubeTensor,
    bias: CubeTensor,
    scaling: f32,
) -> (CubeTensor, CubeTensor) {
    let x = Strided::of(x, false);
    let low = LowRank {
        a: Strided::of(a.clone(), false),
        f: Strided::of(b, false),
        scaling,
    };
    let (y, t) = matmul(x.clone(), w, Some(low), Some(bias), 1.0);
    // `matmul` returns a projected `t` from every schedule; computed here only if it did not.
    let t = t.unwrap_or_else(|| {
        reference::scaled_matmul::<CubeBackend>(x.tensor(), a, false, true, 1.0)
    });
    (y, t)
}

/// The f32 base weight `[n, k]` as the kernel reads it.
pub fn f32_weight(w: CubeTensor) -> Weight {
    Weight::F32(Strided::of(w, false))
}
