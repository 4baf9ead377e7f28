//! One pre-norm decoder layer: `x + attn(norm(x))`, then `x + mlp(norm(x))`.

use burn::module::Module;
use burn::tensor::Tensor;

use crate::attention::{Attention, AttentionInput};
use crate::mlp::Mlp;
use crate::norm::RmsNorm;

#[derive(Module, Debug)]
pub struct Block {
    pub self_attn: Attention,
    pub mlp: Mlp,
    pub input_layernorm: RmsNorm,
    pub post_attention_layernorm: RmsNorm,
}

impl Block {
    pub fn forward(&self, x: Tensor<3>, layer: usize, input: &mut AttentionInput<'_>) -> Tensor<3> {
        // `kernels::inference::add` is the residual addition on every thread on the CPU.
        let attn = self
            .self_attn
            .forward(self.input_layernorm.forward(x.clone()), layer, input);
        let x = kernels::inference::add(x, attn);
        let normed = self.post_attention_layernorm.forward(x.clone());
        let mlp = self.mlp.forward(normed, layer, input.routes);
        kernels::inference::add(x, mlp)
    }
}
