//! Our WGSL LoRA kernels, wired into Burn as a backend extension. On the wgpu backend the
//! kernels of `shaders/` run: the fused forward, the input gradient (each with its low-rank
//! term fused), and the forward over a base weight kept quantized; up to 8 rows in one
//! pass (`lora_rows.wgsl`), more rows over codes in one tiled pass (`lora_matmul.wgsl`), and
//! more rows over an f32 base as CubeCL's matmul with our epilogue (`lora_epilogue.wgsl`).
//! `x·Aᵀ` and `g·B` are computed in the tiled kernel's pass over x or g where it runs, else
//! by CubeCL's matmul before it; both factor gradients in one launch (`lora_factors.wgsl`),
//! or over many rows as Fusion's own matmuls with their scaling fused in. On the CPU backend the op calls gemm (`lora/cpu.rs`, and
//! `lora/cpu_quantized/` over codes); on any other runtime it is built from ordinary Burn
//! ops (`reference`). Under autodiff the op has its own backward (input and both LoRA
//! factors; bias and base weight too, when they are tracked), which reuses the forward's
//! `x·Aᵀ`.

pub mod activation;
pub mod attention;
pub mod cpu;
pub mod inference;
pub mod lora;
pub mod nll;
pub mod quant;
pub mod reference;
pub mod schedule;
pub mod settings;
pub mod shaders;

#[cfg(cube)]
use burn::backend::fusion::custom::TensorSpec;
use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::{Backend, Dispatch, backend_extension};
use burn::tensor::{Int, Tensor};

pub use activation::{softmax_last, swiglu};
pub use attention::attention_inference;
pub use nll::vocab_nll;
pub use quant::{PackedWeight, QuantFormat, QuantizedLinear};

/// The LoRA linear as backend ops.
#[allow(clippy::too_many_arguments)]
// Cube and Fusion (over Cube) only where wgpu is built (`cfg(cube)`, build.rs).
#[backend_extension(Cube: cfg(cube), Flex, Fusion: cfg(cube), Autodiff)]
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

    /// [`LoraOps::lora_linear`] and `t = x·Aᵀ [m, r]`, which autodiff keeps for the
    /// gradient of B (on wgpu the tiled kernel computes both in one pass).
    #[fusion(meta = keep_specs)]
    fn lora_linear_keep(
        x: FloatTensor<Self>,
        w: FloatTensor<Self>,
        a: FloatTensor<Self>,
        b: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        scaling: f32,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        reference::lora_linear_keep::<Self>(x, w, a, b, bias, scaling)
    }

    /// The input gradient `g·W + s·u·A` for the output gradient `g [m, n]`, and
    /// `u = g·B [m, r]`, which the gradient of A needs too.
    #[fusion(meta = grad_input_specs)]
    fn lora_grad_input_keep(
        g: FloatTensor<Self>,
        w: FloatTensor<Self>,
        a: FloatTensor<Self>,
        b: FloatTensor<Self>,
        scaling: f32,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        reference::grad_input_keep::<Self>(g, w, a, b, scaling)
    }

    /// `s·op(lhs)·op(rhs)`, `op` transposing where asked: the small products of the
    /// backward (`g·B` without the input gradient, `s·(g·B)ᵀ·x`, `s·gᵀ·(x·Aᵀ)`, and
    /// `gᵀ·x` for a trained base). Under Fusion they stay Burn
    /// ops (the default body), so the transposes are views and the scaling is fused into the
    /// product's write: one launch each, where a custom op would be a matmul and a multiply.
    #[fusion(default)]
    fn lora_scaled_matmul(
        lhs: FloatTensor<Self>,
        rhs: FloatTensor<Self>,
        lhs_transposed: bool,
        rhs_transposed: bool,
        scaling: f32,
    ) -> FloatTensor<Self> {
        reference::scaled_matmul::<Self>(lhs, rhs, lhs_transposed, rhs_transposed, scaling)
    }

    /// The gradients of both LoRA factors, `(s·uᵀ·x, s·gᵀ·t)` for `x [m, k]`, the output
    /// gradient `g [m, n]`, `t = x·Aᵀ` and `u = g·B` (both `[m, r]`): on wgpu one launch
    /// (`shaders/lora_factors.wgsl`) where two products take two. The backward asks for it
    /// where `schedule::factors_in_one` says, else for the two products.
    #[fusion(meta = factor_specs)]
    fn lora_factor_grads(
        x: FloatTensor<Self>,
        g: FloatTensor<Self>,
        t: FloatTensor<Self>,
        u: FloatTensor<Self>,
        scaling: f32,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        reference::factor_grads::<Self>(x, g, t, u, scaling)
    }

    /// [`LoraOps::lora_linear`] with the base weight kept quantized: `quants` holds the
    /// packed codes of `w [n, k]` (see [`quant`]), `scales` and `mins` are `[n, k/32]`
    /// (`mins` is unused by 8-bit codes), `bits` is 8 or 4.
    #[fusion(dtype = x, shape = { let mut s = x.clone(); s[1] = scales[0]; s })]
    fn lora_linear_quantized(
        x: FloatTensor<Self>,
        quants: IntTensor<Self>,
        scales: FloatTensor<Self>,
        mins: FloatTensor<Self>,
        a: FloatTensor<Self>,
        b: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        bits: u32,
        scaling: f32,
    ) -> FloatTensor<Self> {
        let w = reference::dequantize::<Self>(quants, scales, mins, bits);
        reference::lora_linear::<Self>(x, w, a, b, bias, scaling)
    }
}

/// The outputs of [`LoraOps::lora_linear_keep`] under Fusion: `[m, n]` and `[m, r]`.
#[cfg(cube)]
fn keep_specs(
    x: &TensorSpec,
    w: &TensorSpec,
    a: &TensorSpec,
    _b: &TensorSpec,
    _bias: &TensorSpec,
    _scaling: &f32,
) -> (TensorSpec, TensorSpec) {
    let m = x.shape[0];
    (
        TensorSpec::new([m, w.shape[0]].into(), x.dtype),
        TensorSpec::new([m, a.shape[0]].into(), x.dtype),
    )
}

/// The outputs of [`LoraOps::lora_grad_input_keep`] under Fusion: `[m, k]` and `[m, r]`.
#[cfg(cube)]
fn grad_input_specs(
    g: &TensorSpec,
    w: &TensorSpec,
    _a: &TensorSpec,
    b: &TensorSpec,
    _scaling: &f32,
) -> (TensorSpec, TensorSpec) {
    let m = g.shape[0];
    (
        TensorSpec::new([m, w.shape[1]].into(), g.dtype),
        TensorSpec::new([m, b.shape[1]].into(), g.dtype),
    )
}

/// The outputs of [`LoraOps::lora_factor_grads`] under Fusion: `[r, k]` and `[n, r]`.
#[cfg(cube)]
fn factor_specs(
    x: &TensorSpec,
    g: &TensorSpec,
    t: &TensorSpec,
    _u: &TensorSpec,
    _scaling: &f32,
) -> (TensorSpec, TensorSpec) {
    let r = t.shape[1];
    (
        TensorSpec::new([r, x.shape[1]].into(), x.dtype),
        TensorSpec::new([g.shape[1], r].into(), x.dtype),
    )
}

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

/// [`lora_linear`] over a quantized base weight, dequantized inside the kernel on wgpu (the
/// f32 weight is never formed there); for inference (the base has no gradient).
pub fn lora_linear_quantized(
    x: Tensor<2>,
    w: &QuantizedLinear,
    a: Tensor<2>,
    b: Tensor<2>,
    bias: Tensor<1>,
    scaling: f64,
) -> Tensor<2> {
    let quants: Tensor<2, Int> = w.quants.clone();
    Tensor::from_dispatch(<Dispatch as LoraOps>::lora_linear_quantized(
        x.into_dispatch(),
        quants.into_dispatch(),
        w.scales.clone().into_dispatch(),
        w.mins.clone().into_dispatch(),
        a.into_dispatch(),
        b.into_dispatch(),
        bias.into_dispatch(),
        w.format.bits(),
        scaling as f32,
    ))
}
