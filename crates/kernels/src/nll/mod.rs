//! The language-model loss through the vocabulary projection, as one op: for each row `i`,
//! `nll[i] = logsumexp(h_i·Wᵀ) - h_i·W[t_i]`, and for training its gradient with respect to
//! `h`, `(softmax(h_i·Wᵀ) - onehot(t_i))·W`, computed in the same pass.
//!
//! Built from Burn ops, the loss keeps `[rows, vocab]` logits, their log-softmax, and in the
//! backward as many gradients of that size again: for a SmolLM2 training batch of 4 × 256
//! tokens each is 201 MB, and on the CPU backend every pass over them ran on one thread. On
//! Flex (`cpu`) the rows go through in blocks, the logits of a block turned into
//! probabilities in place on every thread, and the gradient is one more product per block;
//! the backward only scales it by the incoming gradient (`backward`).
//!
//! Other devices take Burn's log-softmax at the call site ([`vocab_nll`]). The same
//! reference as one op with both outputs (`reference::vocab_nll`) gave wrong losses on wgpu:
//! burn-cubecl-fusion 0.22.1 fused its element-wise steps into kernels that panicked while
//! autotuning (`engine/codegen/ir.rs:572`, index out of bounds) and returned losses off by up
//! to 2.9 for some shapes (n 6, vocab 330, hidden 48), with the gradient right.

mod backward;
mod cpu;

use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::{Backend, Dispatch, backend_extension};
use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Int, Tensor};

use crate::reference;

#[backend_extension(Flex, Autodiff)]
pub trait VocabNllOps: Backend {
    /// `[n]`: the negative log-likelihood of `targets [n]` under `softmax(hidden·weightᵀ)`,
    /// for `hidden [n, d]` and `weight [vocab, d]`.
    fn vocab_nll(
        hidden: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        targets: IntTensor<Self>,
    ) -> FloatTensor<Self> {
        reference::vocab_nll::<Self>(hidden, weight, targets, false).0
    }

    /// [`VocabNllOps::vocab_nll`] and the gradient of its sum with respect to `hidden`,
    /// `[n, d]`.
    fn vocab_nll_with_grad(
        hidden: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        targets: IntTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let (nll, grad) = reference::vocab_nll::<Self>(hidden, weight, targets, true);
        (nll, grad.expect("asked for"))
    }
}

/// Per-row negative log-likelihood of `targets` under `softmax(hidden·weightᵀ)`, for
/// `hidden [n, d]`, `weight [vocab, d]` and `targets [n]` (each below `vocab`), with the
/// gradients of Burn's autodiff. On the CPU the fused op (the gradient of `hidden` from its
/// forward; a tracked `weight` takes the reference in differentiable ops); elsewhere the
/// log-softmax of the whole logits.
pub fn vocab_nll(hidden: Tensor<2>, weight: Tensor<2>, targets: Tensor<1, Int>) -> Tensor<1> {
    if hidden.device() != Device::flex() {
        return nll_of_logits(hidden.matmul(weight.transpose()), targets);
    }
    Tensor::from_dispatch(<Dispatch as VocabNllOps>::vocab_nll(
        hidden.into_dispatch(),
        weight.into_dispatch(),
        targets.into_dispatch(),
    ))
}

/// `-log_softmax(logits)[i, targets[i]]` for `logits [n, vocab]`, in Burn ops.
pub fn nll_of_logits(logits: Tensor<2>, targets: Tensor<1, Int>) -> Tensor<1> {
    let n = targets.dims()[0];
    let log_p = log_softmax(logits, 1);
    log_p.gather(1, targets.reshape([n, 1])).reshape([n]).neg()
}
