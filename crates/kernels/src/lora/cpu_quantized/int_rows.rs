//! The product over 4- and 8-bit codes for a few rows with the activations quantized too:
//! each row of `x` becomes signed bytes per block of 32 with one scale (`x ≈ d·q`, `|q| ≤
//! 127`, as llama.cpp's Q8_0), once per call, and each block's dot product with the codes is
//! taken in integers, exactly, then scaled by the two blocks' scales:
//!
//! `yᵢₒ = Σ_b dₒ_b·dᵢ_b·Σⱼ qₒⱼ·qᵢⱼ + Σ_b minₒ_b·dᵢ_b·Σⱼ qᵢⱼ`
//!
//! (the minimum's term, for 4-bit codes, over the rounded `x` too: see
//! [`QuantizedRows::xsum`]). A block of
//! `x` is 32 bytes instead of 128, so eight rows stay in the first-level cache, and one
//! VNNI instruction takes 64 byte products. The result differs from the f32 product by the
//! rounding of `x` (at most half a step, `dᵢ_b/2`, per value).

use super::{Codes, DIRECT_ROWS};
use crate::cpu::{self, Isa};

#[cfg(target_arch = "x86_64")]
use super::x86_int;

/// Rows of `x` quantized per block of 32, in the order of the codes' bytes (for 4-bit codes
/// each block's even elements, then its odd ones; else as they are).
pub struct QuantizedRows {
    pub m: usize,
    pub k: usize,
    /// `[m, k]`.
    pub q: Vec<i8>,
    /// `[m, k/32]`: the step `d` of each block (`x ≈ d·q`).
    pub scales: Vec<f32>,
    /// `[m, k/32]`: `Σⱼ qⱼ` of each block (for the offset of 8-bit codes read unsigned).
    pub sums: Vec<i32>,
    /// `[m, k/32]`: `d·Σⱼ qⱼ`, the rounded block's sum (the minimum's term). The sum of `x`
    /// itself would be exact, but then the rounding errors meet `q·d` alone instead of the
    /// weight `q·d + min`: for 4-bit codes, whose `q·d` runs over `[0, 15·d]`, that doubled
    /// the error (the default model's logits moved by 2.0 instead of 0.7).
    pub xsum: Vec<f32>,
}

impl QuantizedRows {
    /// `x [m, k]` quantized for codes of `bits` (4 or 8), rounding half to even, in the
    /// loops of `isa`. A block holding a NaN or an infinity (or whose sum overflows) gets a
    /// NaN step, so the product's rows show it as the f32 product would.
    pub fn new(isa: Isa, x: &[f32], m: usize, k: usize, bits: u32) -> Self {
        assert!(k % 32 == 0 && x.len() == m * k, "x is not [{m}, {k}]");
        let blocks = m * k / 32;
        let mut rows = Self {
            m,
            k,
            q: vec![0; m * k],
            scales: vec![0.0; blocks],
            sums: vec![0; blocks],
            xsum: vec![0.0; blocks],
        };
        cpu::simd(
            isa,
            #[inline(always)]
            || {
                for (b, (xb, qb)) in x
                    .chunks_exact(32)
                    .zip(rows.q.chunks_exact_mut(32))
                    .enumerate()
                {
                    let xb: &[f32; 32] = xb.try_into().expect("32 values");
                    let qb: &mut [i8; 32] = qb.try_into().expect("32 bytes");
                    let (mut amax, mut xsum) = (0f32, 0f32);
                    for &v in xb {
                        let a = v.abs();
                        amax = if a > amax { a } else { amax };
                        xsum += v;
                    }
                    let d = if xsum.is_finite() {
                        amax / 127.0
                    } else {
                        f32::NAN
                    };
                    let inv = if d > 0.0 { 1.0 / d } else { 0.0 };
                    // Rounding half to even by adding and taking away 1.5·2²³ (exact for
                    // |v| ≤ 2²²), which vectorizes where `round_ties_even` calls the library.
                    let q = |v: f32| {
                        const MAGIC: f32 = 12_582_912.0;
                        ((v * inv).clamp(-127.0, 127.0) + MAGIC - MAGIC) as i32 as i8
                    };
                    if bits == 4 {
                        // The codes' order: each pair's low nibble (even elements), then the
                        // high ones (odd elements).
                        for t in 0..16 {
                            qb[t] = q(xb[2 * t]);
                            qb[16 + t] = q(xb[2 * t + 1]);
                        }
                    } else {
                        for (out, &v) in qb.iter_mut().zip(xb) {
                            *out = q(v);
                        }
                    }
                    rows.scales[b] = d;
                    let sum: i32 = qb.iter().map(|&v| v as i32).sum();
                    rows.sums[b] = sum;
                    rows.xsum[b] = d * sum as f32;
                }
            },
        );
        rows
    }

    pub fn blocks(&self) -> usize {
        self.k / 32
    }
}

/// `y = x·Wᵀ` (`y [m, n]`, overwritten) over the quantized rows of `x`, for 4- or 8-bit
/// codes, on every thread; in `isa` (one this CPU runs).
pub fn matmul_int_rows(isa: Isa, x: &QuantizedRows, w: Codes<'_>, y: &mut [f32]) {
    assert!(isa.available(), "{isa:?} is not available on this CPU");
    let (m, n) = (x.m, w.n);
    assert!(
        matches!(w.bits, 4 | 8),
        "integer product over {}-bit codes",
        w.bits
    );
    assert!(
        m <= DIRECT_ROWS,
        "integer product: {m} rows, at most {DIRECT_ROWS}"
    );
    assert_eq!(
        x.k, w.k,
        "integer product: x has {} columns, W {}",
        x.k, w.k
    );
    assert_eq!(y.len(), m * n, "integer product: y is not [{m}, {n}]");
    if m == 0 || n == 0 {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    let lanes = (isa == Isa::Avx512Vnni).then(|| x86_int::PairLanes::new(x, w.bits));
    super::few_rows::by_weight_rows(m, n, y, |first, out| {
        #[cfg(target_arch = "x86_64")]
        if isa != Isa::Portable {
            return x86_int::int_rows(isa, x, lanes.as_ref(), w, first, out);
        }
        match w.bits {
            4 => int_rows_portable::<4>(x, w, first, out),
            _ => int_rows_portable::<8>(x, w, first, out),
        }
    });
}

/// `Σⱼ qⱼ·xⱼ` of one block: the codes' bytes against 32 quantized activations in the
/// same order (4-bit codes unsigned, 8-bit codes signed).
#[inline(always)]
pub(super) fn block_dot<const BITS: u32>(codes: &[u8], x: &[i8]) -> i32 {
    let mut sum = 0i32;
    if BITS == 4 {
        for t in 0..16 {
            sum +=
                (codes[t] & 0x0F) as i32 * x[t] as i32 + (codes[t] >> 4) as i32 * x[16 + t] as i32;
        }
    } else {
        for j in 0..32 {
            sum += codes[j] as i8 as i32 * x[j] as i32;
        }
    }
    sum
}

fn int_rows_portable<const BITS: u32>(
    x: &QuantizedRows,
    w: Codes<'_>,
    first: usize,
    out: &mut [f32],
) {
    let (m, k, blocks) = (x.m, x.k, x.blocks());
    let per_block = 4 * BITS as usize;
    let bytes: &[u8] = bytemuck::cast_slice(w.words);
    for (r, out_row) in out.chunks_exact_mut(m).enumerate() {
        let o = first + r;
        let mut acc = [0f32; DIRECT_ROWS];
        for b in 0..blocks {
            let at = o * blocks + b;
            let codes = &bytes[at * per_block..(at + 1) * per_block];
            let d = w.scales[at];
            for (i, acc) in acc[..m].iter_mut().enumerate() {
                let xq = &x.q[i * k + b * 32..i * k + b * 32 + 32];
                *acc += d * x.scales[i * blocks + b] * block_dot::<BITS>(codes, xq) as f32;
            }
        }
        for (i, v) in out_row.iter_mut().enumerate() {
            *v = acc[i] + min_term(w, o, &x.xsum, i);
        }
    }
}

/// `Σ_blocks min·Σⱼ xⱼ` of output row `o` and input row `i` (0 for 8-bit codes).
#[inline(always)]
pub(super) fn min_term(w: Codes<'_>, o: usize, xsum: &[f32], i: usize) -> f32 {
    if w.bits != 4 {
        return 0.0;
    }
    let blocks = w.blocks();
    let mins = &w.mins[o * blocks..(o + 1) * blocks];
    crate::cpu::dot(mins, &xsum[i * blocks..(i + 1) * blocks])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lora::cpu_quantized::{Activations, matmul_few_rows_with};
    use crate::quant::QuantFormat;

    fn value(i: usize, salt: usize) -> f32 {
        ((i * 7919 + salt * 104_729) % 2001) as f32 / 1000.0 - 1.0
    }

    use crate::lora::cpu_quantized::code_order as element;

    #[test]
    fn activations_round_to_the_nearest_step_of_their_block() {
        let (m, k) = (3, 96);
        // Blocks of different sizes, one all zero.
        let mut x: Vec<f32> = (0..m * k)
            .map(|i| value(i, 3) * (1 + i / 32) as f32)
            .collect();
        x[32..64].fill(0.0);
        for (bits, isa) in [4, 8]
            .into_iter()
            .flat_map(|bits| Isa::ALL.map(|isa| (bits, isa)))
            .filter(|(_, isa)| isa.available())
        {
            let q = QuantizedRows::new(isa, &x, m, k, bits);
            for b in 0..m * k / 32 {
                let xb = &x[b * 32..b * 32 + 32];
                let amax = xb.iter().fold(0f32, |a, v| a.max(v.abs()));
                let d = q.scales[b];
                assert!(
                    (d - amax / 127.0).abs() <= 1e-7 * amax,
                    "block {b}: step {d}"
                );
                let qb = &q.q[b * 32..b * 32 + 32];
                for (j, &v) in qb.iter().enumerate() {
                    let want = xb[element(bits, j)];
                    assert!(
                        (d * v as f32 - want).abs() <= d / 2.0 * 1.0001,
                        "bits {bits} block {b} byte {j}: {v}·{d} for {want}"
                    );
                }
                if amax > 0.0 {
                    assert_eq!(qb.iter().map(|v| v.unsigned_abs()).max(), Some(127));
                }
                assert_eq!(q.sums[b], qb.iter().map(|&v| v as i32).sum::<i32>());
                assert_eq!(q.xsum[b], d * q.sums[b] as f32, "block {b}: d·Σq");
            }
        }
    }

    #[test]
    fn a_block_with_a_nan_or_an_infinity_gives_nan_rows() {
        let codes = [0x1111_1111u32; 16];
        let (scales, mins) = ([1f32; 4], [0.5f32; 4]);
        // [n 2, k 64]: 2 blocks per row.
        let w = Codes::new(4, [2, 64], &codes, &scales, &mins).unwrap();
        for bad in [f32::NAN, f32::INFINITY] {
            let mut x = vec![0.25f32; 2 * 64];
            x[70] = bad;
            for isa in Isa::ALL.into_iter().filter(|i| i.available()) {
                let mut y = [0f32; 4];
                matmul_few_rows_with(isa, Activations::Bytes, &x, 2, w, &mut y);
                assert!(y[..2].iter().all(|v| v.is_finite()), "{isa:?}: row 0 {y:?}");
                assert!(y[2..].iter().all(|v| v.is_nan()), "{isa:?}: row 1 {y:?}");
            }
        }
    }

    /// The integer product in every instruction set this CPU runs, against the product in
    /// f64 of the reader's dequantized weight with the dequantized activations (tight), and
    /// with the f32 activations (within the rounding of the activations: half a step per
    /// value, against the weight's magnitude). Row i's result must not depend on how many rows come with it.
    fn check(format: QuantFormat, m: usize, n: usize, k: usize) {
        let w: Vec<f32> = (0..n * k).map(|i| value(i, 1)).collect();
        let x: Vec<f32> = (0..m * k)
            .map(|i| value(i, 2) * (1.0 + (i / 32 % 3) as f32))
            .collect();
        let weight = super::super::TestWeight::new(format, &w, n, k);
        let (exact, codes) = (&weight.exact, weight.codes());
        let xq = QuantizedRows::new(Isa::Portable, &x, m, k, format.bits());
        // The activations as the integer product sees them, in x's order.
        let mut seen = vec![0f32; m * k];
        for (b, chunk) in seen.chunks_exact_mut(32).enumerate() {
            for j in 0..32 {
                chunk[element(format.bits(), j)] = xq.scales[b] * xq.q[b * 32 + j] as f32;
            }
        }
        for isa in Isa::ALL.into_iter().filter(|isa| isa.available()) {
            let mut y = vec![f32::NAN; m * n];
            matmul_few_rows_with(isa, Activations::Bytes, &x, m, codes, &mut y);
            let what = format!("{format:?} m{m}");
            super::super::assert_rows_alone(isa, Activations::Bytes, &x, codes, &y, &what);
            for i in 0..m {
                for o in 0..n {
                    let (mut want, mut f32_want, mut bound) = (0f64, 0f64, 0f64);
                    for j in 0..k {
                        let wv = exact[o * k + j] as f64;
                        want += seen[i * k + j] as f64 * wv;
                        f32_want += x[i * k + j] as f64 * wv;
                        bound += wv.abs() * xq.scales[(i * k + j) / 32] as f64 / 2.0;
                    }
                    let got = y[i * n + o] as f64;
                    assert!(
                        (got - want).abs() < 1e-4 * (1.0 + want.abs()),
                        "{isa:?} {format:?} m{m} n{n} k{k} ({i}, {o}): {got} vs {want}"
                    );
                    assert!(
                        (got - f32_want).abs() <= bound * 1.001 + 1e-4,
                        "{isa:?} {format:?} ({i}, {o}): {got} vs the f32 product {f32_want}, bound {bound}"
                    );
                }
            }
        }
    }

    #[test]
    fn integer_products_equal_the_dequantized_product() {
        for format in [QuantFormat::Q8_0, QuantFormat::Q4_0, QuantFormat::Q4_1] {
            // Every row count, odd and even block counts, a single block, and more weight
            // rows than one task takes.
            let shapes = (1..=DIRECT_ROWS)
                .map(|m| (m, 17 + 5 * m, if m % 2 == 0 { 128 } else { 96 }))
                .chain([(1, 45, 32), (3, 600, 160), (8, 70, 576)]);
            for (m, n, k) in shapes {
                check(format, m, n, k);
            }
        }
        eprintln!(
            "instruction sets checked: {:?}",
            Isa::ALL.map(|i| (i, i.available()))
        );
    }
}
