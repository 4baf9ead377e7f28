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
        // Which keys each query row sees: after its last visible one (the future, in a
        // causal mask) keys have weight exp(-1e30 - max) = 0, so they are neither scored
        // nor summed. A row with no visible key (a padding query) keeps them all (a uniform
        // softmax, as the finite mask gives).
        let visible = |masks: &[f32]| -> Vec<usize> {
            masks
                .chunks_exact(t)
                .map(|m| m.iter().rposition(|&m| m > HIDDEN).map_or(t, |i| i + 1))
                .collect()
        };
        // A decoding step's few queries take dot products (gemm's setup costs more than a
        // [1, d]·[d, t] product), one task per (sequence, KV head): each key and value row
        // is read once for every query head that shares it.
        let few = s <= FEW_QUERIES && [&qv, &kv, &vv].iter().all(|v| v.strides[3] == 1);
        if few {
            cpu::for_each_task(
                &mut heads,
                group * s * d,
                #[inline(always)]
                |task, out| {
                    let (bi, kh) = (task / kvh, task % kvh);
                    let masks = &masks[bi * s * t..(bi + 1) * s * t];
                    let queries: Vec<&[f32]> = (0..group)
                        .flat_map(|g| (0..s).map(move |r| (g, r)))
                        .map(|(g, r)| qv.mat(bi, kh * group + g).row(r))
                        .collect();
                    let task = Group {
                        queries: &queries,
                        keys: kv.mat(bi, kh),
                        values: vv.mat(bi, kh),
                        masks,
                        visible: &visible(masks),
                        scale,
                    };
                    task.run(out);
                },
            );
        } else {
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
                    let visible = visible(masks);
                    let mut scores = vec![0f32; QUERY_BLOCK.min(s) * t];
                    for (r0, out) in (0..s)
                        .step_by(QUERY_BLOCK)
                        .zip(out.chunks_mut(QUERY_BLOCK * d))
                    {
                        let rows = out.len() / d;
                        let seen = visible[r0..r0 + rows].iter().copied().max().unwrap_or(t);
                        let scores = &mut scores[..rows * seen];
                        let (q, k) = (query.row_range(r0, rows), keys.row_range(0, seen));
                        cpu::gemm_serial(scores, 0.0, q, k.t(), scale);
                        for (i, row) in scores.chunks_exact_mut(seen).enumerate() {
                            let mask = &masks[(r0 + i) * t..][..seen];
                            mask_and_softmax(row, mask, visible[r0 + i]);
                        }
                        let probs = MatRef::rows(scores, rows, seen);
                        cpu::gemm_serial(out, 0.0, probs, values.row_range(0, seen), 1.0);
                    }
                },
            );
        }
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

/// One query row's scores: its mask added, the softmax over its first `visible` keys, and
/// the keys after those (after the row's last visible one) weighted zero.
#[inline(always)]
fn mask_and_softmax(row: &mut [f32], mask: &[f32], visible: usize) {
    row.iter_mut().zip(mask).for_each(|(v, m)| *v += m);
    cpu::softmax_in_place(&mut row[..visible]);
    row[visible..].fill(0.0);
}

/// Values of a row that [`Group::weighted_sums`] keeps in registers across the keys.
const HELD: usize = 64;

/// Query rows whose sums [`Group::weighted_sums`] takes in one pass over the values.
const PASS_ROWS: usize = 4;

/// The few query rows of every head that reads one KV head of one sequence (each head's
/// rows in turn), against its keys and values.
struct Group<'a> {
    queries: &'a [&'a [f32]],
    keys: MatRef<'a>,
    values: MatRef<'a>,
    /// `[s, t]`: the sequence's mask rows, query row `r` of each head reading row `r`.
    masks: &'a [f32],
    /// Per mask row, the keys up to its last visible one.
    visible: &'a [usize],
    scale: f32,
}

impl Group<'_> {
    /// Every query row's attention into `out [rows, d]`.
    #[inline(always)]
    fn run(&self, out: &mut [f32]) {
        let (s, t) = (self.visible.len(), self.keys.rows);
        let first = |r: usize| {
            let m = &self.masks[r * t..(r + 1) * t];
            m.iter().position(|&m| m > HIDDEN).unwrap_or(0)
        };
        // Keys before the first visible one (a sequence's left padding in a batch) are
        // skipped too: a padded row then computes what it computes alone.
        let seen = self.visible.iter().copied().max().unwrap_or(t);
        let lo = (0..s).map(first).min().unwrap_or(0).min(seen);
        let width = seen - lo;
        let mut scores = vec![0f32; self.queries.len() * width];
        // Each key row once for every query row (the same dot product each alone takes).
        for j in 0..width {
            let key = self.keys.row(lo + j);
            for (q, row) in self.queries.iter().zip(scores.chunks_exact_mut(width)) {
                row[j] = cpu::dot(q, key) * self.scale;
            }
        }
        for (i, row) in scores.chunks_exact_mut(width).enumerate() {
            let r = i % s;
            mask_and_softmax(row, &self.masks[r * t..][lo..seen], self.visible[r] - lo);
        }
        let d = self.keys.cols;
        for (p, out) in scores
            .chunks(PASS_ROWS * width)
            .zip(out.chunks_mut(PASS_ROWS * d))
        {
            match p.len() / width {
                1 => self.weighted_sums::<1>(p, lo, out),
                2 => self.weighted_sums::<2>(p, lo, out),
                3 => self.weighted_sums::<3>(p, lo, out),
                _ => self.weighted_sums::<PASS_ROWS>(p, lo, out),
            }
        }
    }

    /// `outᵢ = Σⱼ pᵢⱼ·v_{first+j}` for `N` rows of `p`, in order of j, each term a multiply
    /// then an add. [`HELD`] values of each row of `out` at a time stay in registers across
    /// the keys, and each value row is loaded once for the `N` rows (a loop over a slice of
    /// unknown length loads and stores each value per key); the sums are the same, to the
    /// bit, as one row at a time.
    #[inline(always)]
    fn weighted_sums<const N: usize>(&self, p: &[f32], first: usize, out: &mut [f32]) {
        let (d, width) = (self.values.cols, p.len() / N);
        let mut at = 0;
        while at < d {
            let len = HELD.min(d - at);
            if len == HELD {
                let mut acc = [[0f32; HELD]; N];
                for j in 0..width {
                    let v: &[f32; HELD] = self.values.row(first + j)[at..at + HELD]
                        .try_into()
                        .unwrap();
                    for (n, acc) in acc.iter_mut().enumerate() {
                        let p = p[n * width + j];
                        for (a, v) in acc.iter_mut().zip(v) {
                            *a += p * v;
                        }
                    }
                }
                for (n, acc) in acc.iter().enumerate() {
                    out[n * d + at..n * d + at + HELD].copy_from_slice(acc);
                }
            } else {
                for n in 0..N {
                    let out = &mut out[n * d + at..n * d + at + len];
                    out.fill(0.0);
                    for j in 0..width {
                        let v = &self.values.row(first + j)[at..at + len];
                        let p = p[n * width + j];
                        out.iter_mut().zip(v).for_each(|(o, v)| *o += p * v);
                    }
                }
            }
            at += len;
        }
    }
}
