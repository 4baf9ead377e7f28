//! Our WGSL LoRA kernels, wired into Burn as a backend extension: on the wgpu backend the
//! fused kernel of `shaders/lora_forward.wgsl` runs; on the CPU backend (and any runtime
//! without WGSL) the same op is built from ordinary Burn ops (`reference`). Under autodiff
//! the op has its own backward (input and both LoRA factors; bias and base weight too).

pub mod lora;
pub mod reference;
pub mod shaders;

use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, backend_extension};
use burn::tensor::Tensor;

/// The LoRA linear as one backend op.
#[backend_extension(Cube, Flex, Fusion, Autodiff)]
pub trait LoraOps: Backend {
    /// `x·Wᵀ + bias + s·(x·Aᵀ)·Bᵀ` for `x [m, k]`, `w [n, k]`, `a [r, k]`, `b [n, r]`,
    /// `bias [n]`.
    #[fusion(dtype = x, shape = { let mut s = x.clone(); s[1] = w[0]; s })]
    fn lora_linear(
        x: FloatTensor<Self>,
        w: FloatTensor<Self>,
        a: FloatTensor<Self>,
        b: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        scaling: f32,
    ) -> FloatTensor<Self> {
        reference::lora_linear::<Self>(x, w, a, b, bias, scaling)
    }
}

impl LoraOps for burn::backend::Flex {}

/// `x·Wᵀ + bias + s·(x·Aᵀ)·Bᵀ` on whatever device the tensors live on: our fused kernel on
/// wgpu, Burn ops elsewhere, with gradients under autodiff.
pub fn lora_linear(
    x: Tensor<2>,
    w: Tensor<2>,
    a: Tensor<2>,
    b: Tensor<2>,
    bias: Tensor<1>,
    scaling: f64,
) -> Tensor<2> {
    Tensor::from_dispatch(<Dispatch as LoraOps>::lora_linear(
        x.into_dispatch(),
        w.into_dispatch(),
        a.into_dispatch(),
        b.into_dispatch(),
        bias.into_dispatch(),
        scaling as f32,
    ))
}
