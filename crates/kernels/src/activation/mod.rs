//! Two element-wise steps of every transformer block, each as one op on the CPU: the
//! attention softmax over the last dimension, and SwiGLU's `silu(gate) · up`, with their
//! backward passes.
//!
//! In Burn ops on the CPU backend (Flex) each is several passes, every one on one thread
//! and into a fresh tensor: a softmax is a max, a subtraction, an `exp`, a sum and a
//! division, and its backward recomputes the `exp`; SwiGLU is a sigmoid, two products and
//! their backward passes. In a LoRA training step of SmolLM2 on 4 × 256 tokens they were a
//! sixth of the time (`perf`, docs/bench.md). Here each is one pass over the values on every
//! thread, with a vectorizable `exp`; the backward passes take the saved output (softmax)
//! or inputs (SwiGLU). Other devices keep Burn's ops, which wgpu fuses.

mod backward;
mod cpu;

use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, backend_extension};
use burn::tensor::activation::{silu, softmax};
use burn::tensor::{Device, Tensor};

use crate::reference;

#[backend_extension(Flex, Autodiff)]
pub trait FusedActivationOps: Backend {
    /// Softmax over the last dimension.
    fn softmax_last(x: FloatTensor<Self>) -> FloatTensor<Self> {
        reference::softmax_last::<Self>(x)
    }

    /// The input gradient of [`FusedActivationOps::softmax_last`] from its output `y` and
    /// the output gradient `g`: `y ⊙ (g - Σ_last g ⊙ y)`.
    fn softmax_last_backward(y: FloatTensor<Self>, g: FloatTensor<Self>) -> FloatTensor<Self> {
        reference::softmax_last_backward::<Self>(y, g)
    }

    /// `silu(gate) ⊙ up` for two tensors of one shape.
    fn swiglu(gate: FloatTensor<Self>, up: FloatTensor<Self>) -> FloatTensor<Self> {
        reference::swiglu::<Self>(gate, up)
    }

    /// The gradients of [`FusedActivationOps::swiglu`] for `gate` and `up`, given the output
    /// gradient `g`.
    fn swiglu_backward(
        gate: FloatTensor<Self>,
        up: FloatTensor<Self>,
        g: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        reference::swiglu_backward::<Self>(gate, up, g)
    }
}

/// Softmax over the last dimension: the op on the CPU, Burn's elsewhere.
pub fn softmax_last<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if x.device() != Device::flex() {
        return softmax(x, D - 1);
    }
    Tensor::from_dispatch(<Dispatch as FusedActivationOps>::softmax_last(
        x.into_dispatch(),
    ))
}

/// `silu(gate) ⊙ up`: the op on the CPU, Burn's elsewhere.
pub fn swiglu<const D: usize>(gate: Tensor<D>, up: Tensor<D>) -> Tensor<D> {
    assert_eq!(
        gate.dims(),
        up.dims(),
        "swiglu: gate and up differ in shape"
    );
    if gate.device() != Device::flex() {
        return silu(gate) * up;
    }
    Tensor::from_dispatch(<Dispatch as FusedActivationOps>::swiglu(
        gate.into_dispatch(),
        up.into_dispatch(),
    ))
}
