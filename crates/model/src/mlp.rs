//! The SwiGLU feed-forward block: `down(silu(gate(x)) * up(x))`.

use burn::module::Module;
use burn::tensor::Tensor;

use crate::linear::Linear;

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
}
