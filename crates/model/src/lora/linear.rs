//! The LoRA factors of one linear layer.

#![allow(non_snake_case)] // PEFT's tensor names: lora_A, lora_B.

use burn::module::{Module, Param};
use burn::tensor::{Distribution, Tensor};

#[derive(Module, Debug)]
pub struct LoraAdapter {
    /// `[r, in]`
    pub lora_A: Param<Tensor<2>>,
    /// `[out, r]`
    pub lora_B: Param<Tensor<2>>,
    /// `alpha / r`: runtime state, not a parameter.
    pub scaling: f64,
    pub dropout: f64,
    /// Run the base and LoRA products as one op (our fused WGSL kernel on wgpu). New
    /// adapters take the settings' `fused_lora` (on by default; `MENTALQLM_KERNELS=0` turns
    /// it off, e.g. to compare).
    pub fused: bool,
}

impl LoraAdapter {
    /// PEFT's initialisation: A Kaiming-uniform (`a = sqrt(5)`, so bound `1/sqrt(in)`), B zero,
    /// so a new adapter leaves the model unchanged. A is drawn on the host from `seed`, so
    /// the same seed gives the same adapter on every device and in every thread.
    pub fn init(
        in_features: usize,
        out_features: usize,
        r: usize,
        scaling: f64,
        dropout: f64,
        seed: u64,
        device: &burn::tensor::Device,
    ) -> Self {
        let bound = 1.0 / (in_features as f64).sqrt();
        Self {
            lora_A: Param::from_tensor(crate::init::uniform([r, in_features], bound, seed, device)),
            lora_B: Param::from_tensor(Tensor::zeros([out_features, r], device)),
            scaling,
            dropout,
            fused: kernels::settings::current().fused_lora,
        }
    }

    pub fn from_tensors(a: Tensor<2>, b: Tensor<2>, scaling: f64, dropout: f64) -> Self {
        Self {
            lora_A: Param::from_tensor(a),
            lora_B: Param::from_tensor(b),
            scaling,
            dropout,
            fused: kernels::settings::current().fused_lora,
        }
    }

    /// `s · dropout(x) · Aᵀ · Bᵀ` for `[rows, in]`. Dropout acts only while gradients are
    /// tracked (training), as PEFT's module in train mode.
    pub fn forward_2d(&self, x: Tensor<2>) -> Tensor<2> {
        let x = if self.dropout > 0.0 && x.is_autodiff() {
            let keep = 1.0 - self.dropout;
            let mask = x.random_like(Distribution::Bernoulli(keep));
            x * mask / keep
        } else {
            x
        };
        x.matmul(self.lora_A.val().transpose())
            .matmul(self.lora_B.val().transpose())
            * self.scaling
    }

    /// `s · B · A`, the update a merge adds to the base weight `[out, in]`.
    pub fn delta(&self) -> Tensor<2> {
        self.lora_B.val().matmul(self.lora_A.val()) * self.scaling
    }
}
