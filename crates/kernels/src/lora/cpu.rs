//! The LoRA linear on Burn's CPU backend: the same products as the reference, but each
//! written by gemm straight into its output with the bias, the low-rank term and the
//! scalings folded into gemm's accumulation, instead of a fresh tensor per product and one
//! single-threaded pass per addition and scaling. Dtypes other than f32 take the reference.

use burn::backend::Flex;
use burn::backend::tensor::{FloatTensor, IntTensor};

use crate::cpu::{self, MatRef};
use crate::{LoraOps, reference};

impl LoraOps for Flex {
    fn lora_linear(
        x: FloatTensor<Self>,
        w: FloatTensor<Self>,
        a: FloatTensor<Self>,
        b: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        scaling: f32,
    ) -> FloatTensor<Self> {
        let bias_values = cpu::dense_f32(&bias);
        let (Some(xm), Some(wm), Some(am), Some(bm), Some(bias_values)) = (
            MatRef::of(&x),
            MatRef::of(&w),
            MatRef::of(&a),
            MatRef::of(&b),
            bias_values,
        ) else {
            return reference::lora_linear::<Self>(x, w, a, b, bias, scaling);
        };
        let (m, n, r) = (xm.rows, wm.rows, am.rows);
        let mut t = vec![0f32; m * r];
        cpu::gemm(&mut t, 0.0, xm, am.t(), 1.0);
        let mut y = vec![0f32; m * n];
        cpu::for_each_chunk(&mut y, n, |_, row| row.copy_from_slice(&bias_values));
        cpu::gemm(&mut y, 1.0, xm, wm.t(), 1.0);
        cpu::gemm(&mut y, 1.0, MatRef::rows(&t, m, r), bm.t(), scaling);
        cpu::tensor(y, &[m, n])
    }

    fn lora_grad_input(
        g: FloatTensor<Self>,
        w: FloatTensor<Self>,
        a: FloatTensor<Self>,
        gb: FloatTensor<Self>,
        scaling: f32,
    ) -> FloatTensor<Self> {
        let (Some(gm), Some(wm), Some(am), Some(gbm)) = (
            MatRef::of(&g),
            MatRef::of(&w),
            MatRef::of(&a),
            MatRef::of(&gb),
        ) else {
            return reference::grad_input::<Self>(g, w, a, gb, scaling);
        };
        let (m, k) = (gm.rows, wm.cols);
        let mut dx = vec![0f32; m * k];
        cpu::gemm(&mut dx, 0.0, gm, wm, 1.0);
        cpu::gemm(&mut dx, 1.0, gbm, am, scaling);
        cpu::tensor(dx, &[m, k])
    }

    fn lora_scaled_matmul(
        lhs: FloatTensor<Self>,
        rhs: FloatTensor<Self>,
        lhs_transposed: bool,
        rhs_transposed: bool,
        scaling: f32,
    ) -> FloatTensor<Self> {
        let (Some(l), Some(r)) = (MatRef::of(&lhs), MatRef::of(&rhs)) else {
            return reference::scaled_matmul::<Self>(
                lhs,
                rhs,
                lhs_transposed,
                rhs_transposed,
                scaling,
            );
        };
        let l = if lhs_transposed { l.t() } else { l };
        let r = if rhs_transposed { r.t() } else { r };
        let mut out = vec![0f32; l.rows * r.cols];
        cpu::gemm(&mut out, 0.0, l, r, scaling);
        cpu::tensor(out, &[l.rows, r.cols])
    }

    fn lora_linear_quantized(
        x: FloatTensor<Self>,
        quants: IntTensor<Self>,
        scales: FloatTensor<Self>,
        mins: FloatTensor<Self>,
        a: FloatTensor<Self>,
        b: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        bits: u32,
        scaling: f32,
    ) -> FloatTensor<Self> {
        let w = reference::dequantize::<Self>(quants, scales, mins, bits);
        Self::lora_linear(x, w, a, b, bias, scaling)
    }
}
