//! Unquantized element types; each "block" is one element.

use half::{bf16, f16};

#[inline]
pub(super) fn f32_le(b: &[u8]) -> f32 {
    f32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

#[inline]
pub(super) fn f16_le(b: &[u8]) -> f32 {
    f16::from_le_bytes([b[0], b[1]]).to_f32()
}

/// bf16 is the top half of an f32, so the conversion is exact (NaN payloads included).
#[inline]
pub(super) fn bf16_le(b: &[u8]) -> f32 {
    bf16::from_le_bytes([b[0], b[1]]).to_f32()
}
