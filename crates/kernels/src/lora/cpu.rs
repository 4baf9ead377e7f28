//! The LoRA linear on Burn's CPU backend: the same products as the reference, but each
//! written by gemm straight into its output with the bias, the low-rank term and the
//! scalings folded into gemm's accumulation, instead of a fresh tensor per product and one
//! single-threaded pass per addition and scaling. A quantized base goes through
//! [`cpu_quantized`]. Dtypes other than f32 take the reference.

use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::{DType, Flex, TensorMetadata};

use super::cpu_quantized::{self, CHUNKED_ROWS, Codes};
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
        Self::lora_linear_keep(x, w, a, b, bias, scaling).0
    }

    fn lora_linear_keep(
        x: FloatTensor<Self>,
        w: FloatTensor<Self>,
        a: FloatTensor<Self>,
        b: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        scaling: f32,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        // `t = x·Aᵀ` by gemm (or the reference for tensors gemm does not take), then the rest.
        let t = Self::lora_scaled_matmul(x.clone(), a, false, true, 1.0);
        (linear_low(x, w, t.clone(), b, bias, scaling), t)
    }

    fn lora_grad_input_keep(
        g: FloatTensor<Self>,
        w: FloatTensor<Self>,
        a: FloatTensor<Self>,
        b: FloatTensor<Self>,
        scaling: f32,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let gb = Self::lora_scaled_matmul(g.clone(), b, false, false, 1.0);
        (grad_input(g, w, a, gb.clone(), scaling), gb)
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
        let out = cpu::gemm_new(l, r, scaling);
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
        let shape = scales.shape();
        let (n, k) = (shape[0], 32 * shape[1]);
        let (
            Some(xm),
            Some(am),
            Some(bm),
            Some(words),
            Some(scale_values),
            Some(min_values),
            Some(bias_values),
        ) = (
            MatRef::of(&x),
            MatRef::of(&a),
            MatRef::of(&b),
            code_words(&quants),
            cpu::dense_f32(&scales),
            cpu::dense_f32(&mins),
            cpu::dense_f32(&bias),
        )
        else {
            return reference_quantized(x, quants, scales, mins, a, b, bias, bits, scaling);
        };
        let Some(codes) =
            Codes::new(bits, [n, k], words, &scale_values, &min_values).filter(|_| xm.cols == k)
        else {
            return reference_quantized(x, quants, scales, mins, a, b, bias, bits, scaling);
        };
        let m = xm.rows;
        let mut y = if m <= CHUNKED_ROWS {
            let xd = cpu::dense_f32(&x).expect("an f32 view above");
            let mut ys = cpu_quantized::matmul_chunked_rows(&xd, m, &[codes]);
            ys.pop().expect("one output")
        } else {
            let w = codes.dequantize();
            cpu::gemm_new(xm, MatRef::rows(&w, n, k).t(), 1.0)
        };
        cpu::add_rows(&mut y, &bias_values);
        // The adapter's term; a layer without one passes a zero rank-1 adapter and scaling 0.
        if scaling != 0.0 {
            let r = am.rows;
            let t = cpu::gemm_new(xm, am.t(), 1.0);
            cpu::gemm(&mut y, 1.0, MatRef::rows(&t, m, r), bm.t(), scaling);
        }
        cpu::tensor(y, &[m, n])
    }
}

/// The packed code words of a quantized weight (`quants`, held as i32), or `None` for
/// another dtype.
pub(crate) fn code_words(quants: &IntTensor<Flex>) -> Option<&[u32]> {
    (quants.dtype() == DType::I32)
        .then(|| quants.as_slice::<i32>())
        .flatten()
        .map(bytemuck::cast_slice)
}

/// The quantized op in Burn ops, for tensors the CPU op does not take.
#[allow(clippy::too_many_arguments)]
fn reference_quantized(
    x: FloatTensor<Flex>,
    quants: IntTensor<Flex>,
    scales: FloatTensor<Flex>,
    mins: FloatTensor<Flex>,
    a: FloatTensor<Flex>,
    b: FloatTensor<Flex>,
    bias: FloatTensor<Flex>,
    bits: u32,
    scaling: f32,
) -> FloatTensor<Flex> {
    let w = reference::dequantize::<Flex>(quants, scales, mins, bits);
    reference::lora_linear::<Flex>(x, w, a, b, bias, scaling)
}

/// `x·Wᵀ + bias + s·t·Bᵀ`, each product written by gemm into the one output.
fn linear_low(
    x: FloatTensor<Flex>,
    w: FloatTensor<Flex>,
    t: FloatTensor<Flex>,
    b: FloatTensor<Flex>,
    bias: FloatTensor<Flex>,
    scaling: f32,
) -> FloatTensor<Flex> {
    let bias_values = cpu::dense_f32(&bias);
    let (Some(xm), Some(wm), Some(tm), Some(bm), Some(bias_values)) = (
        MatRef::of(&x),
        MatRef::of(&w),
        MatRef::of(&t),
        MatRef::of(&b),
        bias_values,
    ) else {
        return reference::lora_linear_low::<Flex>(x, w, t, b, bias, scaling);
    };
    let (m, n) = (xm.rows, wm.rows);
    let mut y = cpu::gemm_new(xm, wm.t(), 1.0);
    cpu::add_rows(&mut y, &bias_values);
    cpu::gemm(&mut y, 1.0, tm, bm.t(), scaling);
    cpu::tensor(y, &[m, n])
}

/// `g·W + s·gb·A`, both products written by gemm into the one output.
fn grad_input(
    g: FloatTensor<Flex>,
    w: FloatTensor<Flex>,
    a: FloatTensor<Flex>,
    gb: FloatTensor<Flex>,
    scaling: f32,
) -> FloatTensor<Flex> {
    let (Some(gm), Some(wm), Some(am), Some(gbm)) = (
        MatRef::of(&g),
        MatRef::of(&w),
        MatRef::of(&a),
        MatRef::of(&gb),
    ) else {
        return reference::grad_input::<Flex>(g, w, a, gb, scaling);
    };
    let (m, k) = (gm.rows, wm.cols);
    let mut dx = cpu::gemm_new(gm, wm, 1.0);
    cpu::gemm(&mut dx, 1.0, gbm, am, scaling);
    cpu::tensor(dx, &[m, k])
}
