//! Q4_0 and Q4_1: 32 elements per block as 4-bit codes, two per byte.
//! Element `j` is the low nibble of `qs[j]`, element `j + 16` its high nibble.

use super::f16_at;

/// `block_q4_0 { f16 d; u8 qs[16]; }` (18 bytes): `y = (q - 8) * d`.
pub(super) fn block_q4_0(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    let qs = &b[2..18];
    for (j, &q) in qs.iter().enumerate() {
        y[j] = ((q & 0x0F) as i32 - 8) as f32 * d;
        y[j + 16] = ((q >> 4) as i32 - 8) as f32 * d;
    }
}

/// `block_q4_1 { f16 d; f16 m; u8 qs[16]; }` (20 bytes): `y = q * d + m`.
pub(super) fn block_q4_1(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    let m = f16_at(b, 2);
    let qs = &b[4..20];
    for (j, &q) in qs.iter().enumerate() {
        y[j] = (q & 0x0F) as f32 * d + m;
        y[j + 16] = (q >> 4) as f32 * d + m;
    }
}
