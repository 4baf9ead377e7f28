//! The direct product in AVX-512 (16 lanes: one block's 32 weights are two vectors) and
//! AVX2 with FMA (8 lanes: four vectors). Half floats are widened by F16C's `vcvtph2ps`.
//!
//! Each block's codes become its 32 f32 weights once (`q·d + min`, `q·d`, or the half
//! floats), shared by every row of `x`; each row then takes one fused multiply-add per
//! vector of the block. Every output value is the same sum whatever the rows beside it:
//! per vector position one accumulator over the blocks in order, then the positions added
//! in a fixed tree ([`reduce`]).

use std::arch::x86_64::*;

use super::Codes;
use super::few_rows::{Interleaved, tree_sum};
use crate::cpu::Isa;

/// Dispatch on the instruction set, the code width and the number of rows (kept in
/// registers, so a compile-time constant).
pub fn few_rows(isa: Isa, x: &Interleaved, w: Codes<'_>, first: usize, out: &mut [f32]) {
    macro_rules! by_rows {
        ($f:ident, $bits:literal) => {
            match x.m {
                1 => $f::<$bits, 1>(x, w, first, out),
                2 => $f::<$bits, 2>(x, w, first, out),
                3 => $f::<$bits, 3>(x, w, first, out),
                4 => $f::<$bits, 4>(x, w, first, out),
                5 => $f::<$bits, 5>(x, w, first, out),
                6 => $f::<$bits, 6>(x, w, first, out),
                7 => $f::<$bits, 7>(x, w, first, out),
                _ => $f::<$bits, 8>(x, w, first, out),
            }
        };
    }
    assert!((1..=super::DIRECT_ROWS).contains(&x.m), "{} rows", x.m);
    assert!(isa.available(), "{isa:?} is not available on this CPU");
    // SAFETY: the CPU has the features each function is compiled for (checked above).
    unsafe {
        match (isa, w.bits) {
            (Isa::Avx512 | Isa::Avx512Vnni, 4) => by_rows!(rows_avx512, 4),
            (Isa::Avx512 | Isa::Avx512Vnni, 16) => by_rows!(rows_avx512, 16),
            (Isa::Avx512 | Isa::Avx512Vnni, _) => by_rows!(rows_avx512, 8),
            (Isa::Avx2, 4) => by_rows!(rows_avx2, 4),
            (Isa::Avx2, 16) => by_rows!(rows_avx2, 16),
            (Isa::Avx2, _) => by_rows!(rows_avx2, 8),
            (Isa::Portable, _) => unreachable!("the portable loop is not here"),
        }
    }
}

/// The bounds every pointer below stays within: `x` holds `M` rows of `k` for codes of
/// `BITS`, and the codes, scales and minimums hold every row of `out`.
fn check<const BITS: u32, const M: usize>(
    x: &Interleaved,
    w: Codes<'_>,
    first: usize,
    out: &[f32],
) {
    let rows = out.len() / M;
    assert!(
        out.len().is_multiple_of(M) && x.m == M && x.k == w.k && x.values(BITS).len() == M * w.k,
        "operand shapes"
    );
    assert!(first + rows <= w.n, "rows {first}+{rows} of {}", w.n);
    assert!(
        w.words.len() * 4 >= w.n * w.k / 32 * 4 * BITS as usize,
        "codes"
    );
    assert!(w.scales.len() >= w.n * (w.k / 32), "scales");
    assert!(BITS != 4 || w.mins.len() >= w.n * (w.k / 32), "minimums");
}

#[target_feature(enable = "avx512f,avx512bw,avx512dq,fma,f16c")]
fn rows_avx512<const BITS: u32, const M: usize>(
    x: &Interleaved,
    w: Codes<'_>,
    first: usize,
    out: &mut [f32],
) {
    check::<BITS, M>(x, w, first, out);
    let blocks = w.k / 32;
    let per_block = 4 * BITS as usize;
    let bytes: *const u8 = w.words.as_ptr().cast();
    let xs = x.values(BITS).as_ptr();
    let nibbles = _mm512_setr_ps(
        0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0, 13.0, 14.0, 15.0,
    );
    // The 32 weights of block `at` as two vectors, in the order of `block_codes`.
    let weights = |at: usize| -> [__m512; 2] {
        // SAFETY: block `at` lies inside the codes, scales and minimums (`check`).
        unsafe {
            let codes = bytes.add(at * per_block);
            if BITS == 16 {
                [
                    _mm512_cvtph_ps(_mm256_loadu_si256(codes.cast())),
                    _mm512_cvtph_ps(_mm256_loadu_si256(codes.add(32).cast())),
                ]
            } else if BITS == 4 {
                // The block's 16 possible weights `q·d + min`, then each code's by its
                // nibble (`vpermps` reads an index's low 4 bits): the values converting
                // each code gives, for one multiply-add instead of two and two conversions.
                let v = _mm512_cvtepu8_epi32(_mm_loadu_si128(codes.cast()));
                let d = _mm512_set1_ps(*w.scales.get_unchecked(at));
                let min = _mm512_set1_ps(*w.mins.get_unchecked(at));
                let table = _mm512_fmadd_ps(nibbles, d, min);
                [
                    _mm512_permutexvar_ps(v, table),
                    _mm512_permutexvar_ps(_mm512_srli_epi32::<4>(v), table),
                ]
            } else {
                let d = _mm512_set1_ps(*w.scales.get_unchecked(at));
                let q = |j: usize| _mm512_cvtepi8_epi32(_mm_loadu_si128(codes.add(16 * j).cast()));
                [
                    _mm512_mul_ps(_mm512_cvtepi32_ps(q(0)), d),
                    _mm512_mul_ps(_mm512_cvtepi32_ps(q(1)), d),
                ]
            }
        }
    };
    for (r, out) in out.chunks_exact_mut(M).enumerate() {
        let o = first + r;
        // Per row of x, one accumulator for each half of a block (positions 0-15, 16-31).
        let mut acc = [[_mm512_setzero_ps(); 2]; M];
        for b in 0..blocks {
            let wb = weights(o * blocks + b);
            for (i, acc) in acc.iter_mut().enumerate() {
                // SAFETY: block b of row i lies inside x (`check`).
                let (x0, x1) = unsafe {
                    let at = xs.add((b * M + i) * 32);
                    (_mm512_loadu_ps(at), _mm512_loadu_ps(at.add(16)))
                };
                acc[0] = _mm512_fmadd_ps(x0, wb[0], acc[0]);
                acc[1] = _mm512_fmadd_ps(x1, wb[1], acc[1]);
            }
        }
        if M == 1 {
            out[0] = reduce_one(_mm512_add_ps(acc[0][0], acc[0][1]));
        } else {
            let mut sums = [_mm512_setzero_ps(); 8];
            for (s, acc) in sums.iter_mut().zip(&acc) {
                *s = _mm512_add_ps(acc[0], acc[1]);
            }
            out.copy_from_slice(&reduce(sums)[..M]);
        }
    }
}

/// The sum of one vector's lanes in the tree of [`tree_sum`].
#[inline(always)]
fn reduce_one(v: __m512) -> f32 {
    // SAFETY: AVX-512 F, which the callers are compiled for.
    unsafe {
        let a = _mm256_add_ps(
            _mm512_castps512_ps256(v),
            _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v))),
        );
        let b = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps::<1>(a));
        let c = _mm_add_ps(b, _mm_movehl_ps(b, b));
        _mm_cvtss_f32(_mm_add_ss(c, _mm_movehdup_ps(c)))
    }
}

/// The sums of the lanes of eight vectors, each in the tree of [`tree_sum`] (lane `l` plus
/// lane `l + 8`, then `+ 4`, `+ 2`, `+ 1`), all eight together: at each level the halves of
/// two vectors are brought side by side and added.
#[inline(always)]
fn reduce(v: [__m512; 8]) -> [f32; 8] {
    // SAFETY: AVX-512 F and DQ, which the callers are compiled for.
    unsafe {
        // Level 1: [a₀ (8 lanes), a₁ (8 lanes)] for each pair of vectors.
        let half = |p: __m512, q: __m512| {
            _mm512_add_ps(
                _mm512_shuffle_f32x4::<0b01_00_01_00>(p, q),
                _mm512_shuffle_f32x4::<0b11_10_11_10>(p, q),
            )
        };
        let (a01, a23, a45, a67) = (
            half(v[0], v[1]),
            half(v[2], v[3]),
            half(v[4], v[5]),
            half(v[6], v[7]),
        );
        // Level 2: [b₀, b₁, b₂, b₃], four lanes each.
        let quarter = |p: __m512, q: __m512| {
            _mm512_add_ps(
                _mm512_shuffle_f32x4::<0b10_00_10_00>(p, q),
                _mm512_shuffle_f32x4::<0b11_01_11_01>(p, q),
            )
        };
        let (b0123, b4567) = (quarter(a01, a23), quarter(a45, a67));
        // Level 3: in 128-bit lane r, [c_r (2 lanes), c_{r+4} (2 lanes)].
        let c = _mm512_add_ps(
            _mm512_shuffle_ps::<0b01_00_01_00>(b0123, b4567),
            _mm512_shuffle_ps::<0b11_10_11_10>(b0123, b4567),
        );
        // Level 4: in 128-bit lane r, [y_r, y_{r+4}, y_r, y_{r+4}].
        let y = _mm512_add_ps(
            _mm512_shuffle_ps::<0b10_00_10_00>(c, c),
            _mm512_shuffle_ps::<0b11_01_11_01>(c, c),
        );
        let order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 0, 0, 0, 0, 0, 0, 0, 0);
        let mut lanes = [0f32; 16];
        _mm512_storeu_ps(lanes.as_mut_ptr(), _mm512_permutexvar_ps(order, y));
        let mut out = [0f32; 8];
        out.copy_from_slice(&lanes[..8]);
        out
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
fn rows_avx2<const BITS: u32, const M: usize>(
    x: &Interleaved,
    w: Codes<'_>,
    first: usize,
    out: &mut [f32],
) {
    check::<BITS, M>(x, w, first, out);
    let blocks = w.k / 32;
    let per_block = 4 * BITS as usize;
    let bytes: *const u8 = w.words.as_ptr().cast();
    let xs = x.values(BITS).as_ptr();
    let low = _mm256_set1_epi32(0x0F);
    // Eight weights of block `at` from position 8·j, in the order of `block_codes`.
    let weights = |at: usize, j: usize| -> __m256 {
        // SAFETY: block `at` lies inside the codes, scales and minimums (`check`).
        unsafe {
            let codes = bytes.add(at * per_block);
            if BITS == 16 {
                _mm256_cvtph_ps(_mm_loadu_si128(codes.add(16 * j).cast()))
            } else if BITS == 4 {
                let v = _mm256_cvtepu8_epi32(_mm_loadl_epi64(codes.add(8 * (j % 2)).cast()));
                let q = if j < 2 {
                    _mm256_and_si256(v, low)
                } else {
                    _mm256_srli_epi32::<4>(v)
                };
                let d = _mm256_set1_ps(*w.scales.get_unchecked(at));
                let min = _mm256_set1_ps(*w.mins.get_unchecked(at));
                _mm256_fmadd_ps(_mm256_cvtepi32_ps(q), d, min)
            } else {
                let q = _mm256_cvtepi8_epi32(_mm_loadl_epi64(codes.add(8 * j).cast()));
                _mm256_mul_ps(
                    _mm256_cvtepi32_ps(q),
                    _mm256_set1_ps(*w.scales.get_unchecked(at)),
                )
            }
        }
    };
    // Half `H` of every block (positions 16·H to 16·H + 15, vectors 2·H and 2·H + 1) of
    // weight row `o` into one accumulator per row of x, over the blocks in order.
    macro_rules! half {
        ($o:expr, $h:literal, $acc:expr) => {
            for b in 0..blocks {
                for j in 2 * $h..2 * $h + 2 {
                    let wj = weights($o * blocks + b, j);
                    for (i, acc) in $acc.iter_mut().enumerate() {
                        // SAFETY: block b of row i lies inside x (`check`).
                        let xj = unsafe { _mm256_loadu_ps(xs.add((b * M + i) * 32 + 8 * j)) };
                        *acc = _mm256_fmadd_ps(xj, wj, *acc);
                    }
                }
            }
        };
    }
    for (r, out) in out.chunks_exact_mut(M).enumerate() {
        let o = first + r;
        // Per row of x, one accumulator for each half of a block: `lo` for positions 0-15,
        // `hi` for 16-31.
        let (mut lo, mut hi) = ([_mm256_setzero_ps(); M], [_mm256_setzero_ps(); M]);
        if M <= 4 {
            // Both halves in one pass over the blocks: 2·M accumulators and one vector of
            // weights at a time fit AVX2's 16 registers.
            for b in 0..blocks {
                for j in 0..4 {
                    let wj = weights(o * blocks + b, j);
                    let accs = if j < 2 { &mut lo } else { &mut hi };
                    for (i, acc) in accs.iter_mut().enumerate() {
                        // SAFETY: block b of row i lies inside x (`check`).
                        let xj = unsafe { _mm256_loadu_ps(xs.add((b * M + i) * 32 + 8 * j)) };
                        *acc = _mm256_fmadd_ps(xj, wj, *acc);
                    }
                }
            }
        } else {
            // Up to 16 accumulators would take every register, and the compiler kept some
            // on the stack (a load and a store per multiply-add, seen in `perf annotate`):
            // each half in its own pass instead, M accumulators at a time. Each accumulator
            // sees the same operations in the same order, so the bits are the same; each
            // code is still decoded once, and the weight row is in L1 for the second pass.
            half!(o, 0, lo);
            half!(o, 1, hi);
        }
        for (v, (lo, hi)) in out.iter_mut().zip(lo.into_iter().zip(hi)) {
            let mut lanes = [0f32; 8];
            // SAFETY: eight floats into an array of eight.
            unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), _mm256_add_ps(lo, hi)) };
            *v = tree_sum(&lanes);
        }
    }
}
