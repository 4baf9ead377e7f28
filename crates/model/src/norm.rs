//! RMSNorm with HF's parameter name (`weight`) and HF's arithmetic:
//! `weight * x / sqrt(mean(x²) + eps)`, computed in f32.

use burn::module::{Module, Param};
use burn::tensor::Tensor;

#[derive(Module, Debug)]
pub struct RmsNorm {
    /// `[hidden]`
    pub weight: Param<Tensor<1>>,
    pub eps: f64,
}

impl RmsNorm {
    pub fn new(weight: Tensor<1>, eps: f64) -> Self {
        Self {
            weight: Param::from_tensor(weight),
            eps,
        }
    }

    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        // One pass on every thread for inference on the CPU.
        if let Some(y) = kernels::inference::rms_norm(x.clone(), self.weight.val(), self.eps) {
            return y;
        }
        let rms = (x.clone().square().mean_dim(D - 1) + self.eps).sqrt();
        (x / rms) * self.weight.val().unsqueeze()
    }
}
