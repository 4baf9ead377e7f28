//! The ops on Burn's CPU backend over f32 values; other dtypes take the reference.

use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::{DType, Flex, TensorMetadata};

use super::InferenceOps;
use crate::cpu::{self, CHUNK, MatRef};
use crate::lora::cpu_quantized::{self, Codes, DIRECT_ROWS};
use crate::{LoraOps, reference};

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
        let mut ys = project(x, [(q0, s0, m0, bits[0]), (q1, s1, m1, bits[1])]).into_iter();
        (ys.next().unwrap(), ys.next().unwrap())
    }

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
        let weights = [
            (q0, s0, m0, bits[0]),
            (q1, s1, m1, bits[1]),
            (q2, s2, m2, bits[2]),
        ];
        let mut ys = project(x, weights).into_iter();
        (ys.next().unwrap(), ys.next().unwrap(), ys.next().unwrap())
    }
}

/// One weight's packed codes as the quantized op takes them: `quants`, `scales`, `mins`
/// and the code width.
type Packed = (IntTensor<Flex>, FloatTensor<Flex>, FloatTensor<Flex>, u32);

/// `x·Wᵢᵀ` for every weight: the few-rows product of all of them in one pass over the
/// threads, [`DIRECT_ROWS`] rows of `x` at a time; each weight through the quantized op
/// alone when any operand is not as that product takes it.
fn project<const N: usize>(x: FloatTensor<Flex>, weights: [Packed; N]) -> Vec<FloatTensor<Flex>> {
    let alone = |x: FloatTensor<Flex>, weights: [Packed; N]| -> Vec<FloatTensor<Flex>> {
        weights
            .into_iter()
            .map(|(q, s, m, bits)| {
                let n = s.shape()[0];
                let k = x.shape()[1];
                let a = cpu::tensor(vec![0.0; k], &[1, k]);
                let b = cpu::tensor(vec![0.0; n], &[n, 1]);
                let bias = cpu::tensor(vec![0.0; n], &[n]);
                Flex::lora_linear_quantized(x.clone(), q, s, m, a, b, bias, bits, 0.0)
            })
            .collect()
    };
    let Some(xd) = cpu::dense_f32(&x) else {
        return alone(x, weights);
    };
    let k = x.shape()[1];
    let m = xd.len() / k.max(1);
    let values = weights.each_ref().map(|(q, s, mins, _)| {
        let words = (q.dtype() == DType::I32)
            .then(|| q.as_slice::<i32>())
            .flatten();
        (words, cpu::dense_f32(s), cpu::dense_f32(mins))
    });
    let mut codes = Vec::with_capacity(N);
    for ((words, scales, mins), (_, s, _, bits)) in values.iter().zip(&weights) {
        let (Some(words), Some(scales), Some(mins)) = (words, scales, mins) else {
            break;
        };
        let n = s.shape()[0];
        let words: &[u32] = bytemuck::cast_slice(words);
        match Codes::new(*bits, [n, 32 * s.shape()[1]], words, scales, mins) {
            Some(c) if c.k == k => codes.push(c),
            _ => break,
        }
    }
    if codes.len() < N || k == 0 {
        drop(codes);
        drop(values);
        drop(xd);
        return alone(x, weights);
    }
    let mut ys: Vec<Vec<f32>> = codes.iter().map(|w| vec![0f32; m * w.n]).collect();
    for (c, x) in xd.chunks(DIRECT_ROWS * k).enumerate() {
        let rows = x.len() / k;
        let mut outs: Vec<&mut [f32]> = ys
            .iter_mut()
            .zip(&codes)
            .map(|(y, w)| &mut y[c * DIRECT_ROWS * w.n..][..rows * w.n])
            .collect();
        cpu_quantized::matmul_few_rows_many(x, rows, &codes, &mut outs);
    }
    ys.into_iter()
        .zip(&codes)
        .map(|(y, w)| cpu::tensor(y, &[m, w.n]))
        .collect()
}
