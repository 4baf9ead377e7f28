//! The element-wise steps of a decoder block, for inference on the CPU: RMSNorm, the
//! rotary embedding (with the split into heads), and the residual addition; and a linear
//! layer without adapter, whose Burn matmul zero-fills and copies its output and adds the
//! bias in a pass on one thread.
//!
//! In Burn ops on the CPU backend each is several passes on one thread, each into a fresh
//! tensor: an RMSNorm is a square, a mean, an addition, a square root, a division and a
//! product; a rotation is two narrows, a negation, a concatenation, two products and a sum,
//! after a copy into the heads' layout. While they ran the second core idled: a 16 ×
//! 256-token prefill kept one core busy 28% less than the other (`perf`). Here each is one
//! pass on every thread. They have no backward: under autodiff (training) and on other
//! devices the model keeps Burn's ops.

mod cpu;

use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::{Backend, Dispatch, backend_extension};
use burn::tensor::{Device, Int, Tensor};

use crate::quant::QuantizedLinear;
use crate::reference;

#[backend_extension(Flex)]
pub trait InferenceOps: Backend {
    /// `x / √(mean(x²) + eps) · weight` over the last dimension.
    fn rms_norm(x: FloatTensor<Self>, weight: FloatTensor<Self>, eps: f32) -> FloatTensor<Self> {
        reference::rms_norm::<Self>(x, weight, eps)
    }

    /// `x [b, s, n·d]` split into `n` heads and rotated, `[b, n, s, d]`:
    /// `x·cos + rotate_half(x)·sin` with `cos`, `sin` `[b, 1, s, d]`.
    fn rope_heads(
        x: FloatTensor<Self>,
        cos: FloatTensor<Self>,
        sin: FloatTensor<Self>,
        heads: usize,
    ) -> FloatTensor<Self> {
        reference::rope_heads::<Self>(x, cos, sin, heads)
    }

    /// `a + b` for two tensors of one shape.
    fn add(a: FloatTensor<Self>, b: FloatTensor<Self>) -> FloatTensor<Self> {
        reference::add::<Self>(a, b)
    }

    /// `x·Wᵀ + bias` for `x [m, k]`, `w [n, k]`, `bias [n]`: a linear layer without adapter.
    fn linear(
        x: FloatTensor<Self>,
        w: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        reference::linear::<Self>(x, w, bias)
    }

    /// `(x·W₀ᵀ, x·W₁ᵀ)` for two weights kept quantized, each as `quants`, `scales`, `mins`
    /// of [`crate::LoraOps::lora_linear_quantized`] with its code width in `bits`: on the CPU
    /// one pass over the threads for both (a layer's gate and up projections).
    #[allow(clippy::too_many_arguments)]
    fn quantized_pair(
        x: FloatTensor<Self>,
        q0: IntTensor<Self>,
        s0: FloatTensor<Self>,
        m0: FloatTensor<Self>,
        q1: IntTensor<Self>,
        s1: FloatTensor<Self>,
        m1: FloatTensor<Self>,
        bits: [u32; 2],
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let project = |q, s, m, bits| reference_project::<Self>(x.clone(), q, s, m, bits);
        (project(q0, s0, m0, bits[0]), project(q1, s1, m1, bits[1]))
    }

    /// [`InferenceOps::quantized_pair`] for three weights (a layer's query, key and value
    /// projections).
    #[allow(clippy::too_many_arguments)]
    fn quantized_triple(
        x: FloatTensor<Self>,
        q0: IntTensor<Self>,
        s0: FloatTensor<Self>,
        m0: FloatTensor<Self>,
        q1: IntTensor<Self>,
        s1: FloatTensor<Self>,
        m1: FloatTensor<Self>,
        q2: IntTensor<Self>,
        s2: FloatTensor<Self>,
        m2: FloatTensor<Self>,
        bits: [u32; 3],
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let project = |q, s, m, bits| reference_project::<Self>(x.clone(), q, s, m, bits);
        (
            project(q0, s0, m0, bits[0]),
            project(q1, s1, m1, bits[1]),
            project(q2, s2, m2, bits[2]),
        )
    }
}

/// `x·Wᵀ` for a weight kept quantized, in Burn ops: the dequantized weight, then a matmul.
fn reference_project<B: Backend>(
    x: FloatTensor<B>,
    quants: IntTensor<B>,
    scales: FloatTensor<B>,
    mins: FloatTensor<B>,
    bits: u32,
) -> FloatTensor<B> {
    let w = reference::dequantize::<B>(quants, scales, mins, bits);
    B::float_matmul(x, B::float_swap_dims(w, 0, 1))
}

/// Whether the CPU op takes this tensor: on the CPU backend, outside autodiff.
fn on_cpu<const D: usize>(x: &Tensor<D>) -> bool {
    !x.is_autodiff() && x.device() == Device::flex()
}

/// RMSNorm over the last dimension: the op on the CPU, `None` elsewhere.
pub fn rms_norm<const D: usize>(x: Tensor<D>, weight: Tensor<1>, eps: f64) -> Option<Tensor<D>> {
    if !on_cpu(&x) || weight.dims()[0] != x.dims()[D - 1] {
        return None;
    }
    Some(Tensor::from_dispatch(<Dispatch as InferenceOps>::rms_norm(
        x.into_dispatch(),
        weight.into_dispatch(),
        eps as f32,
    )))
}

/// The rotary embedding of `x [b, s, heads·d]` in the heads' layout `[b, heads, s, d]`:
/// the op on the CPU, `None` elsewhere.
pub fn rope_heads(
    x: Tensor<3>,
    cos: &Tensor<4>,
    sin: &Tensor<4>,
    heads: usize,
) -> Option<Tensor<4>> {
    let [b, s, width] = x.dims();
    let d = cos.dims()[3];
    let fits = heads > 0
        && d % 2 == 0
        && width == heads * d
        && cos.dims() == [b, 1, s, d]
        && sin.dims() == [b, 1, s, d];
    if !fits || !on_cpu(&x) {
        return None;
    }
    Some(Tensor::from_dispatch(
        <Dispatch as InferenceOps>::rope_heads(
            x.into_dispatch(),
            cos.clone().into_dispatch(),
            sin.clone().into_dispatch(),
            heads,
        ),
    ))
}

/// `a + b`: on every thread on the CPU, Burn's addition elsewhere.
pub fn add<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> Tensor<D> {
    if !on_cpu(&a) || b.is_autodiff() || a.dims() != b.dims() {
        return a + b;
    }
    Tensor::from_dispatch(<Dispatch as InferenceOps>::add(
        a.into_dispatch(),
        b.into_dispatch(),
    ))
}

/// `x·Wᵀ + bias` (`bias` zeros when `None`): gemm straight into the output on the CPU,
/// `None` elsewhere (the caller keeps Burn's matmul).
pub fn linear(x: &Tensor<2>, w: &Tensor<2>, bias: Option<Tensor<1>>) -> Option<Tensor<2>> {
    let ([_, k], [n, wk]) = (x.dims(), w.dims());
    if !on_cpu(x) || w.is_autodiff() || k != wk || bias.as_ref().is_some_and(|b| b.dims() != [n]) {
        return None;
    }
    let bias = bias.unwrap_or_else(|| Tensor::zeros([n], &x.device()));
    Some(Tensor::from_dispatch(<Dispatch as InferenceOps>::linear(
        x.clone().into_dispatch(),
        w.clone().into_dispatch(),
        bias.into_dispatch(),
    )))
}

/// Rows of `x` up to which [`project_quantized`] takes the weights in one op: a decoding
/// step's rows, where each product is short and handing it to the threads is a large part of
/// its time. A prompt's rows keep one op per weight (the weight dequantized, then gemm).
pub const PROJECT_ROWS: usize = crate::lora::cpu_quantized::CHUNKED_ROWS;

/// `x·Wᵢᵀ` for each of two or three weights kept quantized, with one `k`: on the CPU, for at
/// most [`PROJECT_ROWS`] rows, in one op (each output equal to the weight's own product, to
/// the bit); `None` elsewhere, or for other counts and shapes (the caller takes each
/// weight's own op).
pub fn project_quantized(x: &Tensor<2>, ws: &[&QuantizedLinear]) -> Option<Vec<Tensor<2>>> {
    let [m, k] = x.dims();
    let fits = ws.iter().all(|w| w.k == k) && (1..=PROJECT_ROWS).contains(&m);
    if !fits || !on_cpu(x) {
        return None;
    }
    let parts = |w: &QuantizedLinear| {
        let quants: Tensor<2, Int> = w.quants.clone();
        (
            quants.into_dispatch(),
            w.scales.clone().into_dispatch(),
            w.mins.clone().into_dispatch(),
            w.format.bits(),
        )
    };
    let x = x.clone().into_dispatch();
    Some(match ws {
        [a, b] => {
            let ((q0, s0, m0, b0), (q1, s1, m1, b1)) = (parts(a), parts(b));
            let (y0, y1) =
                <Dispatch as InferenceOps>::quantized_pair(x, q0, s0, m0, q1, s1, m1, [b0, b1]);
            vec![Tensor::from_dispatch(y0), Tensor::from_dispatch(y1)]
        }
        [a, b, c] => {
            let ((q0, s0, m0, b0), (q1, s1, m1, b1), (q2, s2, m2, b2)) =
                (parts(a), parts(b), parts(c));
            let (y0, y1, y2) = <Dispatch as InferenceOps>::quantized_triple(
                x,
                q0,
                s0,
                m0,
                q1,
                s1,
                m1,
                q2,
                s2,
                m2,
                [b0, b1, b2],
            );
            [y0, y1, y2].map(Tensor::from_dispatch).into()
        }
        _ => return None,
    })
}
