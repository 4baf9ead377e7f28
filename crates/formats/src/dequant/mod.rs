//! ggml block formats converted to `f32`, bit-for-bit as ggml's reference
//! `dequantize_row_*` (ggml-quants.c) and the `gguf` Python package compute them: the same
//! products in the same order, in `f32`, with no fused multiply-add.
//!
//! Blocks hold `block_size` consecutive elements of a row (GGUF's innermost dimension);
//! the output has one `f32` per element, in storage order.

mod float;
mod k_quants;
mod q4;
mod q5;
mod q8_0;
mod types;

pub use types::{GgmlType, QK_K};

/// Why a byte buffer could not be dequantized. The caller adds the tensor and file names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DequantError {
    #[error(
        "type {0} cannot be converted to f32 (supported: F32 F16 BF16 Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q4_K Q5_K Q6_K)"
    )]
    Unsupported(GgmlType),
    #[error("{n_elements} elements are not a whole number of {ty} blocks of {block_size}")]
    PartialBlock {
        ty: GgmlType,
        n_elements: usize,
        block_size: usize,
    },
    #[error("{n_elements} elements of {ty} need {expected} bytes, got {actual}")]
    Length {
        ty: GgmlType,
        n_elements: usize,
        expected: usize,
        actual: usize,
    },
}

/// Converts `n_elements` values of type `ty` stored in `bytes` to `f32`.
///
/// `bytes` must hold exactly the bytes of those elements (`ty.bytes_for(n_elements)`).
pub fn dequantize(ty: GgmlType, bytes: &[u8], n_elements: usize) -> Result<Vec<f32>, DequantError> {
    if !ty.is_supported() {
        return Err(DequantError::Unsupported(ty));
    }
    let (block_size, type_size) = ty.block_geometry();
    if !n_elements.is_multiple_of(block_size) {
        return Err(DequantError::PartialBlock {
            ty,
            n_elements,
            block_size,
        });
    }
    let expected = (n_elements / block_size).checked_mul(type_size);
    if expected != Some(bytes.len()) {
        return Err(DequantError::Length {
            ty,
            n_elements,
            expected: expected.unwrap_or(usize::MAX),
            actual: bytes.len(),
        });
    }
    let mut out = vec![0.0f32; n_elements];
    // Blocks are independent: pair each one with its slice of the output.
    let blocks = bytes
        .chunks_exact(type_size)
        .zip(out.chunks_exact_mut(block_size));
    match ty {
        GgmlType::F32 => blocks.for_each(|(b, y)| y[0] = float::f32_le(b)),
        GgmlType::F16 => blocks.for_each(|(b, y)| y[0] = float::f16_le(b)),
        GgmlType::BF16 => blocks.for_each(|(b, y)| y[0] = float::bf16_le(b)),
        GgmlType::Q4_0 => blocks.for_each(|(b, y)| q4::block_q4_0(b, y)),
        GgmlType::Q4_1 => blocks.for_each(|(b, y)| q4::block_q4_1(b, y)),
        GgmlType::Q5_0 => blocks.for_each(|(b, y)| q5::block_q5_0(b, y)),
        GgmlType::Q5_1 => blocks.for_each(|(b, y)| q5::block_q5_1(b, y)),
        GgmlType::Q8_0 => blocks.for_each(|(b, y)| q8_0::block_q8_0(b, y)),
        GgmlType::Q4_K => blocks.for_each(|(b, y)| k_quants::block_q4_k(b, y)),
        GgmlType::Q5_K => blocks.for_each(|(b, y)| k_quants::block_q5_k(b, y)),
        GgmlType::Q6_K => blocks.for_each(|(b, y)| k_quants::block_q6_k(b, y)),
        other => return Err(DequantError::Unsupported(other)),
    }
    Ok(out)
}

/// Reads the little-endian `f16` at `b[at..at + 2]` as `f32` (block scales are stored so).
#[inline]
pub(crate) fn f16_at(b: &[u8], at: usize) -> f32 {
    half::f16::from_le_bytes([b[at], b[at + 1]]).to_f32()
}
