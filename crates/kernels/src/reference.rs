//! The LoRA linear in plain backend ops: the fallback on backends without our kernels, the
//! reference the kernels are tested against, and the backward pass.

use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Scalar, TensorMetadata};

/// `x·Wᵀ + bias + s·(x·Aᵀ)·Bᵀ` for `x [m, k]`, `w [n, k]`, `a [r, k]`, `b [n, r]`, `bias [n]`.
pub fn lora_linear<B: Backend>(
    x: FloatTensor<B>,
    w: FloatTensor<B>,
    a: FloatTensor<B>,
    b: FloatTensor<B>,
    bias: FloatTensor<B>,
    scaling: f32,
) -> FloatTensor<B> {
    let dtype = x.dtype();
    let base = B::float_matmul(x.clone(), B::float_transpose(w));
    let t = B::float_matmul(x, B::float_transpose(a));
    let low = B::float_matmul(t, B::float_transpose(b));
    let n = bias.shape()[0];
    let bias = B::float_reshape(bias, [1, n].into());
    B::float_add(
        B::float_add(base, bias),
        B::float_mul_scalar(low, Scalar::new(scaling, &dtype)),
    )
}

/// Gradients of [`lora_linear`] for the output gradient `g [m, n]`, each computed only when
/// `wanted` (a frozen base weight costs no `gᵀ·x`):
/// `(dx, dw, da, db, dbias)` = `(g·W + s·(g·B)·A, gᵀ·x, s·(g·B)ᵀ·x, s·gᵀ·(x·Aᵀ), Σ_rows g)`.
pub fn lora_linear_backward<B: Backend>(
    x: FloatTensor<B>,
    w: FloatTensor<B>,
    a: FloatTensor<B>,
    b: FloatTensor<B>,
    g: FloatTensor<B>,
    scaling: f32,
    wanted: [bool; 5],
) -> [Option<FloatTensor<B>>; 5] {
    let s = Scalar::new(scaling, &x.dtype());
    let [want_x, want_w, want_a, want_b, want_bias] = wanted;
    let gb = (want_x || want_a).then(|| B::float_matmul(g.clone(), b)); // [m, r]
    let dx = want_x.then(|| {
        B::float_add(
            B::float_matmul(g.clone(), w),
            B::float_mul_scalar(B::float_matmul(gb.clone().expect("computed"), a.clone()), s),
        )
    });
    let dw = want_w.then(|| B::float_matmul(B::float_transpose(g.clone()), x.clone()));
    let da = want_a.then(|| {
        let gb = gb.clone().expect("computed");
        B::float_mul_scalar(B::float_matmul(B::float_transpose(gb), x.clone()), s)
    });
    let db = want_b.then(|| {
        let t = B::float_matmul(x, B::float_transpose(a));
        B::float_mul_scalar(B::float_matmul(B::float_transpose(g.clone()), t), s)
    });
    let n = g.shape()[1];
    let dbias = want_bias.then(|| B::float_reshape(B::float_sum_dim(g, 0), [n].into()));
    [dx, dw, da, db, dbias]
}
