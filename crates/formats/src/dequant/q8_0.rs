//! Q8_0: 32 signed bytes and one scale. SmolLM2's Q4_1 file stores `token_embd` this way.

use super::f16_at;

/// `block_q8_0 { f16 d; i8 qs[32]; }` (34 bytes): `y = q * d`.
pub(super) fn block_q8_0(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    for (y, &q) in y.iter_mut().zip(&b[2..34]) {
        *y = (q as i8) as f32 * d;
    }
}
