//! Vector math over f32 rows, written so that the compiler vectorizes it: an `exp` without
//! branches or calls, reductions over [`LANES`] side by side, softmax, dot products, and a
//! bias added to every row.

use super::for_each_chunk;

/// `eˣ` within 2 ulp for `x ≤ 88` (Cephes' `expf`: `x = n·ln 2 + r`, a degree-6 polynomial in
/// `r`, and `2ⁿ` built in the exponent bits), written without branches or calls so that a
/// loop over it vectorizes; glibc's `expf` is a call per value. Below -87.3 it returns 0.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding and subtracting 1.5·2²³ rounds to the nearest integer without `round()`,
    // which compiles to a call where SSE4.1 is not assumed.
    const ROUND: f32 = 12_582_912.0;
    let underflow = x < -87.33;
    let x = x.clamp(-87.33, 88.72);
    let n = (x * LOG2E + ROUND) - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let r2 = r * r;
    let p = ((((1.987_569_2e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 1.666_666_5e-1)
        * r
        + 5.000_000_1e-1;
    let y = p * r2 + r + 1.0;
    let scale = f32::from_bits(((n as i32 + 127) as u32) << 23);
    if underflow { 0.0 } else { y * scale }
}

/// Values summed side by side, so that the reductions vectorize.
pub const LANES: usize = 16;

/// The largest value of `row` (-inf for an empty row).
#[inline(always)]
pub fn max(row: &[f32]) -> f32 {
    let mut lanes = [f32::NEG_INFINITY; LANES];
    let chunks = row.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for (m, &v) in lanes.iter_mut().zip(c) {
            *m = m.max(v);
        }
    }
    tail.iter()
        .chain(&lanes)
        .fold(f32::NEG_INFINITY, |m, &v| m.max(v))
}

/// `Σ exp(v - shift)`.
#[inline(always)]
pub fn sum_exp_shifted(row: &[f32], shift: f32) -> f32 {
    let mut lanes = [0f32; LANES];
    let chunks = row.chunks_exact(LANES);
    let tail: f32 = chunks.remainder().iter().map(|&v| exp(v - shift)).sum();
    for c in chunks {
        for (s, &v) in lanes.iter_mut().zip(c) {
            *s += exp(v - shift);
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// `v ← exp(v - shift)` for every value, and their sum.
#[inline(always)]
pub fn exp_shifted_in_place(row: &mut [f32], shift: f32) -> f32 {
    let mut lanes = [0f32; LANES];
    let mut chunks = row.chunks_exact_mut(LANES);
    for c in &mut chunks {
        for (s, v) in lanes.iter_mut().zip(c) {
            *v = exp(*v - shift);
            *s += *v;
        }
    }
    let mut tail = 0.0;
    for v in chunks.into_remainder() {
        *v = exp(*v - shift);
        tail += *v;
    }
    lanes.iter().sum::<f32>() + tail
}

/// `row ← softmax(row)`. A row of -inf (every key masked) gives NaN, as Burn's softmax does;
/// a finite mask gives such a row a uniform softmax.
#[inline(always)]
pub fn softmax_in_place(row: &mut [f32]) {
    let max = max(row);
    let inv = 1.0 / exp_shifted_in_place(row, max);
    row.iter_mut().for_each(|v| *v *= inv);
}

/// `Σ a ⊙ b`. Inlined, so that inside [`simd`] or a function compiled for wider vectors
/// it uses them.
#[inline(always)]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for ((s, x), y) in lanes.iter_mut().zip(x).zip(y) {
            *s += x * y;
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// `y[i, ..] += bias` for every row of `y`, skipped for a bias of zeros (the layers without
/// one get zeros).
pub fn add_rows(y: &mut [f32], bias: &[f32]) {
    if bias.iter().all(|&b| b == 0.0) {
        return;
    }
    for_each_chunk(
        y,
        bias.len(),
        #[inline(always)]
        |_, row| row.iter_mut().zip(bias).for_each(|(v, b)| *v += b),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_the_library_within_two_ulp() {
        let mut worst = 0.0f64;
        let mut x = -87.0f32;
        while x < 88.0 {
            let (ours, std) = (exp(x) as f64, (x as f64).exp());
            worst = worst.max(((ours - std) / std).abs());
            x += 0.0137;
        }
        assert!(worst < 2.5e-7, "worst relative error {worst}");
        assert_eq!(exp(-100.0), 0.0);
        assert_eq!(exp(0.0), 1.0);
    }
}
