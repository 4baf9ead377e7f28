//! Q5_0 and Q5_1: Q4 nibbles plus a fifth bit per element, packed in a little-endian
//! `u32 qh` whose bit `j` belongs to element `j` (bits 16..32 to the high nibbles).

use super::f16_at;

/// The 5-bit codes of elements `j` and `j + 16`.
#[inline]
fn codes(qh: u32, q: u8, j: usize) -> (u8, u8) {
    let h0 = (((qh >> j) & 1) << 4) as u8;
    let h1 = (((qh >> (j + 16)) & 1) << 4) as u8;
    ((q & 0x0F) | h0, (q >> 4) | h1)
}

/// `block_q5_0 { f16 d; u8 qh[4]; u8 qs[16]; }` (22 bytes): `y = (q - 16) * d`.
pub(super) fn block_q5_0(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
    for (j, &q) in b[6..22].iter().enumerate() {
        let (x0, x1) = codes(qh, q, j);
        y[j] = (x0 as i32 - 16) as f32 * d;
        y[j + 16] = (x1 as i32 - 16) as f32 * d;
    }
}

/// `block_q5_1 { f16 d; f16 m; u8 qh[4]; u8 qs[16]; }` (24 bytes): `y = q * d + m`.
pub(super) fn block_q5_1(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    let m = f16_at(b, 2);
    let qh = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
    for (j, &q) in b[8..24].iter().enumerate() {
        let (x0, x1) = codes(qh, q, j);
        y[j] = x0 as f32 * d + m;
        y[j + 16] = x1 as f32 * d + m;
    }
}
