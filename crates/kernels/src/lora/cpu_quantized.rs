//! The product over a base weight kept as packed codes (the layout of [`crate::quant`]) on
//! the CPU, without ever forming the whole f32 weight for a few rows:
//!
//! - **a few rows** (decoding: one token per sequence) read the codes directly. A row of
//!   the output is `Σ_blocks d·Σⱼ xⱼ·qⱼ + min·Σⱼ xⱼ`: the codes of a block are decoded once
//!   into 32 floats and used for every row of `x`, and the minimum's term is one dot
//!   product of the row's minimums with the block sums of `x`. A decoding step is bound by
//!   memory traffic, and 4-bit codes are 19% of the f32 weight's bytes;
//! - **many rows** (prefill) dequantize the weight once, on every thread, and multiply
//!   with gemm: there the product's arithmetic outweighs reading the weight.

use crate::cpu::{self, Isa, LANES};

/// Rows of `x` up to which the codes are read directly.
pub const DIRECT_ROWS: usize = 8;

/// Packed codes of a `[n, k]` weight, borrowed.
#[derive(Clone, Copy)]
pub struct Codes<'a> {
    /// 8 or 4.
    pub bits: u32,
    pub n: usize,
    pub k: usize,
    /// `[n, k·bits/32]` words, lowest bits first, in element order.
    pub words: &'a [u32],
    /// `[n, k/32]`.
    pub scales: &'a [f32],
    /// `[n, k/32]` for 4-bit codes; unused for 8-bit codes.
    pub mins: &'a [f32],
}

impl<'a> Codes<'a> {
    /// Checks the arrays against the shape; `None` when they do not fit (the caller then
    /// takes the reference).
    pub fn new(
        bits: u32,
        [n, k]: [usize; 2],
        words: &'a [u32],
        scales: &'a [f32],
        mins: &'a [f32],
    ) -> Option<Self> {
        let blocks = k / 32;
        let fits = (bits == 8 || bits == 4)
            && k % 32 == 0
            && words.len() == n * k * bits as usize / 32
            && scales.len() == n * blocks
            && (bits == 8 || mins.len() == n * blocks);
        fits.then_some(Self {
            bits,
            n,
            k,
            words,
            scales,
            mins,
        })
    }

    fn blocks(&self) -> usize {
        self.k / 32
    }

    /// Bytes of codes per block of 32 values.
    fn block_bytes(&self) -> usize {
        4 * self.bits as usize
    }

    /// Row `o` of the weight in f32, into `out` (`k` values).
    #[inline(always)]
    fn dequantize_row<const BITS: u32>(&self, o: usize, out: &mut [f32]) {
        let blocks = self.blocks();
        let bytes: &[u8] = bytemuck::cast_slice(self.words);
        let per_block = self.block_bytes();
        for (b, chunk) in out.chunks_exact_mut(32).enumerate() {
            let at = o * blocks + b;
            let q = block_codes::<BITS>(&bytes[at * per_block..(at + 1) * per_block]);
            let d = self.scales[at];
            if BITS == 4 {
                let min = self.mins[at];
                for t in 0..16 {
                    chunk[2 * t] = q[t] * d + min;
                    chunk[2 * t + 1] = q[16 + t] * d + min;
                }
            } else {
                for (v, q) in chunk.iter_mut().zip(q) {
                    *v = q * d;
                }
            }
        }
    }

    /// The whole weight `[n, k]` in f32, on every thread.
    pub fn dequantize(&self) -> Vec<f32> {
        let mut w = cpu::zeros(self.n * self.k);
        let rows = 16;
        cpu::for_each_task(
            &mut w,
            rows * self.k,
            #[inline(always)]
            |task, chunk| {
                for (r, row) in chunk.chunks_exact_mut(self.k).enumerate() {
                    match self.bits {
                        4 => self.dequantize_row::<4>(task * rows + r, row),
                        _ => self.dequantize_row::<8>(task * rows + r, row),
                    }
                }
            },
        );
        w
    }
}

// The codes are read as bytes: a little-endian word's first byte holds its lowest bits.
const _: () = assert!(cfg!(target_endian = "little"));

/// The codes of one block as floats, in the block's byte order: for 4-bit codes the low
/// nibbles of its 16 bytes (elements 0, 2, .., 30) and then the high ones (1, 3, .., 31);
/// for 8-bit codes elements 0..32 as signed bytes.
#[inline(always)]
fn block_codes<const BITS: u32>(bytes: &[u8]) -> [f32; 32] {
    let mut q = [0f32; 32];
    if BITS == 4 {
        let bytes: &[u8; 16] = bytes.try_into().expect("16 bytes of 4-bit codes");
        for t in 0..16 {
            q[t] = (bytes[t] & 0x0F) as f32;
            q[16 + t] = (bytes[t] >> 4) as f32;
        }
    } else {
        let bytes: &[u8; 32] = bytes.try_into().expect("32 bytes of 8-bit codes");
        for j in 0..32 {
            q[j] = bytes[j] as i8 as f32;
        }
    }
    q
}

/// `y = x·Wᵀ` (`y [m, n]`, overwritten) for a dense `x [m, k]` of at most [`DIRECT_ROWS`]
/// rows, reading the codes directly; on every thread, each taking a run of the weight's rows.
pub fn matmul_few_rows(x: &[f32], m: usize, w: Codes<'_>, y: &mut [f32]) {
    matmul_few_rows_with(Isa::chosen(), x, m, w, y)
}

/// [`matmul_few_rows`] in the given instruction set (one this CPU runs: see
/// [`Isa::available`]).
pub fn matmul_few_rows_with(isa: Isa, x: &[f32], m: usize, w: Codes<'_>, y: &mut [f32]) {
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
    // x in the order `block_codes` gives the codes (for 4-bit codes the even elements of
    // each block, then the odd ones), and Σⱼ xⱼ per block (the minimum's term).
    let xp: Vec<f32> = if w.bits == 4 {
        x.chunks_exact(32)
            .flat_map(|c| (0..32).map(move |j| c[if j < 16 { 2 * j } else { 2 * (j - 16) + 1 }]))
            .collect()
    } else {
        x.to_vec()
    };
    let xsum: Vec<f32> = x.chunks_exact(32).map(|c| c.iter().sum()).collect();
    // The output transposed, `[n, m]`, so that each thread writes whole runs of it.
    let mut yt = cpu::zeros(n * m);
    // A few tasks per thread: enough to balance, few enough that a 0.1 ms product is not
    // spent handing them out.
    let rows_per_task = n.div_ceil(4 * cpu::threads()).max(8);
    cpu::for_each_task(&mut yt, rows_per_task * m, |task, out| {
        let first = task * rows_per_task;
        few_rows_task(isa, &xp, &xsum, m, w, first, out)
    });
    for (o, row) in yt.chunks_exact(m).enumerate() {
        for (i, &v) in row.iter().enumerate() {
            y[i * n + o] = v;
        }
    }
}

/// Rows `first..` of the transposed output `out [rows, m]`: in AVX-512 or AVX2 with FMA
/// where the CPU has them (the compiler does not vectorize this loop nest by itself), else
/// the portable loop.
fn few_rows_task(
    isa: Isa,
    xp: &[f32],
    xsum: &[f32],
    m: usize,
    w: Codes<'_>,
    first: usize,
    out: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    if isa != Isa::Portable {
        return x86::few_rows(isa, xp, xsum, m, w, first, out);
    }
    let _ = isa;
    match w.bits {
        4 => few_rows_portable::<4>(xp, xsum, m, w, first, out),
        _ => few_rows_portable::<8>(xp, xsum, m, w, first, out),
    }
}

fn few_rows_portable<const BITS: u32>(
    xp: &[f32],
    xsum: &[f32],
    m: usize,
    w: Codes<'_>,
    first: usize,
    out: &mut [f32],
) {
    let (k, blocks, per_block) = (w.k, w.blocks(), w.block_bytes());
    let bytes: &[u8] = bytemuck::cast_slice(w.words);
    for (r, out_row) in out.chunks_exact_mut(m).enumerate() {
        let o = first + r;
        let mut acc = [[0f32; LANES]; DIRECT_ROWS];
        for b in 0..blocks {
            let at = o * blocks + b;
            let q = block_codes::<BITS>(&bytes[at * per_block..(at + 1) * per_block]);
            let d = w.scales[at];
            for (i, acc) in acc[..m].iter_mut().enumerate() {
                let xb = &xp[i * k + b * 32..i * k + b * 32 + 32];
                for l in 0..LANES {
                    acc[l] += d * (xb[l] * q[l] + xb[l + LANES] * q[l + LANES]);
                }
            }
        }
        for (i, v) in out_row.iter_mut().enumerate() {
            *v = acc[i].iter().sum::<f32>() + min_term(w, o, xsum, i);
        }
    }
}

/// `Σ_blocks min·Σⱼ xⱼ` of output row `o` and input row `i` (0 for 8-bit codes).
#[inline(always)]
fn min_term(w: Codes<'_>, o: usize, xsum: &[f32], i: usize) -> f32 {
    if w.bits != 4 {
        return 0.0;
    }
    let blocks = w.blocks();
    let mins = &w.mins[o * blocks..(o + 1) * blocks];
    crate::cpu::dot(mins, &xsum[i * blocks..(i + 1) * blocks])
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    //! The direct product in AVX-512 (16 lanes: one block's 32 codes are two vectors) and
    //! AVX2 with FMA (8 lanes: four vectors).

    use std::arch::x86_64::*;

    use super::{Codes, min_term};
    use crate::cpu::Isa;

    /// Dispatch on the instruction set, the code width and the number of rows (kept in
    /// registers, so a compile-time constant).
    pub fn few_rows(
        isa: Isa,
        xp: &[f32],
        xsum: &[f32],
        m: usize,
        w: Codes<'_>,
        first: usize,
        out: &mut [f32],
    ) {
        macro_rules! by_rows {
            ($f:ident, $bits:literal) => {
                match m {
                    1 => $f::<$bits, 1>(xp, xsum, w, first, out),
                    2 => $f::<$bits, 2>(xp, xsum, w, first, out),
                    3 => $f::<$bits, 3>(xp, xsum, w, first, out),
                    4 => $f::<$bits, 4>(xp, xsum, w, first, out),
                    5 => $f::<$bits, 5>(xp, xsum, w, first, out),
                    6 => $f::<$bits, 6>(xp, xsum, w, first, out),
                    7 => $f::<$bits, 7>(xp, xsum, w, first, out),
                    _ => $f::<$bits, 8>(xp, xsum, w, first, out),
                }
            };
        }
        assert!((1..=super::DIRECT_ROWS).contains(&m), "{m} rows");
        assert!(isa.available(), "{isa:?} is not available on this CPU");
        // SAFETY: the CPU has the features each function is compiled for (checked above).
        unsafe {
            match (isa, w.bits) {
                (Isa::Avx512, 4) => by_rows!(rows_avx512, 4),
                (Isa::Avx512, _) => by_rows!(rows_avx512, 8),
                (Isa::Avx2, 4) => by_rows!(rows_avx2, 4),
                (Isa::Avx2, _) => by_rows!(rows_avx2, 8),
                (Isa::Portable, _) => unreachable!("the portable loop is not here"),
            }
        }
    }

    /// The bounds every pointer below stays within: `xp` holds `M` rows of `k`, and the
    /// codes and scales hold every row of `out`.
    fn check<const BITS: u32, const M: usize>(xp: &[f32], w: Codes<'_>, first: usize, out: &[f32]) {
        let rows = out.len() / M;
        assert!(out.len() % M == 0 && xp.len() == M * w.k, "operand shapes");
        assert!(first + rows <= w.n, "rows {first}+{rows} of {}", w.n);
        assert!(
            w.words.len() * 4 >= w.n * w.k / 32 * 4 * BITS as usize,
            "codes"
        );
        assert!(w.scales.len() >= w.n * (w.k / 32), "scales");
    }

    #[target_feature(enable = "avx512f,avx512bw,fma")]
    fn rows_avx512<const BITS: u32, const M: usize>(
        xp: &[f32],
        xsum: &[f32],
        w: Codes<'_>,
        first: usize,
        out: &mut [f32],
    ) {
        check::<BITS, M>(xp, w, first, out);
        let (k, blocks) = (w.k, w.k / 32);
        let per_block = 4 * BITS as usize;
        let bytes: *const u8 = w.words.as_ptr().cast();
        let low = _mm512_set1_epi32(0x0F);
        for (r, out_row) in out.chunks_exact_mut(M).enumerate() {
            let o = first + r;
            // Two accumulators per row, for even and odd blocks: two chains of additions
            // in flight instead of one.
            let mut acc = [[_mm512_setzero_ps(); M]; 2];
            for b in 0..blocks {
                let at = o * blocks + b;
                // SAFETY: block `at` lies inside the codes (`check`).
                let (q0, q1) = unsafe {
                    let codes = bytes.add(at * per_block);
                    if BITS == 4 {
                        let v = _mm512_cvtepu8_epi32(_mm_loadu_si128(codes.cast()));
                        (
                            _mm512_cvtepi32_ps(_mm512_and_si512(v, low)),
                            _mm512_cvtepi32_ps(_mm512_srli_epi32::<4>(v)),
                        )
                    } else {
                        (
                            _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(codes.cast()))),
                            _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(
                                codes.add(16).cast(),
                            ))),
                        )
                    }
                };
                let d = _mm512_set1_ps(w.scales[at]);
                for (i, acc) in acc[b % 2].iter_mut().enumerate() {
                    // SAFETY: 32 values of row i of xp from b·32 (`check`).
                    let p = unsafe {
                        let xb = xp.as_ptr().add(i * k + b * 32);
                        _mm512_fmadd_ps(
                            _mm512_loadu_ps(xb.add(16)),
                            q1,
                            _mm512_mul_ps(_mm512_loadu_ps(xb), q0),
                        )
                    };
                    *acc = _mm512_fmadd_ps(d, p, *acc);
                }
            }
            for (i, v) in out_row.iter_mut().enumerate() {
                *v = _mm512_reduce_add_ps(_mm512_add_ps(acc[0][i], acc[1][i]))
                    + min_term(w, o, xsum, i);
            }
        }
    }

    #[target_feature(enable = "avx2,fma")]
    fn rows_avx2<const BITS: u32, const M: usize>(
        xp: &[f32],
        xsum: &[f32],
        w: Codes<'_>,
        first: usize,
        out: &mut [f32],
    ) {
        check::<BITS, M>(xp, w, first, out);
        let (k, blocks) = (w.k, w.k / 32);
        let per_block = 4 * BITS as usize;
        let bytes: *const u8 = w.words.as_ptr().cast();
        let low = _mm256_set1_epi32(0x0F);
        for (r, out_row) in out.chunks_exact_mut(M).enumerate() {
            let o = first + r;
            let mut acc = [[_mm256_setzero_ps(); M]; 2];
            for b in 0..blocks {
                let at = o * blocks + b;
                // SAFETY: block `at` lies inside the codes (`check`). The four vectors are
                // the codes in the order of `block_codes`, eight at a time.
                let q: [__m256; 4] = unsafe {
                    let codes = bytes.add(at * per_block);
                    if BITS == 4 {
                        let v0 = _mm256_cvtepu8_epi32(_mm_loadl_epi64(codes.cast()));
                        let v1 = _mm256_cvtepu8_epi32(_mm_loadl_epi64(codes.add(8).cast()));
                        [
                            _mm256_cvtepi32_ps(_mm256_and_si256(v0, low)),
                            _mm256_cvtepi32_ps(_mm256_and_si256(v1, low)),
                            _mm256_cvtepi32_ps(_mm256_srli_epi32::<4>(v0)),
                            _mm256_cvtepi32_ps(_mm256_srli_epi32::<4>(v1)),
                        ]
                    } else {
                        let eight = |j: usize| {
                            _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(
                                codes.add(8 * j).cast(),
                            )))
                        };
                        [eight(0), eight(1), eight(2), eight(3)]
                    }
                };
                let d = _mm256_set1_ps(w.scales[at]);
                for (i, acc) in acc[b % 2].iter_mut().enumerate() {
                    // SAFETY: 32 values of row i of xp from b·32 (`check`).
                    let p = unsafe {
                        let xb = xp.as_ptr().add(i * k + b * 32);
                        let mut p = _mm256_mul_ps(_mm256_loadu_ps(xb), q[0]);
                        p = _mm256_fmadd_ps(_mm256_loadu_ps(xb.add(8)), q[1], p);
                        p = _mm256_fmadd_ps(_mm256_loadu_ps(xb.add(16)), q[2], p);
                        _mm256_fmadd_ps(_mm256_loadu_ps(xb.add(24)), q[3], p)
                    };
                    *acc = _mm256_fmadd_ps(d, p, *acc);
                }
            }
            for (i, v) in out_row.iter_mut().enumerate() {
                let mut lanes = [0f32; 8];
                // SAFETY: eight floats into an array of eight.
                unsafe {
                    _mm256_storeu_ps(lanes.as_mut_ptr(), _mm256_add_ps(acc[0][i], acc[1][i]))
                };
                *v = lanes.iter().sum::<f32>() + min_term(w, o, xsum, i);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::{PackedWeight, QuantFormat, quantize_gguf};

    /// The weight through the reader's dequantization, and the product row by row in f64,
    /// against the direct product in every instruction set this CPU runs.
    fn check(format: QuantFormat, w: &[f32], x: &[f32], m: usize, n: usize, k: usize) {
        let gguf = quantize_gguf(format, w);
        let exact = formats::dequant::dequantize(format.ggml(), &gguf, n * k).unwrap();
        let packed = PackedWeight::from_gguf(format.ggml(), &gguf, n, k).unwrap();
        let codes = Codes::new(
            format.bits(),
            [n, k],
            &packed.quants,
            &packed.scales,
            &packed.mins,
        )
        .unwrap();
        // Q4_0 is read as `q·d + (-8·d)`, the reader's `(q - 8)·d`: equal up to rounding.
        let ours = codes.dequantize();
        for (j, (a, b)) in ours.iter().zip(&exact).enumerate() {
            assert!(
                (a - b).abs() <= 1e-6 * (1.0 + b.abs()),
                "{format:?} weight {j}: {a} vs {b}"
            );
        }
        let isas = [Isa::Portable, Isa::Avx2, Isa::Avx512];
        for isa in isas.into_iter().filter(|isa| isa.available()) {
            let mut y = vec![f32::NAN; m * n];
            matmul_few_rows_with(isa, x, m, codes, &mut y);
            for i in 0..m {
                for o in 0..n {
                    let want: f64 = (0..k)
                        .map(|j| x[i * k + j] as f64 * exact[o * k + j] as f64)
                        .sum();
                    let got = y[i * n + o] as f64;
                    assert!(
                        (got - want).abs() < 1e-4 * (1.0 + want.abs()),
                        "{isa:?} {format:?} m{m} n{n} k{k} ({i}, {o}): {got} vs {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn few_rows_equal_the_dequantized_product() {
        let value =
            |i: usize, salt: usize| ((i * 7919 + salt * 104_729) % 2001) as f32 / 1000.0 - 1.0;
        for format in [QuantFormat::Q8_0, QuantFormat::Q4_0, QuantFormat::Q4_1] {
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
            [Isa::Portable, Isa::Avx2, Isa::Avx512].map(|i| (i, i.available()))
        );
    }

    #[test]
    fn codes_that_do_not_fit_the_shape_are_refused() {
        let words = [0u32; 8];
        let scales = [1f32; 2];
        assert!(Codes::new(4, [2, 32], &words, &scales, &scales).is_some());
        assert!(Codes::new(4, [2, 33], &words, &scales, &scales).is_none());
        assert!(Codes::new(4, [2, 32], &words[..7], &scales, &scales).is_none());
        assert!(Codes::new(4, [2, 32], &words, &scales, &scales[..1]).is_none());
        assert!(Codes::new(8, [1, 32], &words, &scales[..1], &[]).is_some());
        assert!(Codes::new(2, [2, 32], &words, &scales, &scales).is_none());
    }
}
