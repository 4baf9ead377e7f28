//! Rotary position embeddings with HF's half-split rotation
//! (`x·cos + rotate_half(x)·sin`, `rotate_half(x) = [-x₂, x₁]`).
//!
//! The tables are runtime state, not parameters: built once per device and passed to
//! `forward`.

use burn::tensor::{Device, Int, Tensor, TensorData};

pub struct Rope {
    /// `[len, head_dim]`
    cos: Tensor<2>,
    /// `[len, head_dim]`
    sin: Tensor<2>,
    len: usize,
    head_dim: usize,
}

impl Rope {
    /// Tables for positions `0..len`. Computed in f32 the way transformers does
    /// (`inv_freq = 1 / theta^(2i/d)`, `freqs = pos · inv_freq`), so logits match to 1e-5.
    pub fn new(head_dim: usize, theta: f64, len: usize, device: &Device) -> Self {
        let half = head_dim / 2;
        let inv_freq: Vec<f32> = (0..half)
            .map(|i| 1.0 / (theta as f32).powf((2 * i) as f32 / head_dim as f32))
            .collect();
        let mut cos = Vec::with_capacity(len * head_dim);
        let mut sin = Vec::with_capacity(len * head_dim);
        for pos in 0..len {
            // The frequencies are repeated for both halves, as HF's `cat((freqs, freqs))`.
            for _ in 0..2 {
                for f in &inv_freq {
                    let angle = pos as f32 * f;
                    cos.push(angle.cos());
                    sin.push(angle.sin());
                }
            }
        }
        Self {
            cos: Tensor::from_data(TensorData::new(cos, [len, head_dim]), device),
            sin: Tensor::from_data(TensorData::new(sin, [len, head_dim]), device),
            len,
            head_dim,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// `(cos, sin)` gathered at `positions` (`[batch·seq]`), shaped `[batch, 1, seq, head_dim]`
    /// to broadcast over heads.
    pub fn tables(
        &self,
        positions: Tensor<1, Int>,
        batch: usize,
        seq: usize,
    ) -> (Tensor<4>, Tensor<4>) {
        let shape = [batch, 1, seq, self.head_dim];
        let cos = self.cos.clone().select(0, positions.clone()).reshape(shape);
        let sin = self.sin.clone().select(0, positions).reshape(shape);
        (cos, sin)
    }

    /// Rotates `x` (`[batch, heads, seq, head_dim]`) with tables from [`Rope::tables`].
    pub fn apply(x: Tensor<4>, cos: &Tensor<4>, sin: &Tensor<4>) -> Tensor<4> {
        let half = x.dims()[3] / 2;
        let x1 = x.clone().narrow(3, 0, half);
        let x2 = x.clone().narrow(3, half, half);
        let rotated = Tensor::cat(vec![x2.neg(), x1], 3);
        x * cos.clone() + rotated * sin.clone()
    }
}
