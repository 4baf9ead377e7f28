//! Attention for inference (no gradient) as one op on the CPU: grouped-query heads, an
//! additive mask, and the output already in the `[batch, seq, heads·head_dim]` layout the
//! output projection reads.
//!
//! Burn's CPU attention (`attention_naive_impl`) was a tenth of a 16 × 256-token prefill in
//! `perf`, a quarter of that in glibc's `expf`, and the heads were then copied once more
//! into the projection's layout. Here each (sequence, head) pair of a prompt is one task:
//! the scores by gemm, the mask and a softmax with the vectorizable `exp` in place, the
//! values by gemm. A decoding step's few queries take dot products instead, one task per
//! (sequence, KV head), so that each key and value row is read once for all the query heads
//! that share it. Under autodiff and on other devices the model keeps Burn's ops.

mod cpu;

use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, backend_extension};
use burn::tensor::{Device, Tensor};

use crate::reference;

#[backend_extension(Flex)]
pub trait AttentionOps: Backend {
    /// `softmax(q·kᵀ/√d + mask)·v` for `q [b, h, s, d]`, `k` and `v` `[b, kv_heads, t, d]`
    /// (query head `i` reads KV head `i / (h / kv_heads)`) and `mask [b, 1, s, t]`, as
    /// `[b, s, h·d]`.
    fn attention_inference(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        mask: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        reference::attention::<Self>(q, k, v, mask)
    }
}

/// [`AttentionOps::attention_inference`] on the CPU backend; `None` (the caller keeps its
/// own ops) on other devices, under autodiff, or for shapes that do not fit.
pub fn attention_inference(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    mask: Tensor<4>,
) -> Option<Tensor<3>> {
    let ([b, h, s, d], [kb, kvh, t, kd], [vb, vh, vt, vd]) = (q.dims(), k.dims(), v.dims());
    let fits = kvh > 0
        && h % kvh == 0
        && [kb, vb] == [b, b]
        && [vh, vt] == [kvh, t]
        && [kd, vd] == [d, d]
        && mask.dims() == [b, 1, s, t];
    if !fits || q.is_autodiff() || q.device() != Device::flex() {
        return None;
    }
    Some(Tensor::from_dispatch(
        <Dispatch as AttentionOps>::attention_inference(
            q.into_dispatch(),
            k.into_dispatch(),
            v.into_dispatch(),
            mask.into_dispatch(),
        ),
    ))
}
