//! The product over packed codes for a few rows (decoding), reading the codes directly:
//! each block's codes become its 32 weights in f32 once (`q·d + min` for 4-bit codes, `q·d`
//! for 8-bit ones, the half floats as they are) and are used for every row of `x`, laid out
//! block by block ([`Interleaved`]). Each output value is one sum whatever the rows beside
//! it (a batch gives each sequence its tokens alone): per row, one accumulator per position
//! of the block over the blocks in order, then the positions added in [`tree_sum`]'s tree.

use super::{Codes, DIRECT_ROWS, block_codes, code_order};
use crate::cpu::{self, Isa, LANES};

#[cfg(target_arch = "x86_64")]
use super::x86;

/// How the direct product takes the activations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activations {
    /// As f32, against the codes decoded to floats.
    F32,
    /// Quantized to bytes per block, against 4- and 8-bit codes in integers
    /// ([`super::int_rows`]); half-float codes take the f32 loop.
    Bytes,
}

/// `y = x·Wᵀ` (`y [m, n]`, overwritten) for a dense `x [m, k]` of at most [`DIRECT_ROWS`]
/// rows, reading the codes directly; on every thread, each taking a run of the weight's rows.
/// The settings choose the instruction set and how the activations are taken.
pub fn matmul_few_rows(x: &[f32], m: usize, w: Codes<'_>, y: &mut [f32]) {
    let activations = if crate::settings::current().int_dot {
        Activations::Bytes
    } else {
        Activations::F32
    };
    matmul_few_rows_with(Isa::chosen(), activations, x, m, w, y)
}

/// [`matmul_few_rows`] in the given instruction set (one this CPU runs: see
/// [`Isa::available`]).
pub fn matmul_few_rows_with(
    isa: Isa,
    activations: Activations,
    x: &[f32],
    m: usize,
    w: Codes<'_>,
    y: &mut [f32],
) {
    assert!(isa.available(), "{isa:?} is not available on this CPU");
    let (n, k) = (w.n, w.k);
    assert!(
        m <= DIRECT_ROWS,
        "quantized matmul: {m} rows, at most {DIRECT_ROWS}"
    );
    assert_eq!(x.len(), m * k, "quantized matmul: x is not [{m}, {k}]");
    assert_eq!(y.len(), m * n, "quantized matmul: y is not [{m}, {n}]");
    if m == 0 || n == 0 {
        return;
    }
    if activations == Activations::Bytes && matches!(w.bits, 4 | 8) {
        let xq = super::QuantizedRows::new(isa, x, m, k, w.bits);
        return super::matmul_int_rows(isa, &xq, w, y);
    }
    many_f32(isa, x, m, &[w], &mut [y]);
}

/// `yⱼ = x·Wⱼᵀ` for several weights of one `k` (a layer's query, key and value projections,
/// or its gate and up projections), in one pass over the threads: one hand-off where each
/// product alone takes one, and tasks balanced over all the weights' rows. Each output row
/// is computed exactly as [`matmul_few_rows`] computes it alone, to the bit.
pub fn matmul_few_rows_many(x: &[f32], m: usize, ws: &[Codes<'_>], ys: &mut [&mut [f32]]) {
    let (isa, int_dot) = (Isa::chosen(), crate::settings::current().int_dot);
    assert_eq!(
        ws.len(),
        ys.len(),
        "quantized matmul: one output per weight"
    );
    let k = ws.first().map_or(0, |w| w.k);
    assert!(
        ws.iter().all(|w| w.k == k),
        "quantized matmul: the weights differ in k"
    );
    assert!(
        m <= DIRECT_ROWS,
        "quantized matmul: {m} rows, at most {DIRECT_ROWS}"
    );
    assert_eq!(x.len(), m * k, "quantized matmul: x is not [{m}, {k}]");
    for (w, y) in ws.iter().zip(ys.iter()) {
        assert_eq!(
            y.len(),
            m * w.n,
            "quantized matmul: y is not [{m}, {}]",
            w.n
        );
    }
    if m == 0 {
        return;
    }
    if int_dot && ws.iter().any(|w| matches!(w.bits, 4 | 8)) {
        for (w, y) in ws.iter().zip(ys.iter_mut()) {
            matmul_few_rows(x, m, *w, y);
        }
        return;
    }
    many_f32(isa, x, m, ws, ys);
}

/// The direct product with f32 activations of one `x` against every weight in `ws`.
fn many_f32(isa: Isa, x: &[f32], m: usize, ws: &[Codes<'_>], ys: &mut [&mut [f32]]) {
    let xi = Interleaved::new(x, m, ws);
    // Where each weight's rows start among all the rows.
    let starts: Vec<usize> = ws
        .iter()
        .scan(0, |at, w| {
            let start = *at;
            *at += w.n;
            Some(start)
        })
        .collect();
    let n: usize = ws.iter().map(|w| w.n).sum();
    if n == 0 {
        return;
    }
    let yt = weight_rows_transposed(m, n, |first, out| {
        // This task's rows may run across weights: each weight's part of them on its own.
        let (mut at, mut out) = (first, out);
        while !out.is_empty() {
            let j = starts.partition_point(|&s| s <= at) - 1;
            let take = (starts[j] + ws[j].n - at).min(out.len() / m);
            let (head, tail) = out.split_at_mut(take * m);
            few_rows_task(isa, &xi, ws[j], at - starts[j], head);
            (at, out) = (at + take, tail);
        }
    });
    for ((w, y), start) in ws.iter().zip(ys.iter_mut()).zip(&starts) {
        write_transposed(&yt[start * m..(start + w.n) * m], m, w.n, y);
    }
}

/// `yⱼ = x·Wⱼᵀ` for `x [m, k]`, [`DIRECT_ROWS`] rows at a time through
/// [`matmul_few_rows_many`] (each row gets the bits it gets alone): each weight's output
/// `[m, n]`. Callers take it up to [`super::CHUNKED_ROWS`] rows; beyond, forming the f32
/// weight once costs less.
pub fn matmul_chunked_rows(x: &[f32], m: usize, ws: &[Codes<'_>]) -> Vec<Vec<f32>> {
    let mut ys: Vec<Vec<f32>> = ws.iter().map(|w| vec![0f32; m * w.n]).collect();
    let k = ws.first().map_or(0, |w| w.k);
    if k == 0 {
        return ys;
    }
    for (c, x) in x.chunks(DIRECT_ROWS * k).enumerate() {
        let rows = x.len() / k;
        let mut outs: Vec<&mut [f32]> = ys
            .iter_mut()
            .zip(ws)
            .map(|(y, w)| &mut y[c * DIRECT_ROWS * w.n..][..rows * w.n])
            .collect();
        matmul_few_rows_many(x, rows, ws, &mut outs);
    }
    ys
}

/// Runs `task(first, out)` on every thread over runs of the weight's `n` rows, `out` being
/// rows `first..` of the output transposed (`[rows, m]`, so that each thread writes whole
/// runs of it), then writes `y [m, n]`.
pub(super) fn by_weight_rows(
    m: usize,
    n: usize,
    y: &mut [f32],
    task: impl Fn(usize, &mut [f32]) + Send + Sync,
) {
    write_transposed(&weight_rows_transposed(m, n, task), m, n, y);
}

/// `y [m, n]` from its transpose `yt [n, m]`.
fn write_transposed(yt: &[f32], m: usize, n: usize, y: &mut [f32]) {
    for (o, row) in yt.chunks_exact(m).enumerate() {
        for (i, &v) in row.iter().enumerate() {
            y[i * n + o] = v;
        }
    }
}

/// The transposed output `[n, m]`, written by `task(first, out)` on every thread over runs
/// of the `n` weight rows.
fn weight_rows_transposed(
    m: usize,
    n: usize,
    task: impl Fn(usize, &mut [f32]) + Send + Sync,
) -> Vec<f32> {
    let mut yt = cpu::zeros(n * m);
    // Two tasks per thread: enough to balance, few enough that a 0.05 ms product is not
    // spent handing them out (four per thread decoded one row about 5% slower).
    let rows_per_task = n.div_ceil(2 * cpu::threads()).max(8);
    cpu::for_each_task(&mut yt, rows_per_task * m, |t, out| {
        task(t * rows_per_task, out)
    });
    yt
}

/// `x [m, k]` laid out for the direct product: block by block, each block's rows side by
/// side (`[k/32, m, 32]`), so that one pointer reaches every row's block. For 4-bit codes
/// each block in the order `block_codes` gives them (its even elements, then its odd ones);
/// for 8- and 16-bit codes as it is. Only the layouts the weights need are formed.
pub(super) struct Interleaved {
    pub m: usize,
    // Read by the x86 loops only.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub k: usize,
    plain: Vec<f32>,
    permuted: Vec<f32>,
}

impl Interleaved {
    pub fn new(x: &[f32], m: usize, ws: &[Codes<'_>]) -> Self {
        let k = x.len().checked_div(m).unwrap_or(0);
        let layout = |bits: u32| -> Vec<f32> {
            if !ws.iter().any(|w| (w.bits == 4) == (bits == 4)) {
                return Vec::new();
            }
            let mut out = Vec::with_capacity(m * k);
            for b in 0..k / 32 {
                for i in 0..m {
                    let block = &x[i * k + b * 32..][..32];
                    out.extend((0..32).map(|j| block[code_order(bits, j)]));
                }
            }
            out
        };
        Self {
            m,
            k,
            plain: layout(8),
            permuted: layout(4),
        }
    }

    /// The values for codes of `bits`.
    pub fn values(&self, bits: u32) -> &[f32] {
        if bits == 4 {
            &self.permuted
        } else {
            &self.plain
        }
    }
}

/// The sum of `lanes` (a power of two of them, at most [`LANES`]) in a fixed tree: lane `l`
/// plus lane `l + len/2`, and so on down to one. Every instruction set's loop adds its lanes
/// this way.
pub(super) fn tree_sum(lanes: &[f32]) -> f32 {
    let mut v = [0f32; LANES];
    v[..lanes.len()].copy_from_slice(lanes);
    let mut len = lanes.len();
    while len > 1 {
        len /= 2;
        for l in 0..len {
            v[l] += v[l + len];
        }
    }
    v[0]
}

/// Rows `first..` of the transposed output `out [rows, m]`: in AVX-512 or AVX2 with FMA
/// where the CPU has them (the compiler does not vectorize this loop nest by itself), else
/// the portable loop.
fn few_rows_task(isa: Isa, x: &Interleaved, w: Codes<'_>, first: usize, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if isa != Isa::Portable {
        return x86::few_rows(isa, x, w, first, out);
    }
    let _ = isa;
    match w.bits {
        4 => few_rows_portable::<4>(x.values(4), x.m, w, first, out),
        16 => few_rows_portable::<16>(x.values(16), x.m, w, first, out),
        _ => few_rows_portable::<8>(x.values(8), x.m, w, first, out),
    }
}

/// The portable loop: each block's 32 weights formed (`q·d + min`, `q·d` or the half
/// float), then per row of `x` one accumulator per position of the block, added in
/// [`tree_sum`]'s tree. `x`'s values come as a slice argument, not through [`Interleaved`]:
/// read through the struct, the compiler kept this loop scalar (a third of the speed).
fn few_rows_portable<const BITS: u32>(
    xs: &[f32],
    m: usize,
    w: Codes<'_>,
    first: usize,
    out: &mut [f32],
) {
    let (blocks, per_block) = (w.blocks(), w.block_bytes());
    let bytes: &[u8] = bytemuck::cast_slice(w.words);
    for (r, out_row) in out.chunks_exact_mut(m).enumerate() {
        let o = first + r;
        let mut acc = [[0f32; 2 * LANES]; DIRECT_ROWS];
        for b in 0..blocks {
            let at = o * blocks + b;
            let q = block_codes::<BITS>(&bytes[at * per_block..(at + 1) * per_block]);
            let (d, min) = (w.scales[at], if BITS == 4 { w.mins[at] } else { 0.0 });
            // The block's weight j: `q·d + min`, `q·d` or the half float.
            let weight = |j: usize| match BITS {
                4 => q[j] * d + min,
                8 => q[j] * d,
                _ => q[j],
            };
            for (i, acc) in acc[..m].iter_mut().enumerate() {
                let xb = &xs[(b * m + i) * 32..][..32];
                for j in 0..32 {
                    acc[j] += xb[j] * weight(j);
                }
            }
        }
        for (v, acc) in out_row.iter_mut().zip(&acc) {
            let lanes: [f32; LANES] = std::array::from_fn(|l| acc[l] + acc[l + LANES]);
            *v = tree_sum(&lanes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::QuantFormat;

    /// The weight through the reader's dequantization, and the product row by row in f64,
    /// against the direct product in every instruction set this CPU runs.
    fn check(format: QuantFormat, w: &[f32], x: &[f32], m: usize, n: usize, k: usize) {
        let weight = super::super::TestWeight::new(format, w, n, k);
        let (exact, codes) = (&weight.exact, weight.codes());
        // Q4_0 is read as `q·d + (-8·d)`, the reader's `(q - 8)·d`: equal up to rounding.
        let ours = codes.dequantize();
        for (j, (a, b)) in ours.iter().zip(exact).enumerate() {
            assert!(
                (a - b).abs() <= 1e-6 * (1.0 + b.abs()),
                "{format:?} weight {j}: {a} vs {b}"
            );
        }
        for isa in Isa::ALL.into_iter().filter(|isa| isa.available()) {
            let mut y = vec![f32::NAN; m * n];
            matmul_few_rows_with(isa, Activations::F32, x, m, codes, &mut y);
            let what = format!("{format:?} m{m} n{n} k{k}");
            super::super::assert_rows_alone(isa, Activations::F32, x, codes, &y, &what);
            if let Some(e) = weight.mismatch(x, m, &y) {
                panic!("{isa:?} {format:?} m{m} n{n} k{k} {e}");
            }
        }
    }

    /// Several weights in one pass give each output row the bits of its weight's product
    /// alone: mixed formats, weights smaller than a task and tasks running across weights.
    #[test]
    fn several_weights_in_one_pass_equal_each_alone() {
        let value =
            |i: usize, salt: usize| ((i * 7919 + salt * 104_729) % 2001) as f32 / 1000.0 - 1.0;
        let k = 96;
        let shapes = [
            (QuantFormat::Q4_1, 40),
            (QuantFormat::Q4_1, 3),
            (QuantFormat::Q8_0, 21),
            (QuantFormat::F16, 9),
            (QuantFormat::Q4_0, 130),
        ];
        let weights: Vec<_> = shapes
            .iter()
            .enumerate()
            .map(|(j, &(format, n))| {
                let w: Vec<f32> = (0..n * k).map(|i| value(i, 3 + j)).collect();
                super::super::TestWeight::new(format, &w, n, k)
            })
            .collect();
        let codes: Vec<Codes<'_>> = weights.iter().map(|w| w.codes()).collect();
        for m in 1..=DIRECT_ROWS {
            let x: Vec<f32> = (0..m * k).map(|i| value(i, 2)).collect();
            let mut ys: Vec<Vec<f32>> = codes.iter().map(|w| vec![f32::NAN; m * w.n]).collect();
            let mut outs: Vec<&mut [f32]> = ys.iter_mut().map(|y| &mut y[..]).collect();
            matmul_few_rows_many(&x, m, &codes, &mut outs);
            for (j, (w, y)) in codes.iter().zip(&ys).enumerate() {
                let mut alone = vec![f32::NAN; m * w.n];
                matmul_few_rows(&x, m, *w, &mut alone);
                let same = alone.iter().zip(y).all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same, "m{m}: weight {j} ({:?}) differs", shapes[j].0);
            }
        }
    }

    #[test]
    fn few_rows_equal_the_dequantized_product() {
        let value =
            |i: usize, salt: usize| ((i * 7919 + salt * 104_729) % 2001) as f32 / 1000.0 - 1.0;
        for format in [
            QuantFormat::Q8_0,
            QuantFormat::Q4_0,
            QuantFormat::Q4_1,
            QuantFormat::F16,
        ] {
            // Every row count of the direct product, a single block, and more weight rows
            // than one task takes.
            let shapes = (1..=DIRECT_ROWS)
                .map(|m| (m, 17 + 5 * m, 96))
                .chain([(1, 45, 32), (3, 600, 160)]);
            for (m, n, k) in shapes {
                let w: Vec<f32> = (0..n * k).map(|i| value(i, 1)).collect();
                let x: Vec<f32> = (0..m * k).map(|i| value(i, 2)).collect();
                check(format, &w, &x, m, n, k);
            }
        }
        eprintln!(
            "instruction sets checked: {:?}",
            Isa::ALL.map(|i| (i, i.available()))
        );
    }
}
