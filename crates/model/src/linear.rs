//! A linear layer in HF layout: `weight` is `[out_features, in_features]`, as PyTorch and
//! safetensors store it, so loading is a copy and LoRA factors line up with PEFT's.

use burn::module::{Module, Param};
use burn::tensor::{Device, Tensor};
use kernels::QuantizedLinear;

use crate::lora::LoraAdapter;
use crate::weight::{Codes, Weight};

#[derive(Module, Debug)]
pub struct Linear {
    /// `[out, in]`: f32, or GGUF codes read by the quantized kernel (a frozen base).
    pub weight: Weight,
    /// `[out]`
    pub bias: Option<Param<Tensor<1>>>,
    /// An unmerged LoRA adapter (PEFT's `lora_A` / `lora_B`), added to the output.
    pub lora: Option<LoraAdapter>,
}

impl Linear {
    pub fn new(weight: Tensor<2>, bias: Option<Tensor<1>>) -> Self {
        Self {
            weight: Weight::new(weight),
            bias: bias.map(Param::from_tensor),
            lora: None,
        }
    }

    /// A layer whose base weight stays quantized on the device (28% of f32 for Q8_0, 19%
    /// for Q4_0/Q4_1).
    pub fn quantized(weight: QuantizedLinear, bias: Option<Tensor<1>>) -> Self {
        Self {
            weight: Weight::Quantized(Codes(weight)),
            bias: bias.map(Param::from_tensor),
            lora: None,
        }
    }

    /// The base weight `[out, in]` in f32 (dequantized if it is kept quantized).
    pub fn base_weight(&self) -> Tensor<2> {
        self.weight.to_f32()
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
        let weight = match &self.weight {
            Weight::Dense(w) => w.val(),
            Weight::Quantized(Codes(q)) => return self.forward_quantized(q, x),
            Weight::Rows(_) => return self.forward_unfused(x),
        };
        if let Some(lora) = self.fused_adapter(&x) {
            let bias = self.bias_or_zeros(&x.device());
            return kernels::lora_linear(
                x,
                weight,
                lora.lora_A.val(),
                lora.lora_B.val(),
                bias,
                lora.scaling,
            );
        }
        if self.lora.is_none() {
            let bias = self.bias.as_ref().map(|b| b.val());
            if let Some(y) = kernels::inference::linear(&x, &weight, bias) {
                return y;
            }
        }
        self.forward_unfused(x)
    }

    /// `x · Wᵀ + b`, plus the adapter's own product: plain tensor ops.
    fn forward_unfused(&self, x: Tensor<2>) -> Tensor<2> {
        let y = self.weight.project(x.clone());
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
    /// Each layer's `forward` of one input `[batch, seq, in]`. Quantized layers without
    /// adapters take one op on the CPU for a decoding step's few rows (one hand-off to the
    /// threads for all of them, each output to the bit what its own op gives); otherwise each
    /// layer its own.
    pub fn forward_many<const N: usize>(layers: [&Linear; N], x: Tensor<3>) -> [Tensor<3>; N] {
        let [b, s, d] = x.dims();
        let weights: Option<Vec<&QuantizedLinear>> = layers
            .iter()
            .map(|l| match (&l.weight, &l.lora) {
                (Weight::Quantized(Codes(q)), None) => Some(q),
                _ => None,
            })
            .collect();
        let x2 = x.clone().reshape([b * s, d]);
        let ys = weights.and_then(|ws| kernels::inference::project_quantized(&x2, &ws));
        let Some(ys) = ys else {
            return layers.map(|l| l.forward(x.clone()));
        };
        let mut ys = ys.into_iter();
        layers.map(|l| {
            let y = ys.next().expect("one output per layer");
            let y = match &l.bias {
                Some(bias) => y + bias.val().unsqueeze_dim(0),
                None => y,
            };
            let out = y.dims()[1];
            y.reshape([b, s, out])
        })
    }

    /// The layer over its quantized base: the adapter (or a rank-1 zero one) rides in the
    /// kernel's epilogue.
    fn forward_quantized(&self, q: &QuantizedLinear, x: Tensor<2>) -> Tensor<2> {
        let device = x.device();
        let bias = self.bias_or_zeros(&device);
        match self.fused_adapter(&x) {
            Some(lora) => kernels::lora_linear_quantized(
                x,
                q,
                lora.lora_A.val(),
                lora.lora_B.val(),
                bias,
                lora.scaling,
            ),
            None => {
                let a = Tensor::zeros([1, q.k], &device);
                let b = Tensor::zeros([q.n, 1], &device);
                let y = kernels::lora_linear_quantized(x.clone(), q, a, b, bias, 0.0);
                match &self.lora {
                    Some(lora) => y + lora.forward_2d(x),
                    None => y,
                }
            }
        }
    }

    /// The adapter, when the fused op can carry it: turned on (`MENTALQLM_KERNELS=0` turns
    /// it off) and without dropout under autodiff (dropout on the LoRA input alone is not
    /// part of the fused op).
    fn fused_adapter(&self, x: &Tensor<2>) -> Option<&LoraAdapter> {
        self.lora
            .as_ref()
            .filter(|lora| lora.fused && !(lora.dropout > 0.0 && x.is_autodiff()))
    }

    /// The bias, or zeros for a layer without one (the fused ops always take a bias).
    fn bias_or_zeros(&self, device: &Device) -> Tensor<1> {
        match &self.bias {
            Some(b) => b.val(),
            None => Tensor::zeros([self.out_features()], device),
        }
    }

    /// Folds the adapter into the base weight (`W += s·B·A`) and drops it; a quantized
    /// base becomes f32.
    pub fn merge_lora(&mut self) {
        if let Some(lora) = self.lora.take() {
            let merged = self.base_weight() + lora.delta();
            self.weight = Weight::new(merged.detach());
        }
    }
}
