//! The op under autodiff, and the backward kernels on wgpu. The forward runs on the inner
//! backend (the fused kernel on wgpu); the backward (`reference::lora_linear_backward`,
//! written over the extension's ops) gives the input, the two LoRA factors, the bias and the
//! base weight their gradients, computing only those that are tracked. On wgpu its products
//! run `shaders/lora_backward_input.wgsl` and `shaders/lora_backward_factor.wgsl`.

use burn::backend::Autodiff;
use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::wgpu::{CubeTensor, KernelSource, SourceTemplate};
use burn_cubecl::cubecl::prelude::KernelId;

use super::launch;
use crate::{LoraOps, reference, shaders};

#[derive(Debug)]
struct LoraLinearBackward;

impl<B: LoraOps> Backward<B, 5> for LoraLinearBackward {
    /// The checkpointed x, w, a, b and the scaling.
    type State = (NodeId, NodeId, NodeId, NodeId, f32);

    fn backward(self, ops: Ops<Self::State, 5>, grads: &mut Gradients, ckp: &mut Checkpointer) {
        let [px, pw, pa, pb, pbias] = ops.parents;
        let g = grads.consume::<B>(&ops.node);
        let (nx, nw, na, nb, scaling) = ops.state;
        let x: FloatTensor<B> = ckp.retrieve_node_output(nx);
        let w: FloatTensor<B> = ckp.retrieve_node_output(nw);
        let a: FloatTensor<B> = ckp.retrieve_node_output(na);
        let b: FloatTensor<B> = ckp.retrieve_node_output(nb);
        let wanted = [&px, &pw, &pa, &pb, &pbias].map(Option::is_some);
        let computed = reference::lora_linear_backward::<B>(x, w, a, b, g, scaling, wanted);
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
        let forward = |x: FloatTensor<Self>,
                       w: FloatTensor<Self>,
                       a: FloatTensor<Self>,
                       b: FloatTensor<Self>,
                       bias: FloatTensor<Self>| {
            B::lora_linear(
                x.into_primitive(),
                w.into_primitive(),
                a.into_primitive(),
                b.into_primitive(),
                bias.into_primitive(),
                scaling,
            )
        };
        match prep {
            OpsKind::Tracked(mut prep) => {
                let state = (
                    prep.checkpoint(&x),
                    prep.checkpoint(&w),
                    prep.checkpoint(&a),
                    prep.checkpoint(&b),
                    scaling,
                );
                prep.finish(state, forward(x, w, a, b, bias))
            }
            OpsKind::UnTracked(prep) => prep.finish(forward(x, w, a, b, bias)),
        }
    }
}

/// The input-gradient kernel.
struct LoraBackwardInput;

impl KernelSource for LoraBackwardInput {
    fn source(&self) -> SourceTemplate {
        SourceTemplate::new(shaders::LORA_BACKWARD_INPUT)
    }

    fn id(&self) -> KernelId {
        KernelId::new::<Self>()
    }

    fn lang(&self) -> &'static str {
        "wgsl"
    }
}

/// `g·W + s·gb·A` for `g [m, n]`, `w [n, k]`, `a [r, k]` and `gb = g·B [m, r]`.
pub fn launch_grad_input(
    g: CubeTensor,
    w: CubeTensor,
    a: CubeTensor,
    gb: CubeTensor,
    scaling: f32,
) -> CubeTensor {
    let (m, n) = (g.meta.shape()[0], g.meta.shape()[1]);
    let (k, r) = (w.meta.shape()[1], a.meta.shape()[0]);
    let params = [m as u32, n as u32, k as u32, r as u32, scaling.to_bits()];
    launch::run(
        LoraBackwardInput,
        vec![g, w, gb, a],
        [m, k],
        (launch::SQUARE, 256),
        &params,
    )
}

/// The strided product kernel (one pipeline for every layout).
struct LoraBackwardFactor;

impl KernelSource for LoraBackwardFactor {
    fn source(&self) -> SourceTemplate {
        SourceTemplate::new(shaders::LORA_BACKWARD_FACTOR)
    }

    fn id(&self) -> KernelId {
        KernelId::new::<Self>()
    }

    fn lang(&self) -> &'static str {
        "wgsl"
    }
}

/// `s·op(lhs)·op(rhs)`: a transpose is only a swap of strides.
pub fn launch_scaled_matmul(
    lhs: CubeTensor,
    rhs: CubeTensor,
    lhs_transposed: bool,
    rhs_transposed: bool,
    scaling: f32,
) -> CubeTensor {
    let [l0, l1] = [lhs.meta.shape()[0], lhs.meta.shape()[1]];
    let [r0, r1] = [rhs.meta.shape()[0], rhs.meta.shape()[1]];
    // Row-major [d0, d1]: element (i, j) sits at i·d1 + j.
    let (rows, inner, l_row, l_inner) = if lhs_transposed {
        (l1, l0, 1, l1)
    } else {
        (l0, l1, l1, 1)
    };
    let (cols, r_inner, r_col) = if rhs_transposed {
        (r0, 1, r1)
    } else {
        (r1, r1, 1)
    };
    let params = [
        rows as u32,
        cols as u32,
        inner as u32,
        l_row as u32,
        l_inner as u32,
        r_inner as u32,
        r_col as u32,
        scaling.to_bits(),
    ];
    let inputs = vec![lhs, rhs];
    launch::run(
        LoraBackwardFactor,
        inputs,
        [rows, cols],
        (launch::SQUARE, 256),
        &params,
    )
}
