//! The ops on Burn's CPU backend over f32 values; other dtypes take the reference.

use burn::backend::tensor::FloatTensor;
use burn::backend::{Flex, TensorMetadata};

use super::InferenceOps;
use crate::cpu::{self, CHUNK, MatRef};
use crate::reference;

impl InferenceOps for Flex {
    fn rms_norm(x: FloatTensor<Self>, weight: FloatTensor<Self>, eps: f32) -> FloatTensor<Self> {
        let (Some(xs), Some(ws)) = (cpu::dense_f32(&x), cpu::dense_f32(&weight)) else {
            return reference::rms_norm::<Self>(x, weight, eps);
        };
        let shape = x.shape().to_vec();
        let width = ws.len();
        let rows = (width * 64).max(CHUNK) / width;
        let mut y = cpu::zeros(xs.len());
        cpu::for_each_chunk(
            &mut y,
            rows * width,
            #[inline(always)]
            |task, out| {
                let at = task * rows * width;
                let xs = &xs[at..at + out.len()];
                for (out, x) in out.chunks_exact_mut(width).zip(xs.chunks_exact(width)) {
                    let rms = (cpu::dot(x, x) / width as f32 + eps).sqrt();
                    for ((o, &x), &w) in out.iter_mut().zip(x).zip(ws.iter()) {
                        *o = x / rms * w;
                    }
                }
            },
        );
        cpu::tensor(y, &shape)
    }

    fn rope_heads(
        x: FloatTensor<Self>,
        cos: FloatTensor<Self>,
        sin: FloatTensor<Self>,
        heads: usize,
    ) -> FloatTensor<Self> {
        let (Some(xs), Some(cs), Some(ss)) = (
            cpu::dense_f32(&x),
            cpu::dense_f32(&cos),
            cpu::dense_f32(&sin),
        ) else {
            return reference::rope_heads::<Self>(x, cos, sin, heads);
        };
        let [b, s] = [x.shape()[0], x.shape()[1]];
        let d = cos.shape()[3];
        let half = d / 2;
        let mut y = cpu::zeros(b * heads * s * d);
        // One task per (sequence, head): `[s, d]` of the output.
        cpu::for_each_chunk(
            &mut y,
            s * d,
            #[inline(always)]
            |task, out| {
                let (bi, hi) = (task / heads, task % heads);
                for (i, out) in out.chunks_exact_mut(d).enumerate() {
                    let row = bi * s + i;
                    let x = &xs[row * heads * d + hi * d..][..d];
                    let (c, sn) = (&cs[row * d..][..d], &ss[row * d..][..d]);
                    let (x1, x2) = x.split_at(half);
                    let (o1, o2) = out.split_at_mut(half);
                    for j in 0..half {
                        o1[j] = x1[j] * c[j] - x2[j] * sn[j];
                        o2[j] = x2[j] * c[half + j] + x1[j] * sn[half + j];
                    }
                }
            },
        );
        cpu::tensor(y, &[b, heads, s, d])
    }

    fn linear(
        x: FloatTensor<Self>,
        w: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let (Some(xm), Some(wm), Some(bias_values)) =
            (MatRef::of(&x), MatRef::of(&w), cpu::dense_f32(&bias))
        else {
            return reference::linear::<Self>(x, w, bias);
        };
        let mut y = cpu::gemm_new(xm, wm.t(), 1.0);
        cpu::add_rows(&mut y, &bias_values);
        cpu::tensor(y, &[xm.rows, wm.rows])
    }

    fn add(a: FloatTensor<Self>, b: FloatTensor<Self>) -> FloatTensor<Self> {
        let (Some(xs), Some(ys)) = (cpu::dense_f32(&a), cpu::dense_f32(&b)) else {
            return reference::add::<Self>(a, b);
        };
        let shape = a.shape().to_vec();
        let out = cpu::zip_map(
            &xs,
            &ys,
            #[inline(always)]
            |x, y| x + y,
        );
        cpu::tensor(out, &shape)
    }
}
