//! The op on Burn's CPU backend over f32 values; other dtypes take the reference.

use burn::backend::Flex;
use burn::backend::tensor::FloatTensor;

use super::AttentionOps;
use crate::cpu::{self, MatRef, View4};
use crate::reference;

/// Query rows per block of a prompt: each block scores the keys up to its last visible one,
/// which under a causal mask skips about half of the products.
const QUERY_BLOCK: usize = 32;

/// Query rows up to which scores are dot products rather than a gemm.
const FEW_QUERIES: usize = 4;

/// Mask values at or below this hide a key (the model's mask uses -1e30).
const HIDDEN: f32 = -1.0e29;

impl AttentionOps for Flex {
    fn attention_inference(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        mask: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let (Some(qv), Some(kv), Some(vv), Some(masks)) = (
            View4::of(&q),
            View4::of(&k),
            View4::of(&v),
            cpu::dense_f32(&mask),
        ) else {
            return reference::attention::<Self>(q, k, v, mask);
        };
        let [b, h, s, d] = qv.dims;
        let [_, kvh, t, _] = kv.dims;
        let group = h / kvh;
        let scale = 1.0 / (d as f32).sqrt();
        // Per (sequence, head): `[s, d]`, in the order of the tasks.
        let mut heads = cpu::zeros(b * h * s * d);
        cpu::for_each_task(
            &mut heads,
            s * d,
            #[inline(always)]
            |task, out| {
                let (bi, hi) = (task / h, task % h);
                let (query, keys, values) = (
                    qv.mat(bi, hi),
                    kv.mat(bi, hi / group),
                    vv.mat(bi, hi / group),
                );
                let masks = &masks[bi * s * t..(bi + 1) * s * t];
                // Keys after a row's last visible one (the future, in a causal mask) have
                // weight exp(-1e30 - max) = 0, so they are neither scored nor summed. A row
                // with no visible key (a padding query) keeps them all (a uniform softmax,
                // as the finite mask gives).
                let visible: Vec<usize> = masks
                    .chunks_exact(t)
                    .map(|m| m.iter().rposition(|&m| m > HIDDEN).map_or(t, |i| i + 1))
                    .collect();
                // A decoding step's few queries take dot products: gemm's setup costs more
                // than a [1, d]·[d, t] product.
                let few =
                    s <= FEW_QUERIES && [query, keys, values].iter().all(|m| m.col_stride == 1);
                // There, keys before the first visible one (a sequence's left padding in a
                // batch) are skipped too: a padded row then computes what it computes alone.
                let first = |r: usize| {
                    let m = &masks[r * t..(r + 1) * t];
                    if few {
                        m.iter().position(|&m| m > HIDDEN).unwrap_or(0)
                    } else {
                        0
                    }
                };
                let block = if few { s } else { QUERY_BLOCK };
                let mut scores = vec![0f32; block.min(s) * t];
                for (r0, out) in (0..s).step_by(block).zip(out.chunks_mut(block * d)) {
                    let rows = out.len() / d;
                    let seen = visible[r0..r0 + rows].iter().copied().max().unwrap_or(t);
                    let lo = (r0..r0 + rows).map(first).min().unwrap_or(0).min(seen);
                    let width = seen - lo;
                    let scores = &mut scores[..rows * width];
                    if few {
                        for (i, row) in scores.chunks_exact_mut(width).enumerate() {
                            let q = query.row(r0 + i);
                            for (j, v) in row.iter_mut().enumerate() {
                                *v = cpu::dot(q, keys.row(lo + j)) * scale;
                            }
                        }
                    } else {
                        let (q, k) = (query.row_range(r0, rows), keys.row_range(0, seen));
                        cpu::gemm_serial(scores, 0.0, q, k.t(), scale);
                    }
                    for (i, row) in scores.chunks_exact_mut(width).enumerate() {
                        let (mask, visible) = (&masks[(r0 + i) * t..][lo..seen], visible[r0 + i]);
                        row.iter_mut().zip(mask).for_each(|(v, m)| *v += m);
                        cpu::softmax_in_place(&mut row[..visible - lo]);
                        row[visible - lo..].fill(0.0);
                    }
                    if few {
                        for (row, out) in scores.chunks_exact(width).zip(out.chunks_exact_mut(d)) {
                            weighted_sum(row, values, lo, out);
                        }
                    } else {
                        let probs = MatRef::rows(scores, rows, seen);
                        cpu::gemm_serial(out, 0.0, probs, values.row_range(0, seen), 1.0);
                    }
                }
            },
        );
        // `[b, h, s, d]` → `[b, s, h·d]`.
        let mut y = cpu::zeros(b * s * h * d);
        cpu::for_each_chunk(&mut y, h * d, |row, out| {
            let (bi, i) = (row / s, row % s);
            for (hi, out) in out.chunks_exact_mut(d).enumerate() {
                let at = ((bi * h + hi) * s + i) * d;
                out.copy_from_slice(&heads[at..at + d]);
            }
        });
        cpu::tensor(y, &[b, s, h * d])
    }
}

/// Values of a row that [`weighted_sum`] keeps in registers across the keys.
const HELD: usize = 64;

/// `out = Σⱼ pⱼ·v_{first+j}` over the rows of `values`, in order of j, each term a multiply
/// then an add. [`HELD`] values of `out` at a time stay in registers across the keys (a
/// loop over a slice of unknown length loads and stores each value per key); the sums are
/// the same, to the bit.
#[inline(always)]
fn weighted_sum(p: &[f32], values: MatRef<'_>, first: usize, out: &mut [f32]) {
    let mut at = 0;
    for out in out.chunks_mut(HELD) {
        if let Ok(out) = <&mut [f32; HELD]>::try_from(&mut *out) {
            let mut acc = [0f32; HELD];
            for (j, &p) in p.iter().enumerate() {
                let v: &[f32; HELD] = values.row(first + j)[at..at + HELD].try_into().unwrap();
                for (a, v) in acc.iter_mut().zip(v) {
                    *a += p * v;
                }
            }
            *out = acc;
        } else {
            out.fill(0.0);
            for (j, &p) in p.iter().enumerate() {
                let v = &values.row(first + j)[at..at + out.len()];
                out.iter_mut().zip(v).for_each(|(o, v)| *o += p * v);
            }
        }
        at += out.len();
    }
}
