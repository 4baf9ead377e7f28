//! The op under autodiff. The forward on the inner backend already gives the gradient of
//! the summed loss with respect to `hidden`; it is kept as the op's state (`[n, d]`, small
//! next to the logits) and the backward scales each row by the incoming gradient. A tracked
//! `weight` (a trained LM head) takes the reference in differentiable ops instead.

use burn::backend::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::{AutodiffBackend, TensorMetadata};

use super::VocabNllOps;
use crate::reference;

#[derive(Debug)]
struct VocabNllBackward;

impl<B: VocabNllOps> Backward<B, 1> for VocabNllBackward {
    /// `∂Σnll/∂hidden`, `[n, d]`.
    type State = FloatTensor<B>;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [parent] = ops.parents;
        let g = grads.consume::<B>(&ops.node); // [n]
        if let Some(node) = parent {
            let n = g.shape()[0];
            let g = B::float_reshape(g, [n, 1].into());
            grads.register::<B>(node.id, B::float_mul(ops.state, g));
        }
    }
}

impl<B: VocabNllOps, C: CheckpointStrategy> VocabNllOps for Autodiff<B, C> {
    fn vocab_nll(
        hidden: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        targets: IntTensor<Self>,
    ) -> FloatTensor<Self> {
        if weight.is_tracked() {
            return reference::vocab_nll::<Self>(hidden, weight, targets, false).0;
        }
        match VocabNllBackward
            .prepare::<C>([hidden.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (nll, grad) = B::vocab_nll_with_grad(
                    hidden.into_primitive(),
                    weight.into_primitive(),
                    targets,
                );
                prep.finish(grad, nll)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::vocab_nll(
                hidden.into_primitive(),
                weight.into_primitive(),
                targets,
            )),
        }
    }

    /// Both outputs as constants: the gradient is a value here, not part of the graph.
    fn vocab_nll_with_grad(
        hidden: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        targets: IntTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let (nll, grad) =
            B::vocab_nll_with_grad(hidden.into_primitive(), weight.into_primitive(), targets);
        (Self::from_inner(nll), Self::from_inner(grad))
    }
}
