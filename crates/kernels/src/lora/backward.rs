//! The op under autodiff, and the backward kernels on wgpu. The forward runs on the inner
//! backend: `t = x·Aᵀ`, kept for the gradient of B, then the fused op over it (our kernels
//! on wgpu); the backward (`reference::lora_linear_backward`, written over the extension's
//! ops) gives the input, the two LoRA factors, the bias and the base weight their gradients,
//! computing only those that are tracked. On wgpu the input gradient goes through
//! `launch::matmul` like the forward (its low-rank term fused), and the small products with
//! a side of length r are Burn's matmul, their scaling fused into it under Fusion.

use burn::backend::Autodiff;
use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::wgpu::CubeTensor;

use super::launch::{LowRank, Strided, Weight, matmul};
use crate::{LoraOps, reference};

#[derive(Debug)]
struct LoraLinearBackward;

impl<B: LoraOps> Backward<B, 5> for LoraLinearBackward {
    /// The checkpointed x, w, a, b, the forward's `t = x·Aᵀ [m, r]` (kept: it is small, and
    /// the gradient of B needs it) and the scaling.
    type State = (NodeId, NodeId, NodeId, NodeId, FloatTensor<B>, f32);

    fn backward(self, ops: Ops<Self::State, 5>, grads: &mut Gradients, ckp: &mut Checkpointer) {
        let [px, pw, pa, pb, pbias] = ops.parents;
        let g = grads.consume::<B>(&ops.node);
        let (nx, nw, na, nb, t, scaling) = ops.state;
        let x: FloatTensor<B> = ckp.retrieve_node_output(nx);
        let w: FloatTensor<B> = ckp.retrieve_node_output(nw);
        let a: FloatTensor<B> = ckp.retrieve_node_output(na);
        let b: FloatTensor<B> = ckp.retrieve_node_output(nb);
        let wanted = [&px, &pw, &pa, &pb, &pbias].map(Option::is_some);
        let computed =
            reference::lora_linear_backward::<B>(x, w, a, b, Some(t), g, scaling, wanted);
        for (parent, grad) in [px, pw, pa, pb, pbias].into_iter().zip(computed) {
            if let (Some(node), Some(grad)) = (parent, grad) {
                grads.register::<B>(node.id, grad);
            }
        }
    }
}

impl<B: LoraOps, C: CheckpointStrategy> LoraOps for Autodiff<B, C> {
    fn lora_linear(
        x: FloatTensor<Self>,
        w: FloatTensor<Self>,
        a: FloatTensor<Self>,
        b: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        scaling: f32,
    ) -> FloatTensor<Self> {
        let nodes = [x.node(), w.node(), a.node(), b.node(), bias.node()];
        let prep = LoraLinearBackward
            .prepare::<C>(nodes)
            .compute_bound()
            .stateful();
        match prep {
            OpsKind::Tracked(mut prep) => {
                // `t` once, as its own product, so the backward reuses it.
                let t = B::lora_scaled_matmul(
                    x.primitive().clone(),
                    a.primitive().clone(),
                    false,
                    true,
                    1.0,
                );
                let state = (
                    prep.checkpoint(&x),
                    prep.checkpoint(&w),
                    prep.checkpoint(&a),
                    prep.checkpoint(&b),
                    t.clone(),
                    scaling,
                );
                let y = B::lora_linear_low(
                    x.into_primitive(),
                    w.into_primitive(),
                    t,
                    b.into_primitive(),
                    bias.into_primitive(),
                    scaling,
                );
                prep.finish(state, y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::lora_linear(
                x.into_primitive(),
                w.into_primitive(),
                a.into_primitive(),
                b.into_primitive(),
                bias.into_primitive(),
                scaling,
            )),
        }
    }
}

/// `g·W + s·gb·A` for `g [m, n]`, `w [n, k]`, `a [r, k]` and `gb = g·B [m, r]`: the kernel
/// reads W and A transposed through their strides.
pub fn launch_grad_input(
    g: CubeTensor,
    w: CubeTensor,
    a: CubeTensor,
    gb: CubeTensor,
    scaling: f32,
) -> CubeTensor {
    let low = LowRank {
        t: gb,
        f: Strided::of(a, true),
        scaling,
    };
    matmul(
        Strided::of(g, false),
        Weight::F32(Strided::of(w, true)),
        Some(low),
        None,
        1.0,
    )
}
