//! The ops on Burn's CPU backend over f32 values; other dtypes take the reference.

use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::{Flex, TensorMetadata};

use super::InferenceOps;
use crate::cpu::{self, CHUNK, MatRef};
use crate::lora::cpu::code_words;
use crate::lora::cpu_quantized::{self, Codes};
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
        let (m, n, k) = (xm.rows, wm.rows, wm.cols);
        // In a browser, a prompt's rows take the kernel V8 runs faster than gemm's.
        let many = cfg!(target_family = "wasm") && m > cpu_quantized::CHUNKED_ROWS && k % 4 == 0;
        let dense = many
            .then(|| cpu::dense_f32(&x).zip(cpu::dense_f32(&w)))
            .flatten();
        let mut y = match dense {
            Some((xd, wd)) => cpu::matmul_many_rows(&xd, m, &wd, n, k),
            None => cpu::gemm_new(xm, wm.t(), 1.0),
        };
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
/// threads, [`cpu_quantized::DIRECT_ROWS`] rows of `x` at a time; each weight through the
/// quantized op alone when any operand is not as that product takes it.
fn project<const N: usize>(x: FloatTensor<Flex>, weights: [Packed; N]) -> Vec<FloatTensor<Flex>> {
    let (m, k) = (x.shape()[0], x.shape()[1]);
    // The outputs and their widths, or `None` (the borrows of `x` and `weights` end here).
    let direct = cpu::dense_f32(&x).and_then(|xd| {
        let values = weights
            .each_ref()
            .map(|(q, s, mins, _)| (code_words(q), cpu::dense_f32(s), cpu::dense_f32(mins)));
        let codes = values
            .iter()
            .zip(&weights)
            .map(|((words, scales, mins), (_, s, _, bits))| {
                let shape = [s.shape()[0], 32 * s.shape()[1]];
                Codes::new(*bits, shape, (*words)?, scales.as_ref()?, mins.as_ref()?)
                    .filter(|c| c.k == k)
            })
            .collect::<Option<Vec<_>>>()?;
        let ys = cpu_quantized::matmul_chunked_rows(&xd, m, &codes);
        Some((ys, codes.iter().map(|c| c.n).collect::<Vec<_>>()))
    });
    match direct {
        Some((ys, ns)) => ys
            .into_iter()
            .zip(ns)
            .map(|(y, n)| cpu::tensor(y, &[m, n]))
            .collect(),
        None => weights
            .into_iter()
            .map(|(q, s, mins, bits)| {
                let n = s.shape()[0];
                let a = cpu::tensor(vec![0.0; k], &[1, k]);
                let b = cpu::tensor(vec![0.0; n], &[n, 1]);
                let bias = cpu::tensor(vec![0.0; n], &[n]);
                Flex::lora_linear_quantized(x.clone(), q, s, mins, a, b, bias, bits, 0.0)
            })
            .collect(),
    }
}
