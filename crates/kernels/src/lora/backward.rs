//! The op under autodiff, and the backward kernels on wgpu. The forward runs on the inner
//! backend and returns `t = x·Aᵀ` beside its output, kept for the gradient of B; the
//! backward (`reference::lora_linear_backward`, written over the extension's ops) gives the
//! input, the two LoRA factors, the bias and the base weight their gradients, computing only
//! those that are tracked. On wgpu the input gradient goes through `launch::matmul` like the
//! forward (its low-rank term fused, `u = g·B` computed with it and returned for the
//! gradient of A), and the factors' gradients are Burn's matmul, their scaling fused into
//! it under Fusion.

use burn::backend::Autodiff;
use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
#[cfg(cube)]
use burn::backend::wgpu::{CubeBackend, CubeTensor};

#[cfg(cube)]
use super::launch::matmul;
#[cfg(cube)]
use super::operands::{LowRank, Strided, Weight};
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
        let computed = reference::lora_linear_backward::<B>(x, w, a, b, t, g, scaling, wanted);
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
                // `t` comes back with the output, so the backward reuses it.
                let (nx, nw, na, nb) = (
                    prep.checkpoint(&x),
                    prep.checkpoint(&w),
                    prep.checkpoint(&a),
                    prep.checkpoint(&b),
                );
                let (y, t) = B::lora_linear_keep(
                    x.into_primitive(),
                    w.into_primitive(),
                    a.into_primitive(),
                    b.into_primitive(),
                    bias.into_primitive(),
                    scaling,
                );
                prep.finish((nx, nw, na, nb, t, scaling), y)
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

/// `(g·W + s·u·A, u)` with `u = g·B [m, r]`, for `g [m, n]`, `w [n, k]`, `a [r, k]`,
/// `b [n, r]`: the kernel reads W and A transposed through their strides, and B as
/// `Bᵀ [r, n]`, the "A" of `u`'s projection.
#[cfg(cube)]
pub fn launch_grad_input(
    g: CubeTensor,
    w: CubeTensor,
    a: CubeTensor,
    b: CubeTensor,
    scaling: f32,
) -> (CubeTensor, CubeTensor) {
    let g = Strided::of(g, false);
    let low = LowRank {
        a: Strided::of(b.clone(), true),
        f: Strided::of(a, true),
        scaling,
    };
    let (dx, u) = matmul(
        g.clone(),
        Weight::F32(Strided::of(w, true)),
        Some(low),
        None,
        1.0,
    );
    // `matmul` returns a projected `u` from every schedule; computed here only if it did not.
    let u = u.unwrap_or_else(|| {
        reference::scaled_matmul::<CubeBackend>(g.tensor(), b, false, false, 1.0)
    });
    (dx, u)
}
