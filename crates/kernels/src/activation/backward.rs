//! The ops under autodiff: the softmax keeps its output, SwiGLU its two inputs, and each
//! backward is the inner backend's backward op.

use burn::backend::Autodiff;
use burn::backend::AutodiffBackend;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;

use super::FusedActivationOps;

#[derive(Debug)]
struct SoftmaxBackward;

impl<B: FusedActivationOps> Backward<B, 1> for SoftmaxBackward {
    /// The output.
    type State = FloatTensor<B>;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [parent] = ops.parents;
        let g = grads.consume::<B>(&ops.node);
        if let Some(node) = parent {
            grads.register::<B>(node.id, B::softmax_last_backward(ops.state, g));
        }
    }
}

#[derive(Debug)]
struct SwigluBackward;

impl<B: FusedActivationOps> Backward<B, 2> for SwigluBackward {
    /// `gate` and `up`.
    type State = (FloatTensor<B>, FloatTensor<B>);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [gate_node, up_node] = ops.parents;
        let g = grads.consume::<B>(&ops.node);
        let (gate, up) = ops.state;
        let (d_gate, d_up) = B::swiglu_backward(gate, up, g);
        if let Some(node) = gate_node {
            grads.register::<B>(node.id, d_gate);
        }
        if let Some(node) = up_node {
            grads.register::<B>(node.id, d_up);
        }
    }
}

impl<B: FusedActivationOps, C: CheckpointStrategy> FusedActivationOps for Autodiff<B, C> {
    fn softmax_last(x: FloatTensor<Self>) -> FloatTensor<Self> {
        match SoftmaxBackward
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let y = B::softmax_last(x.into_primitive());
                prep.finish(y.clone(), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::softmax_last(x.into_primitive())),
        }
    }

    /// A value, not part of the graph.
    fn softmax_last_backward(y: FloatTensor<Self>, g: FloatTensor<Self>) -> FloatTensor<Self> {
        Self::from_inner(B::softmax_last_backward(
            y.into_primitive(),
            g.into_primitive(),
        ))
    }

    fn swiglu(gate: FloatTensor<Self>, up: FloatTensor<Self>) -> FloatTensor<Self> {
        match SwigluBackward
            .prepare::<C>([gate.node(), up.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (gate, up) = (gate.into_primitive(), up.into_primitive());
                let y = B::swiglu(gate.clone(), up.clone());
                prep.finish((gate, up), y)
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(B::swiglu(gate.into_primitive(), up.into_primitive()))
            }
        }
    }

    /// Values, not part of the graph.
    fn swiglu_backward(
        gate: FloatTensor<Self>,
        up: FloatTensor<Self>,
        g: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let (d_gate, d_up) = B::swiglu_backward(
            gate.into_primitive(),
            up.into_primitive(),
            g.into_primitive(),
        );
        (Self::from_inner(d_gate), Self::from_inner(d_up))
    }
}
