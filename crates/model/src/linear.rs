//! A linear layer in HF layout: `weight` is `[out_features, in_features]`, as PyTorch and
//! safetensors store it, so loading is a copy and LoRA factors line up with PEFT's.

use burn::module::{Module, Param};
use burn::tensor::{Device, Tensor};

use crate::lora::LoraAdapter;

#[derive(Module, Debug)]
pub struct Linear {
    /// `[out, in]`
    pub weight: Param<Tensor<2>>,
    /// `[out]`
    pub bias: Option<Param<Tensor<1>>>,
    /// An unmerged LoRA adapter (PEFT's `lora_A` / `lora_B`), added to the output.
    pub lora: Option<LoraAdapter>,
}

impl Linear {
    pub fn new(weight: Tensor<2>, bias: Option<Tensor<1>>) -> Self {
        Self {
            weight: Param::from_tensor(weight),
            bias: bias.map(Param::from_tensor),
            lora: None,
        }
    }

    /// Zero-initialised layer of the given shape (for tests and shape checks).
    pub fn zeros(in_features: usize, out_features: usize, bias: bool, device: &Device) -> Self {
        Self::new(
            Tensor::zeros([out_features, in_features], device),
            bias.then(|| Tensor::zeros([out_features], device)),
        )
    }

    pub fn in_features(&self) -> usize {
        self.weight.dims()[1]
    }

    pub fn out_features(&self) -> usize {
        self.weight.dims()[0]
    }

    /// `x · Wᵀ + b` over the last dimension of `[batch, seq, in]`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let [b, s, d] = x.dims();
        let y = self.forward_2d(x.reshape([b * s, d]));
        let out = y.dims()[1];
        y.reshape([b, s, out])
    }

    /// `x · Wᵀ + b` for `[rows, in]`.
    pub fn forward_2d(&self, x: Tensor<2>) -> Tensor<2> {
        if let Some(lora) = &self.lora
            // Dropout on the LoRA input alone is not part of the fused op.
            && lora.fused
            && !(lora.dropout > 0.0 && x.is_autodiff())
        {
            let bias = match &self.bias {
                Some(b) => b.val(),
                None => Tensor::zeros([self.out_features()], &x.device()),
            };
            return kernels::lora_linear(
                x,
                self.weight.val(),
                lora.lora_A.val(),
                lora.lora_B.val(),
                bias,
                lora.scaling,
            );
        }
        let y = x.clone().matmul(self.weight.val().transpose());
        let y = match &self.bias {
            Some(bias) => y + bias.val().unsqueeze_dim(0),
            None => y,
        };
        match &self.lora {
            Some(lora) => y + lora.forward_2d(x),
            None => y,
        }
    }
}

impl Linear {
    /// Folds the adapter into the base weight (`W += s·B·A`) and drops it.
    pub fn merge_lora(&mut self) {
        if let Some(lora) = self.lora.take() {
            let merged = self.weight.val() + lora.delta();
            self.weight = Param::from_tensor(merged.detach());
        }
    }
}
