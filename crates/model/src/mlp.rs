//! The SwiGLU feed-forward block: `down(silu(gate(x)) * up(x))`.

use burn::module::Module;
use burn::tensor::Tensor;

use crate::linear::Linear;
use crate::routes::RowAdapters;

#[derive(Module, Debug)]
pub struct Mlp {
    pub gate_proj: Linear,
    pub up_proj: Linear,
    pub down_proj: Linear,
}

impl Mlp {
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let [gate, up] = Linear::forward_many([&self.gate_proj, &self.up_proj], x);
        self.down_proj.forward(kernels::swiglu(gate, up))
    }

    /// [`Mlp::forward`] in layer `layer` of a batch whose rows add their own adapters.
    pub fn forward_routed(
        &self,
        x: Tensor<3>,
        layer: usize,
        routes: &RowAdapters<'_>,
    ) -> Tensor<3> {
        let [gate, up] = Linear::forward_many([&self.gate_proj, &self.up_proj], x.clone());
        let gate = routes.add(gate, &x, layer, |b| &b.mlp.gate_proj);
        let up = routes.add(up, &x, layer, |b| &b.mlp.up_proj);
        let h = kernels::swiglu(gate, up);
        let y = self.down_proj.forward(h.clone());
        routes.add(y, &h, layer, |b| &b.mlp.down_proj)
    }
}
