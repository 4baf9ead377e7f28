//! The LoRA ops in plain backend ops: the fallback on backends without our kernels and the
//! reference the kernels are tested against. The backward pass is written once, over the
//! extension's ops, so on wgpu it runs our kernels and elsewhere these references.

use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::{Backend, Scalar, TensorMetadata};
use burn::tensor::{FloatDType, Slice};

use crate::LoraOps;

/// `x·Wᵀ + bias + s·(x·Aᵀ)·Bᵀ` for `x [m, k]`, `w [n, k]`, `a [r, k]`, `b [n, r]`, `bias [n]`.
pub fn lora_linear<B: Backend>(
    x: FloatTensor<B>,
    w: FloatTensor<B>,
    a: FloatTensor<B>,
    b: FloatTensor<B>,
    bias: FloatTensor<B>,
    scaling: f32,
) -> FloatTensor<B> {
    lora_linear_keep::<B>(x, w, a, b, bias, scaling).0
}

/// `(x·Wᵀ + bias + s·t·Bᵀ, t)` with `t = x·Aᵀ [m, r]`, kept for the gradient of B.
pub fn lora_linear_keep<B: Backend>(
    x: FloatTensor<B>,
    w: FloatTensor<B>,
    a: FloatTensor<B>,
    b: FloatTensor<B>,
    bias: FloatTensor<B>,
    scaling: f32,
) -> (FloatTensor<B>, FloatTensor<B>) {
    let t = B::float_matmul(x.clone(), B::float_transpose(a));
    (lora_linear_low::<B>(x, w, t.clone(), b, bias, scaling), t)
}

/// `x·Wᵀ + bias + s·t·Bᵀ` for `t = x·Aᵀ [m, r]`.
pub fn lora_linear_low<B: Backend>(
    x: FloatTensor<B>,
    w: FloatTensor<B>,
    t: FloatTensor<B>,
    b: FloatTensor<B>,
    bias: FloatTensor<B>,
    scaling: f32,
) -> FloatTensor<B> {
    let dtype = x.dtype();
    let base = B::float_matmul(x, B::float_transpose(w));
    let low = B::float_matmul(t, B::float_transpose(b));
    let n = bias.shape()[0];
    let bias = B::float_reshape(bias, [1, n].into());
    B::float_add(
        B::float_add(base, bias),
        B::float_mul_scalar(low, Scalar::new(scaling, &dtype)),
    )
}

/// `g·W + s·gb·A`: the input gradient for the output gradient `g [m, n]`, given
/// `gb = g·B [m, r]`.
pub fn grad_input<B: Backend>(
    g: FloatTensor<B>,
    w: FloatTensor<B>,
    a: FloatTensor<B>,
    gb: FloatTensor<B>,
    scaling: f32,
) -> FloatTensor<B> {
    let s = Scalar::new(scaling, &g.dtype());
    let low = B::float_matmul(gb, a);
    B::float_add(B::float_matmul(g, w), B::float_mul_scalar(low, s))
}

/// `(g·W + s·u·A, u)` with `u = g·B [m, r]`, which the gradient of A needs too.
pub fn grad_input_keep<B: Backend>(
    g: FloatTensor<B>,
    w: FloatTensor<B>,
    a: FloatTensor<B>,
    b: FloatTensor<B>,
    scaling: f32,
) -> (FloatTensor<B>, FloatTensor<B>) {
    let u = B::float_matmul(g.clone(), b);
    (grad_input::<B>(g, w, a, u.clone(), scaling), u)
}

/// `s·op(lhs)·op(rhs)`, `op` transposing where asked.
pub fn scaled_matmul<B: Backend>(
    lhs: FloatTensor<B>,
    rhs: FloatTensor<B>,
    lhs_transposed: bool,
    rhs_transposed: bool,
    scaling: f32,
) -> FloatTensor<B> {
    let s = Scalar::new(scaling, &lhs.dtype());
    let lhs = if lhs_transposed {
        B::float_transpose(lhs)
    } else {
        lhs
    };
    let rhs = if rhs_transposed {
        B::float_transpose(rhs)
    } else {
        rhs
    };
    let out = B::float_matmul(lhs, rhs);
    if scaling == 1.0 {
        out
    } else {
        B::float_mul_scalar(out, s)
    }
}

/// Both factor gradients as two products, `(s·uᵀ·x, s·gᵀ·t)`: [`LoraOps::lora_factor_grads`]
/// where no kernel takes them.
pub fn factor_grads<B: LoraOps>(
    x: FloatTensor<B>,
    g: FloatTensor<B>,
    t: FloatTensor<B>,
    u: FloatTensor<B>,
    scaling: f32,
) -> (FloatTensor<B>, FloatTensor<B>) {
    (
        B::lora_scaled_matmul(u, x, true, false, scaling),
        B::lora_scaled_matmul(g, t, true, false, scaling),
    )
}

/// Gradients of the LoRA linear for the output gradient `g [m, n]`, each computed only
/// when `wanted` (a frozen base weight costs no `gᵀ·x`), through the extension's ops:
/// `(dx, dw, da, db, dbias)` = `(g·W + s·(g·B)·A, gᵀ·x, s·(g·B)ᵀ·x, s·gᵀ·t, Σ_rows g)`,
/// with `t = x·Aᵀ [m, r]` as the forward kept it.
#[allow(clippy::too_many_arguments)]
pub fn lora_linear_backward<B: LoraOps>(
    x: FloatTensor<B>,
    w: FloatTensor<B>,
    a: FloatTensor<B>,
    b: FloatTensor<B>,
    t: FloatTensor<B>,
    g: FloatTensor<B>,
    scaling: f32,
    wanted: [bool; 5],
) -> [Option<FloatTensor<B>>; 5] {
    let [want_x, want_w, want_a, want_b, want_bias] = wanted;
    // `gb = g·B [m, r]` comes with the input gradient, else on its own where A needs it.
    let (dx, gb) = if want_x {
        let (dx, gb) = B::lora_grad_input_keep(g.clone(), w, a.clone(), b, scaling);
        (Some(dx), Some(gb))
    } else {
        let gb = want_a.then(|| B::lora_scaled_matmul(g.clone(), b, false, false, 1.0));
        (None, gb)
    };
    let dw = want_w.then(|| B::lora_scaled_matmul(g.clone(), x.clone(), true, false, 1.0));
    let (m, r) = (g.shape()[0], t.shape()[1]);
    let (da, db) = match gb.filter(|_| want_a) {
        Some(gb)
            if want_b && crate::schedule::factors_in_one(m, r, &crate::settings::current()) =>
        {
            let (da, db) = B::lora_factor_grads(x.clone(), g.clone(), t, gb, scaling);
            (Some(da), Some(db))
        }
        gb => (
            gb.map(|gb| B::lora_scaled_matmul(gb, x.clone(), true, false, scaling)),
            want_b.then(|| B::lora_scaled_matmul(g.clone(), t, true, false, scaling)),
        ),
    };
    let n = g.shape()[1];
    let dbias = want_bias.then(|| B::float_reshape(B::float_sum_dim(g, 0), [n].into()));
    [dx, dw, da, db, dbias]
}

/// Per-row `logsumexp(h·Wᵀ) - h·W[t]` for `hidden [n, d]`, `weight [vocab, d]` and
/// `targets [n]`, and when asked the gradient of its sum for `hidden`, `softmax(h·Wᵀ)·W -
/// W[t]`: the reference of [`crate::nll`], and the op itself on backends without their own.
pub fn vocab_nll<B: Backend>(
    hidden: FloatTensor<B>,
    weight: FloatTensor<B>,
    targets: IntTensor<B>,
    with_grad: bool,
) -> (FloatTensor<B>, Option<FloatTensor<B>>) {
    let n = hidden.shape()[0];
    let logits = B::float_matmul(hidden, B::float_transpose(weight.clone()));
    let max = B::float_max_dim(logits.clone(), 1); // [n, 1]
    let e = B::float_exp(B::float_sub(logits.clone(), max.clone()));
    let sum = B::float_sum_dim(e.clone(), 1); // [n, 1]
    let lse = B::float_add(B::float_log(sum.clone()), max);
    let column = B::int_reshape(targets.clone(), [n, 1].into());
    let picked = B::float_gather(1, logits, column);
    let nll = B::float_reshape(B::float_sub(lse, picked), [n].into());
    let grad = with_grad.then(|| {
        let p = B::float_div(e, sum);
        let target_rows = B::float_select(weight.clone(), 0, targets);
        B::float_sub(B::float_matmul(p, weight), target_rows)
    });
    (nll, grad)
}

/// Softmax over the last dimension (the reference of [`crate::activation`]).
pub fn softmax_last<B: Backend>(x: FloatTensor<B>) -> FloatTensor<B> {
    let dim = x.shape().num_dims() - 1;
    let max = B::float_max_dim(x.clone(), dim);
    let e = B::float_exp(B::float_sub(x, max));
    let sum = B::float_sum_dim(e.clone(), dim);
    B::float_div(e, sum)
}

/// `y ⊙ (g - Σ_last g ⊙ y)`: the softmax's input gradient from its output `y`.
pub fn softmax_last_backward<B: Backend>(y: FloatTensor<B>, g: FloatTensor<B>) -> FloatTensor<B> {
    let dim = y.shape().num_dims() - 1;
    let dot = B::float_sum_dim(B::float_mul(g.clone(), y.clone()), dim);
    B::float_mul(y, B::float_sub(g, dot))
}

/// `silu(gate) ⊙ up`.
pub fn swiglu<B: Backend>(gate: FloatTensor<B>, up: FloatTensor<B>) -> FloatTensor<B> {
    let silu = B::float_mul(gate.clone(), B::sigmoid(gate));
    B::float_mul(silu, up)
}

/// The gradients of `silu(gate) ⊙ up` for the output gradient `g`: `(g ⊙ up ⊙ σ ⊙ (1 +
/// gate ⊙ (1 - σ)), g ⊙ silu(gate))`, with `σ = sigmoid(gate)`.
pub fn swiglu_backward<B: Backend>(
    gate: FloatTensor<B>,
    up: FloatTensor<B>,
    g: FloatTensor<B>,
) -> (FloatTensor<B>, FloatTensor<B>) {
    let dtype = gate.dtype();
    let one = || Scalar::new(1.0, &dtype);
    let sig = B::sigmoid(gate.clone());
    let silu = B::float_mul(gate.clone(), sig.clone());
    let d_up = B::float_mul(g.clone(), silu);
    let one_minus = B::float_add_scalar(B::float_neg(sig.clone()), one());
    let slope = B::float_add_scalar(B::float_mul(gate, one_minus), one());
    let d_gate = B::float_mul(B::float_mul(B::float_mul(g, up), sig), slope);
    (d_gate, d_up)
}

/// The f32 weight `[n, k]` behind packed codes (the layout of [`crate::quant`]), in
/// backend ops: 16-bit codes are half floats, 8-bit codes are signed bytes times the block
/// scale, 4-bit codes are nibbles times the scale plus the block minimum.
pub fn dequantize<B: Backend>(
    quants: IntTensor<B>,
    scales: FloatTensor<B>,
    mins: FloatTensor<B>,
    bits: u32,
) -> FloatTensor<B> {
    let idtype = quants.dtype();
    let int = |v: i64| Scalar::new(v, &idtype);
    let [n, blocks] = [scales.shape()[0], scales.shape()[1]];
    let words = quants.shape()[1];
    let per_word = (32 / bits) as usize;
    let mask = (1i64 << bits) - 1;
    let codes: Vec<IntTensor<B>> = (0..per_word)
        .map(|j| {
            let shifted =
                B::bitwise_right_shift_scalar(quants.clone(), int(j as i64 * bits as i64));
            let code = B::bitwise_and_scalar(shifted, int(mask));
            B::int_reshape(code, [n, words, 1].into())
        })
        .collect();
    let mut codes = B::int_reshape(B::int_cat(codes, 2), [n, blocks, 32].into());
    if bits == 16 {
        return B::float_reshape(
            B::float_mul(
                half_floats::<B>(codes),
                B::float_reshape(scales, [n, blocks, 1].into()),
            ),
            [n, blocks * 32].into(),
        );
    }
    if bits == 8 {
        // Two's complement of a byte: ((q + 128) & 255) - 128.
        let wrapped = B::bitwise_and_scalar(B::int_add_scalar(codes, int(128)), int(255));
        codes = B::int_sub_scalar(wrapped, int(128));
    }
    let dtype = scales.dtype();
    let codes = B::int_into_float(codes, FloatDType::from(dtype));
    let scales = B::float_reshape(scales, [n, blocks, 1].into());
    let mut w = B::float_mul(codes, scales);
    if bits == 4 {
        w = B::float_add(w, B::float_reshape(mins, [n, blocks, 1].into()));
    }
    B::float_reshape(w, [n, blocks * 32].into())
}

/// IEEE half floats from their 16-bit patterns `h = s·2¹⁵ + e·2¹⁰ + f`, exactly, in backend
/// ops: `(-1)ˢ · f' · 2^(e' - 25)`, where a normal number (`e > 0`) has `f' = f + 2¹⁰` and
/// `e' = e`, and a subnormal one has `f' = f` and `e' = 1`. The power of two is looked up
/// in a table of 32, so no rounding enters. Infinities and NaNs (`e = 31`), which no weight
/// should hold, read as finite numbers.
fn half_floats<B: Backend>(bits: IntTensor<B>) -> FloatTensor<B> {
    let idtype = bits.dtype();
    let device = bits.device();
    let int = |v: i64| Scalar::new(v, &idtype);
    let shape = bits.shape();
    let count = shape.num_elements();
    let sign = B::bitwise_right_shift_scalar(bits.clone(), int(15));
    let exponent = B::bitwise_and_scalar(
        B::bitwise_right_shift_scalar(bits.clone(), int(10)),
        int(31),
    );
    let fraction = B::bitwise_and_scalar(bits, int(1023));
    let normal = B::int_clamp_max(exponent.clone(), int(1));
    let fraction = B::int_add(fraction, B::int_mul_scalar(normal, int(1024)));
    let powers: Vec<f32> = (0..32).map(|e| 2f32.powi(e - 25)).collect();
    let table = B::float_from_data(burn::tensor::TensorData::new(powers, [32]), &device);
    let exponent = B::int_reshape(B::int_clamp_min(exponent, int(1)), [count].into());
    let scale = B::float_reshape(B::float_select(table, 0, exponent), shape);
    // 1 - 2s: the sign as ±1, applied in floats so that -0 keeps its sign.
    let sign = B::int_into_float(
        B::int_add_scalar(B::int_mul_scalar(sign, int(-2)), int(1)),
        FloatDType::F32,
    );
    let magnitude = B::float_mul(B::int_into_float(fraction, FloatDType::F32), scale);
    B::float_mul(magnitude, sign)
}

/// Attention with grouped KV heads and an additive mask, `[b, s, h·d]` (the reference of
/// [`crate::attention`]): the `group` query heads that share a KV head are stacked along
/// the sequence axis, so K and V are not repeated.
pub fn attention<B: Backend>(
    q: FloatTensor<B>,
    k: FloatTensor<B>,
    v: FloatTensor<B>,
    mask: FloatTensor<B>,
) -> FloatTensor<B> {
    let [b, h, s, d] = [q.shape()[0], q.shape()[1], q.shape()[2], q.shape()[3]];
    let [kvh, t] = [k.shape()[1], k.shape()[2]];
    let group = h / kvh;
    let dtype = q.dtype();
    let q = B::float_reshape(q, [b, kvh, group * s, d].into());
    let scores = B::float_matmul(q, B::float_swap_dims(k, 2, 3));
    let scores = B::float_mul_scalar(scores, Scalar::new(1.0 / (d as f64).sqrt(), &dtype));
    let scores = B::float_add(B::float_reshape(scores, [b, h, s, t].into()), mask);
    let probs = B::float_reshape(softmax_last::<B>(scores), [b, kvh, group * s, t].into());
    let out = B::float_reshape(B::float_matmul(probs, v), [b, h, s, d].into());
    B::float_reshape(B::float_swap_dims(out, 1, 2), [b, s, h * d].into())
}

/// RMSNorm over the last dimension, `x / √(mean(x²) + eps) · weight` (the reference of
/// [`crate::inference`]).
pub fn rms_norm<B: Backend>(x: FloatTensor<B>, weight: FloatTensor<B>, eps: f32) -> FloatTensor<B> {
    let dims = x.shape().num_dims();
    let dtype = x.dtype();
    let mean = B::float_mean_dim(B::float_mul(x.clone(), x.clone()), dims - 1);
    let rms = B::float_sqrt(B::float_add_scalar(mean, Scalar::new(eps as f64, &dtype)));
    let mut shape = vec![1; dims];
    shape[dims - 1] = weight.shape()[0];
    B::float_mul(B::float_div(x, rms), B::float_reshape(weight, shape.into()))
}

/// `x [b, s, n·d]` in heads `[b, n, s, d]`, rotated: `x·cos + rotate_half(x)·sin`,
/// `rotate_half(x) = [-x₂, x₁]`.
pub fn rope_heads<B: Backend>(
    x: FloatTensor<B>,
    cos: FloatTensor<B>,
    sin: FloatTensor<B>,
    heads: usize,
) -> FloatTensor<B> {
    let [b, s] = [x.shape()[0], x.shape()[1]];
    let d = cos.shape()[3];
    let half = d / 2;
    let x = B::float_swap_dims(B::float_reshape(x, [b, s, heads, d].into()), 1, 2);
    let last = |r: std::ops::Range<usize>| {
        [
            Slice::from(..),
            Slice::from(..),
            Slice::from(..),
            Slice::from(r),
        ]
    };
    let x1 = B::float_slice(x.clone(), &last(0..half));
    let x2 = B::float_slice(x.clone(), &last(half..d));
    let rotated = B::float_cat(vec![B::float_neg(x2), x1], 3);
    B::float_add(B::float_mul(x, cos), B::float_mul(rotated, sin))
}

/// `a + b`.
pub fn add<B: Backend>(a: FloatTensor<B>, b: FloatTensor<B>) -> FloatTensor<B> {
    B::float_add(a, b)
}

/// `x·Wᵀ + bias`.
pub fn linear<B: Backend>(
    x: FloatTensor<B>,
    w: FloatTensor<B>,
    bias: FloatTensor<B>,
) -> FloatTensor<B> {
    let n = bias.shape()[0];
    let y = B::float_matmul(x, B::float_swap_dims(w, 0, 1));
    B::float_add(y, B::float_reshape(bias, [1, n].into()))
}
