//! The SwiGLU feed-forward block: `down(silu(gate(x)) * up(x))`.

use burn::module::Module;
use burn::tensor::Tensor;

use crate::linear::Linear;
use crate::routes::{self, Pick, RowAdapters};

#[derive(Module, Debug)]
pub struct Mlp {
    pub gate_proj: Linear,
    pub up_proj: Linear,
    pub down_proj: Linear,
}

impl Mlp {
    /// Layer `layer`'s block; with `routes`, each row also adds its own adapter's terms.
    pub fn forward(
        &self,
        x: Tensor<3>,
        layer: usize,
        routes: Option<&RowAdapters<'_>>,
    ) -> Tensor<3> {
        let picks: [Pick; 2] = [|b| &b.mlp.gate_proj, |b| &b.mlp.up_proj];
        let [gate, up] = routes::project([&self.gate_proj, &self.up_proj], picks, x, layer, routes);
        let h = kernels::swiglu(gate, up);
        let [y] = routes::project([&self.down_proj], [|b| &b.mlp.down_proj], h, layer, routes);
        y
    }
}
