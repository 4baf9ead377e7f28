//! The direct product in AVX-512 (16 lanes: one block's 32 codes are two vectors) and
//! AVX2 with FMA (8 lanes: four vectors). Half floats are widened by F16C's `vcvtph2ps`.

use std::arch::x86_64::*;

use super::Codes;
use super::few_rows::min_term;
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

/// Blocks `0..blocks` through `step(acc, b)`: even blocks into one set of `M` accumulators,
/// odd ones into another, so that two chains of additions per row are in flight. Two named
/// arrays, not a pair indexed by `b % 2`, so that they stay in registers (an indexed pair
/// lives on the stack: a load and a store per block and row).
#[inline(always)]
fn even_odd<A: Copy, const M: usize>(
    blocks: usize,
    zero: A,
    mut step: impl FnMut(&mut [A; M], usize),
) -> ([A; M], [A; M]) {
    let (mut even, mut odd) = ([zero; M], [zero; M]);
    for b in (0..blocks - blocks % 2).step_by(2) {
        step(&mut even, b);
        step(&mut odd, b + 1);
    }
    if blocks % 2 == 1 {
        step(&mut even, blocks - 1);
    }
    (even, odd)
}

#[target_feature(enable = "avx512f,avx512bw,fma,f16c")]
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
    // The codes of block `at`, as two vectors of 16 floats in the order of `block_codes`.
    let decode = |at: usize| -> (__m512, __m512) {
        // SAFETY: block `at` lies inside the codes (`check`).
        unsafe {
            let codes = bytes.add(at * per_block);
            if BITS == 16 {
                (
                    _mm512_cvtph_ps(_mm256_loadu_si256(codes.cast())),
                    _mm512_cvtph_ps(_mm256_loadu_si256(codes.add(32).cast())),
                )
            } else if BITS == 4 {
                let v = _mm512_cvtepu8_epi32(_mm_loadu_si128(codes.cast()));
                (
                    _mm512_cvtepi32_ps(_mm512_and_si512(v, low)),
                    _mm512_cvtepi32_ps(_mm512_srli_epi32::<4>(v)),
                )
            } else {
                (
                    _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(codes.cast()))),
                    _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(codes.add(16).cast()))),
                )
            }
        }
    };
    // Block `b` of every row into `acc`: `acc[i] += d·(x₀·q₀ + x₁·q₁)`.
    let step = |acc: &mut [__m512; M], at: usize, b: usize| {
        let (q0, q1) = decode(at);
        let d = _mm512_set1_ps(w.scales[at]);
        for (i, acc) in acc.iter_mut().enumerate() {
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
    };
    for (r, out_row) in out.chunks_exact_mut(M).enumerate() {
        let o = first + r;
        let (even, odd) = even_odd(blocks, _mm512_setzero_ps(), |acc, b| {
            step(acc, o * blocks + b, b)
        });
        for (i, v) in out_row.iter_mut().enumerate() {
            *v = _mm512_reduce_add_ps(_mm512_add_ps(even[i], odd[i])) + min_term(w, o, xsum, i);
        }
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
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
    // The codes of block `at`: four vectors of 8 floats in the order of `block_codes`.
    let decode = |at: usize| -> [__m256; 4] {
        // SAFETY: block `at` lies inside the codes (`check`).
        unsafe {
            let codes = bytes.add(at * per_block);
            if BITS == 16 {
                let eight = |j: usize| _mm256_cvtph_ps(_mm_loadu_si128(codes.add(16 * j).cast()));
                [eight(0), eight(1), eight(2), eight(3)]
            } else if BITS == 4 {
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
        }
    };
    // Block `b` of every row into `acc`: `acc[i] += d·Σ xⱼ·qⱼ`.
    let step = |acc: &mut [__m256; M], at: usize, b: usize| {
        let q = decode(at);
        let d = _mm256_set1_ps(w.scales[at]);
        for (i, acc) in acc.iter_mut().enumerate() {
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
    };
    for (r, out_row) in out.chunks_exact_mut(M).enumerate() {
        let o = first + r;
        let (even, odd) = even_odd(blocks, _mm256_setzero_ps(), |acc, b| {
            step(acc, o * blocks + b, b)
        });
        for (i, v) in out_row.iter_mut().enumerate() {
            let mut lanes = [0f32; 8];
            // SAFETY: eight floats into an array of eight.
            unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), _mm256_add_ps(even[i], odd[i])) };
            *v = lanes.iter().sum::<f32>() + min_term(w, o, xsum, i);
        }
    }
}
