//! The product over many rows of `x` (a prompt) for the browser, where the weights are f32:
//! `y = x·Wᵀ`, each output a dot product of two contiguous rows, 2 rows of `x` by 4 of `W` at
//! a time.
//!
//! Natively the products take gemm, whose AVX2 and AVX-512 kernels are faster than this. In
//! a browser, with gemm's `simd128` kernel (4 lanes, 12 accumulators, 4 broadcast values) the
//! default model's classification took 1.2–1.3× as long as with this kernel, which keeps 8
//! accumulators, loads 6 vectors per step and needs no packing (docs/browser.md, 2026-12-06).

use super::par as cpu;

/// Weight rows taken at a time: at most 48 KiB for the model's widest rows (1536), which
/// stay in the first- or second-level cache while every row of `x` in the task passes.
const W_ROWS: usize = 8;

/// `y [m, n] = x [m, k]·Wᵀ` for `w [n, k]` (row-major, read in place; `k` a multiple of 4), on
/// every thread: the rows of `y` are split into two runs per thread, each passing over the
/// weight [`W_ROWS`] rows at a time.
pub fn matmul_many_rows(x: &[f32], m: usize, w: &[f32], n: usize, k: usize) -> Vec<f32> {
    assert_eq!(
        w.len(),
        n * k,
        "many rows: W holds {} values for [{n}, {k}]",
        w.len()
    );
    by_runs_of_rows(x, m, n, k, |xs, out| {
        for o in (0..n).step_by(W_ROWS) {
            let nb = W_ROWS.min(n - o);
            rows_times_block(xs, &w[o * k..(o + nb) * k], k, o, n, out);
        }
    })
}

/// `y [m, n]`, its rows split into two runs per thread, each written by `run(xs, out)` from
/// its rows of `x` (`[rows, k]`) into its rows of `y` (`[rows, n]`).
fn by_runs_of_rows(
    x: &[f32],
    m: usize,
    n: usize,
    k: usize,
    run: impl Fn(&[f32], &mut [f32]) + Send + Sync,
) -> Vec<f32> {
    assert_eq!(
        x.len(),
        m * k,
        "many rows: x holds {} values for [{m}, {k}]",
        x.len()
    );
    assert!(k % 4 == 0, "many rows: k = {k} is not a multiple of 4");
    let mut y = cpu::zeros(m * n);
    if m == 0 || n == 0 {
        return y;
    }
    let rows = m.div_ceil(2 * cpu::threads()).next_multiple_of(2);
    cpu::for_each_task(&mut y, rows * n, |task, out| {
        let first = task * rows;
        let count = out.len() / n;
        run(&x[first * k..(first + count) * k], out);
    });
    y
}

/// Columns `o..o + rows` of `out [count, n]`: `xs [count, k]` times the block `ws [rows, k]`
/// (weight rows `o..`), two rows of `x` at a time.
fn rows_times_block(xs: &[f32], ws: &[f32], k: usize, o: usize, n: usize, out: &mut [f32]) {
    let count = xs.len() / k;
    let mut i = 0;
    while i + 2 <= count {
        let x2 = [&xs[i * k..(i + 1) * k], &xs[(i + 1) * k..(i + 2) * k]];
        write_dots(x2, ws, k, o, n, &mut out[i * n..(i + 2) * n]);
        i += 2;
    }
    if i < count {
        write_dots(
            [&xs[i * k..(i + 1) * k]],
            ws,
            k,
            o,
            n,
            &mut out[i * n..(i + 1) * n],
        );
    }
}

/// The dots of `R` rows of `x` with every row of `ws` (a block of weight rows starting at
/// row `o`), written to columns `o..` of the `R` output rows (`out`, `n` wide each).
#[inline(always)]
fn write_dots<const R: usize>(
    x: [&[f32]; R],
    ws: &[f32],
    k: usize,
    o: usize,
    n: usize,
    out: &mut [f32],
) {
    let mut c = 0;
    let rows = ws.len() / k;
    while c + 4 <= rows {
        let w4 = std::array::from_fn(|j| &ws[(c + j) * k..(c + j + 1) * k]);
        let d = dots::<R, 4>(x, w4);
        for (r, d) in d.iter().enumerate() {
            out[r * n + o + c..][..4].copy_from_slice(d);
        }
        c += 4;
    }
    while c < rows {
        let d = dots::<R, 1>(x, [&ws[c * k..(c + 1) * k]]);
        for (r, d) in d.iter().enumerate() {
            out[r * n + o + c] = d[0];
        }
        c += 1;
    }
}

/// `[x_r · w_c]` for `R` rows of `x` and `C` rows of `w`, all of one length (a multiple of
/// 4): four lanes of partial sums per pair, added pairwise at the end. In wasm `simd128`
/// instructions, in the order of the portable loop below (the two give equal bits).
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
#[inline(always)]
fn dots<const R: usize, const C: usize>(x: [&[f32]; R], w: [&[f32]; C]) -> [[f32; C]; R] {
    use core::arch::wasm32::*;
    let len = x[0].len();
    assert!(
        len % 4 == 0 && x.iter().all(|r| r.len() == len) && w.iter().all(|r| r.len() == len),
        "dots: rows of unequal length"
    );
    let mut acc = [[f32x4_splat(0.0); C]; R];
    let mut q = 0;
    while q < len {
        // SAFETY: `q + 4 <= len` and every row holds `len` values (checked above); wasm loads
        // need no alignment.
        let xv: [v128; R] =
            std::array::from_fn(|r| unsafe { v128_load(x[r].as_ptr().add(q).cast()) });
        let wv: [v128; C] =
            std::array::from_fn(|c| unsafe { v128_load(w[c].as_ptr().add(q).cast()) });
        for r in 0..R {
            for c in 0..C {
                acc[r][c] = f32x4_add(acc[r][c], f32x4_mul(xv[r], wv[c]));
            }
        }
        q += 4;
    }
    std::array::from_fn(|r| {
        std::array::from_fn(|c| {
            let a = acc[r][c];
            (f32x4_extract_lane::<0>(a) + f32x4_extract_lane::<2>(a))
                + (f32x4_extract_lane::<1>(a) + f32x4_extract_lane::<3>(a))
        })
    })
}

/// The portable `dots` (natively, where the products take gemm, it runs in the tests; the
/// browser's page-equals-CLI tests run the one above).
#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
#[inline(always)]
fn dots<const R: usize, const C: usize>(x: [&[f32]; R], w: [&[f32]; C]) -> [[f32; C]; R] {
    let len = x[0].len();
    let xq: [&[[f32; 4]]; R] = std::array::from_fn(|r| x[r].as_chunks::<4>().0);
    let wq: [&[[f32; 4]]; C] = std::array::from_fn(|c| w[c].as_chunks::<4>().0);
    assert!(
        len % 4 == 0
            && xq.iter().all(|q| q.len() == len / 4)
            && wq.iter().all(|q| q.len() == len / 4),
        "dots: rows of unequal length"
    );
    let mut acc = [[[0f32; 4]; C]; R];
    for q in 0..len / 4 {
        let xv: [[f32; 4]; R] = std::array::from_fn(|r| xq[r][q]);
        let wv: [[f32; 4]; C] = std::array::from_fn(|c| wq[c][q]);
        for r in 0..R {
            for c in 0..C {
                for l in 0..4 {
                    acc[r][c][l] += xv[r][l] * wv[c][l];
                }
            }
        }
    }
    std::array::from_fn(|r| {
        std::array::from_fn(|c| {
            let a = acc[r][c];
            (a[0] + a[2]) + (a[1] + a[3])
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::QuantFormat;

    /// Every format, odd row counts (the one-row tail), weight rows not a multiple of the
    /// block or of 4; and the check catches one output off by 1e-3.
    #[test]
    fn many_rows_equal_the_dequantized_product() {
        let formats = [
            QuantFormat::Q4_1,
            QuantFormat::Q4_0,
            QuantFormat::Q8_0,
            QuantFormat::F16,
        ];
        for format in formats {
            for (m, n, k) in [(1, 4, 32), (37, 13, 64), (40, 8, 96), (5, 21, 32)] {
                let w: Vec<f32> = (0..n * k)
                    .map(|i| ((i * 37 % 101) as f32 - 50.0) / 64.0)
                    .collect();
                let x: Vec<f32> = (0..m * k)
                    .map(|i| ((i * 53 % 97) as f32 - 48.0) / 32.0)
                    .collect();
                let weight = crate::lora::cpu_quantized::TestWeight::new(format, &w, n, k);
                let mut y = matmul_many_rows(&x, m, &weight.exact, n, k);
                if let Some(e) = weight.mismatch(&x, m, &y) {
                    panic!("{format:?} m{m} n{n} k{k}: {e}");
                }
                let planted = (m * n) / 2;
                y[planted] += 1e-3 * (1.0 + y[planted].abs());
                assert!(
                    weight.mismatch(&x, m, &y).is_some(),
                    "{format:?} m{m} n{n} k{k}: a planted error went unseen"
                );
            }
        }
    }
}
