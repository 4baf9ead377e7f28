//! A linear layer in HF layout: `weight` is `[out_features, in_features]`, as PyTorch and
//! safetensors store it, so loading is a copy and LoRA factors line up with PEFT's.

use burn::module::{Module, Param};
use burn::tensor::{Device, Tensor};

#[derive(Module, Debug)]
pub struct Linear {
    /// `[out, in]`
    pub weight: Param<Tensor<2>>,
    /// `[out]`
    pub bias: Option<Param<Tensor<1>>>,
}

impl Linear {
    pub fn new(weight: Tensor<2>, bias: Option<Tensor<1>>) -> Self {
        Self {
            weight: Param::from_tensor(weight),
            bias: bias.map(Param::from_tensor),
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
        let y = x.matmul(self.weight.val().transpose());
        match &self.bias {
            Some(bias) => y + bias.val().unsqueeze_dim(0),
            None => y,
        }
    }
}
