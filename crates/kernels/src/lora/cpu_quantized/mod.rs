//! The product over a base weight kept as packed codes (the layout of [`crate::quant`]) on
//! the CPU, without ever forming the whole f32 weight for a few rows:
//!
//! - **a few rows** (decoding: one token per sequence) read the codes directly: each
//!   block's codes become its 32 f32 weights once (`q·d + min`), used by every row of `x`
//!   with one multiply-add per value. One sequence's step is bound by memory traffic, and
//!   4-bit codes are 19% of the f32 weight's bytes; eight sequences' by the multiply-adds;
//! - **many rows** (prefill) dequantize the weight once, on every thread, and multiply
//!   with gemm: there the product's arithmetic outweighs reading the weight.
//!
//! With `MENTALQLM_INT_DOT=1`, a few rows over 4- or 8-bit codes quantize the activations
//! to bytes and take integer dot products (`int_rows`).
//!
//! This file holds the codes and their dequantization (the many-rows path); `few_rows` the
//! direct product with f32 activations, and `x86` its AVX-512 and AVX2 loops; `int_rows`
//! the product with quantized activations, and `x86_int` its VNNI and AVX2 loops.

mod few_rows;
mod int_rows;
#[cfg(target_arch = "x86_64")]
mod x86;
#[cfg(target_arch = "x86_64")]
mod x86_int;

use crate::cpu;

pub use few_rows::{
    Activations, matmul_chunked_rows, matmul_few_rows, matmul_few_rows_many, matmul_few_rows_with,
};
pub use int_rows::{QuantizedRows, matmul_int_rows};

/// Rows of `x` up to which the codes are read directly, in one pass.
pub const DIRECT_ROWS: usize = 8;

/// Rows of `x` up to which the codes are read directly, [`DIRECT_ROWS`] at a time (a batch
/// of decoding sequences): reading the codes once per 8 rows costs less than forming the
/// whole f32 weight, and each row gets the bits it gets alone.
pub const CHUNKED_ROWS: usize = 32;

/// Packed codes of a `[n, k]` weight, borrowed.
#[derive(Clone, Copy)]
pub struct Codes<'a> {
    /// 16 (half floats), 8 or 4.
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
        let fits = matches!(bits, 16 | 8 | 4)
            && k % 32 == 0
            && words.len() == n * k * bits as usize / 32
            && scales.len() == n * blocks
            && (bits != 4 || mins.len() == n * blocks);
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
            } else if BITS == 16 {
                chunk.copy_from_slice(&q);
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
                        16 => self.dequantize_row::<16>(task * rows + r, row),
                        _ => self.dequantize_row::<8>(task * rows + r, row),
                    }
                }
            },
        );
        w
    }
}

/// Which element of a block of 32 the codes of `bits` hold at position `j` of
/// [`block_codes`]' order: for 4-bit codes the even elements, then the odd ones (a byte's low
/// nibble, then its high one); else element `j`.
#[inline(always)]
pub(crate) fn code_order(bits: u32, j: usize) -> usize {
    match bits {
        4 if j < 16 => 2 * j,
        4 => 2 * (j - 16) + 1,
        _ => j,
    }
}

// The codes are read as bytes: a little-endian word's first byte holds its lowest bits.
const _: () = assert!(cfg!(target_endian = "little"));

/// The codes of one block as floats, in the block's byte order: for 4-bit codes the low
/// nibbles of its 16 bytes (elements 0, 2, .., 30) and then the high ones (1, 3, .., 31);
/// for 8-bit codes elements 0..32 as signed bytes; for 16-bit codes elements 0..32 as half
/// floats (their scale is 1).
#[inline(always)]
fn block_codes<const BITS: u32>(bytes: &[u8]) -> [f32; 32] {
    let mut q = [0f32; 32];
    if BITS == 16 {
        for (v, h) in q.iter_mut().zip(bytes.chunks_exact(2)) {
            *v = half::f16::from_le_bytes([h[0], h[1]]).to_f32();
        }
    } else if BITS == 4 {
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

/// For the kernels' tests: each row of `y` (`x [m, k]` times `codes`, taken as
/// `activations`) equals, to the bit, that row's product alone. A batch mixing requests gives
/// each the tokens it gets alone.
#[cfg(test)]
pub(crate) fn assert_rows_alone(
    isa: cpu::Isa,
    activations: Activations,
    x: &[f32],
    codes: Codes<'_>,
    y: &[f32],
    what: &str,
) {
    let (n, k) = (codes.n, codes.k);
    for (i, (x, y)) in x.chunks_exact(k).zip(y.chunks_exact(n)).enumerate() {
        let mut alone = vec![f32::NAN; n];
        matmul_few_rows_with(isa, activations, x, 1, codes, &mut alone);
        assert!(
            alone.iter().zip(y).all(|(a, b)| a.to_bits() == b.to_bits()),
            "{isa:?} {what}: row {i} differs alone"
        );
    }
}

/// A weight through a GGUF format, for the kernels' tests.
#[cfg(test)]
pub(crate) struct TestWeight {
    /// The reader's dequantization of the GGUF blocks (`formats::dequant`).
    pub exact: Vec<f32>,
    pub packed: crate::quant::PackedWeight,
    pub bits: u32,
    pub n: usize,
    pub k: usize,
}

#[cfg(test)]
impl TestWeight {
    pub fn new(format: crate::quant::QuantFormat, w: &[f32], n: usize, k: usize) -> Self {
        let gguf = crate::quant::quantize_gguf(format, w);
        let exact = formats::dequant::dequantize(format.ggml(), &gguf, n * k).unwrap();
        let packed = crate::quant::PackedWeight::from_gguf(format.ggml(), &gguf, n, k).unwrap();
        Self {
            exact,
            packed,
            bits: format.bits(),
            n,
            k,
        }
    }

    pub fn codes(&self) -> Codes<'_> {
        let p = &self.packed;
        Codes::new(self.bits, [self.n, self.k], &p.quants, &p.scales, &p.mins).unwrap()
    }

    /// The first output of `y [m, n]` off `x·Wᵀ` computed in f64 over the reader's
    /// dequantization (by more than 1e-4, relative), or `None`.
    pub fn mismatch(&self, x: &[f32], m: usize, y: &[f32]) -> Option<String> {
        let (n, k) = (self.n, self.k);
        for i in 0..m {
            for o in 0..n {
                let want: f64 = (0..k)
                    .map(|j| x[i * k + j] as f64 * self.exact[o * k + j] as f64)
                    .sum();
                let got = y[i * n + o] as f64;
                if (got - want).abs() >= 1e-4 * (1.0 + want.abs()) {
                    return Some(format!("({i}, {o}): {got} vs {want}"));
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let halves = [0u32; 32];
        assert!(Codes::new(16, [2, 32], &halves, &scales, &[]).is_some());
        assert!(Codes::new(16, [2, 32], &halves[..31], &scales, &[]).is_none());
    }
}
