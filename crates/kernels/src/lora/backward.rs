//! The op under autodiff: the forward runs on the inner backend (the fused kernel on wgpu),
//! the backward gives the input, the two LoRA factors, the bias and the base weight their
//! gradients (only those that are tracked are computed into the graph).

use burn::backend::Autodiff;
use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;

use crate::{LoraOps, reference};

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
