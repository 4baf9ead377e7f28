//! The integer product of `int_rows` in AVX-512 VNNI (one `vpdpbusd` takes two blocks: 64
//! unsigned code bytes against 64 signed activation bytes) and in AVX2 (`vpmaddubsw` and
//! `vpmaddwd`, one block per vector). AVX-512 without VNNI takes the AVX2 loop.
//!
//! Both instructions multiply unsigned bytes by signed ones. 4-bit codes are unsigned
//! already. 8-bit codes are signed: VNNI reads them with 128 added (`q ^ 0x80`) and its
//! accumulator starts at `-128·Σⱼ xⱼ` of the block, exactly; AVX2 multiplies `|q|` by `x`
//! with `q`'s sign (`vpsignb`), since 16-bit pair sums of `(q + 128)·x` could saturate.

use std::arch::x86_64::*;

use super::Codes;
use super::int_rows::min_term;
use super::int_rows::{QuantizedRows, block_dot};
use crate::cpu::Isa;

/// Per row of `x` and pair of blocks, the 16 lanes VNNI's sums come out in (lanes 0-7 the
/// first block's, 8-15 the second's): the activations' steps, and for 8-bit codes the
/// accumulator's starting values.
pub struct PairLanes {
    /// `[m, pairs, 16]`.
    steps: Vec<f32>,
    /// `[m, pairs, 16]`: `-128·Σⱼ qⱼ` in lanes 0 and 8 (8-bit codes), else empty.
    starts: Vec<i32>,
}

impl PairLanes {
    pub fn new(x: &QuantizedRows, bits: u32) -> Self {
        let blocks = x.blocks();
        let pairs = blocks / 2;
        let mut steps = Vec::with_capacity(x.m * pairs * 16);
        let mut starts = Vec::new();
        for i in 0..x.m {
            for p in 0..pairs {
                let (b0, b1) = (i * blocks + 2 * p, i * blocks + 2 * p + 1);
                steps.extend([x.scales[b0]; 8]);
                steps.extend([x.scales[b1]; 8]);
                if bits == 8 {
                    let mut lanes = [0i32; 16];
                    lanes[0] = -128 * x.sums[b0];
                    lanes[8] = -128 * x.sums[b1];
                    starts.extend(lanes);
                }
            }
        }
        Self { steps, starts }
    }
}

/// Dispatch on the instruction set, the code width and the number of rows.
pub fn int_rows(
    isa: Isa,
    x: &QuantizedRows,
    lanes: Option<&PairLanes>,
    w: Codes<'_>,
    first: usize,
    out: &mut [f32],
) {
    macro_rules! by_rows {
        ($f:ident, $bits:literal $(, $lanes:expr)?) => {
            match x.m {
                1 => $f::<$bits, 1>(x, $($lanes,)? w, first, out),
                2 => $f::<$bits, 2>(x, $($lanes,)? w, first, out),
                3 => $f::<$bits, 3>(x, $($lanes,)? w, first, out),
                4 => $f::<$bits, 4>(x, $($lanes,)? w, first, out),
                5 => $f::<$bits, 5>(x, $($lanes,)? w, first, out),
                6 => $f::<$bits, 6>(x, $($lanes,)? w, first, out),
                7 => $f::<$bits, 7>(x, $($lanes,)? w, first, out),
                _ => $f::<$bits, 8>(x, $($lanes,)? w, first, out),
            }
        };
    }
    assert!((1..=super::DIRECT_ROWS).contains(&x.m), "{} rows", x.m);
    assert!(isa.available(), "{isa:?} is not available on this CPU");
    check(x, w, first, out);
    // SAFETY: the CPU has the features each function is compiled for (checked above), and
    // every pointer stays within the bounds `check` asserts.
    unsafe {
        match (isa, w.bits) {
            (Isa::Avx512Vnni, bits) => {
                let lanes = lanes.expect("the lanes of VNNI's pairs");
                let pairs = x.blocks() / 2;
                assert!(lanes.steps.len() == x.m * pairs * 16, "lanes");
                if bits == 4 {
                    by_rows!(rows_vnni, 4, lanes)
                } else {
                    assert!(lanes.starts.len() == x.m * pairs * 16, "lanes");
                    by_rows!(rows_vnni, 8, lanes)
                }
            }
            (Isa::Avx512 | Isa::Avx2, 4) => by_rows!(rows_avx2, 4),
            (Isa::Avx512 | Isa::Avx2, _) => by_rows!(rows_avx2, 8),
            (Isa::Portable, _) => unreachable!("the portable loop is not here"),
        }
    }
}

/// The bounds every pointer below stays within.
fn check(x: &QuantizedRows, w: Codes<'_>, first: usize, out: &[f32]) {
    let rows = out.len() / x.m;
    assert!(
        out.len() % x.m == 0 && x.q.len() == x.m * w.k && x.k == w.k,
        "operand shapes"
    );
    assert!(x.scales.len() == x.m * x.blocks(), "steps");
    assert!(first + rows <= w.n, "rows {first}+{rows} of {}", w.n);
    assert!(w.words.len() * 32 >= w.n * w.k * w.bits as usize, "codes");
    assert!(w.scales.len() >= w.n * (w.k / 32), "scales");
}

#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma")]
fn rows_vnni<const BITS: u32, const M: usize>(
    x: &QuantizedRows,
    lanes: &PairLanes,
    w: Codes<'_>,
    first: usize,
    out: &mut [f32],
) {
    let (k, blocks) = (w.k, w.k / 32);
    let pairs = blocks / 2;
    let per_block = 4 * BITS as usize;
    let bytes: *const u8 = w.words.as_ptr().cast();
    let xq: *const i8 = x.q.as_ptr();
    let low = _mm256_set1_epi8(0x0F);
    let flip = _mm512_set1_epi8(-128);
    for (r, out_row) in out.chunks_exact_mut(M).enumerate() {
        let o = first + r;
        let mut acc = [_mm512_setzero_ps(); M];
        for p in 0..pairs {
            let at = o * blocks + 2 * p;
            // SAFETY (the loads): blocks `at` and `at + 1` lie inside the codes, and 64
            // bytes of each row of `x` from `64·p` inside `x.q`; the lanes hold `M` rows of
            // `pairs` vectors (`int_rows`).
            let codes = unsafe { bytes.add(at * per_block) };
            let q = if BITS == 4 {
                // [block 0's low nibbles, block 1's low, block 0's high, block 1's high]
                // (16 bytes each), put in the order of `x`: block 0's 32, then block 1's.
                let v = unsafe { _mm256_loadu_si256(codes.cast()) };
                let lo = _mm256_and_si256(v, low);
                let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(v), low);
                let both = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(lo), hi);
                _mm512_shuffle_i64x2::<0b11_01_10_00>(both, both)
            } else {
                _mm512_xor_si512(unsafe { _mm512_loadu_si512(codes.cast()) }, flip)
            };
            let d = _mm512_insertf32x8::<1>(
                _mm512_set1_ps(w.scales[at]),
                _mm256_set1_ps(w.scales[at + 1]),
            );
            for (i, acc) in acc.iter_mut().enumerate() {
                let lane = (i * pairs + p) * 16;
                let start = if BITS == 8 {
                    unsafe { _mm512_loadu_si512(lanes.starts.as_ptr().add(lane).cast()) }
                } else {
                    _mm512_setzero_si512()
                };
                let xv = unsafe { _mm512_loadu_si512(xq.add(i * k + 64 * p).cast()) };
                let dots = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(start, q, xv));
                let steps = unsafe { _mm512_loadu_ps(lanes.steps.as_ptr().add(lane)) };
                *acc = _mm512_fmadd_ps(dots, _mm512_mul_ps(d, steps), *acc);
            }
        }
        for (i, v) in out_row.iter_mut().enumerate() {
            *v = _mm512_reduce_add_ps(acc[i])
                + odd_block::<BITS>(x, w, o, i)
                + min_term(w, o, &x.xsum, i);
        }
    }
}

/// The last block of an odd count, which the pairs leave out (0 for an even count).
#[inline(always)]
fn odd_block<const BITS: u32>(x: &QuantizedRows, w: Codes<'_>, o: usize, i: usize) -> f32 {
    let blocks = x.blocks();
    if blocks % 2 == 0 {
        return 0.0;
    }
    let (b, per_block) = (blocks - 1, 4 * BITS as usize);
    let at = o * blocks + b;
    let bytes: &[u8] = bytemuck::cast_slice(w.words);
    let codes = &bytes[at * per_block..(at + 1) * per_block];
    let xq = &x.q[i * x.k + b * 32..i * x.k + b * 32 + 32];
    w.scales[at] * x.scales[i * blocks + b] * block_dot::<BITS>(codes, xq) as f32
}

#[target_feature(enable = "avx2,fma")]
fn rows_avx2<const BITS: u32, const M: usize>(
    x: &QuantizedRows,
    w: Codes<'_>,
    first: usize,
    out: &mut [f32],
) {
    let (k, blocks) = (w.k, w.k / 32);
    let per_block = 4 * BITS as usize;
    let bytes: *const u8 = w.words.as_ptr().cast();
    let xq: *const i8 = x.q.as_ptr();
    let low = _mm_set1_epi8(0x0F);
    let ones = _mm256_set1_epi16(1);
    for (r, out_row) in out.chunks_exact_mut(M).enumerate() {
        let o = first + r;
        let mut acc = [_mm256_setzero_ps(); M];
        for b in 0..blocks {
            let at = o * blocks + b;
            // SAFETY (the loads): block `at` lies inside the codes, and 32 bytes of each row
            // of `x` from `32·b` inside `x.q` (`int_rows`).
            let codes = unsafe { bytes.add(at * per_block) };
            // The codes as unsigned bytes, and for 8-bit codes their signs, in the order
            // of `x`.
            let (q, sign) = if BITS == 4 {
                let v = unsafe { _mm_loadu_si128(codes.cast()) };
                let lo = _mm_and_si128(v, low);
                let hi = _mm_and_si128(_mm_srli_epi16::<4>(v), low);
                (_mm256_set_m128i(hi, lo), _mm256_setzero_si256())
            } else {
                let v = unsafe { _mm256_loadu_si256(codes.cast()) };
                (_mm256_abs_epi8(v), v)
            };
            let d = _mm256_set1_ps(w.scales[at]);
            for (i, acc) in acc.iter_mut().enumerate() {
                let mut xv = unsafe { _mm256_loadu_si256(xq.add(i * k + 32 * b).cast()) };
                if BITS == 8 {
                    xv = _mm256_sign_epi8(xv, sign);
                }
                let pairs = _mm256_maddubs_epi16(q, xv);
                let dots = _mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, ones));
                let step = _mm256_set1_ps(x.scales[i * blocks + b]);
                *acc = _mm256_fmadd_ps(dots, _mm256_mul_ps(d, step), *acc);
            }
        }
        for (i, v) in out_row.iter_mut().enumerate() {
            let mut lanes = [0f32; 8];
            // SAFETY: eight floats into an array of eight.
            unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), acc[i]) };
            *v = lanes.iter().sum::<f32>() + min_term(w, o, &x.xsum, i);
        }
    }
}
