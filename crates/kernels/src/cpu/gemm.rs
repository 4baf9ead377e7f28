//! A checked wrapper over the `gemm` crate, the matmul Burn's CPU backend (Flex) multiplies
//! with: strided [`MatRef`] operands, bounds checked once, on every thread for large products.

use super::pool;
use super::{MatRef, zeros};

/// `dst = beta·dst + alpha·lhs·rhs` for a dense row-major `dst [m, n]` (`beta` 0 ignores
/// what `dst` held), through gemm, on every thread when the product is large enough.
pub fn gemm(dst: &mut [f32], beta: f32, lhs: MatRef<'_>, rhs: MatRef<'_>, alpha: f32) {
    gemm_on(
        dst,
        beta,
        lhs,
        rhs,
        alpha,
        parallelism(lhs.rows * lhs.cols * rhs.cols),
    )
}

/// `alpha·lhs·rhs` as a new dense row-major `[m, n]`, written by gemm without zeroing
/// the memory first.
pub fn gemm_new(lhs: MatRef<'_>, rhs: MatRef<'_>, alpha: f32) -> Vec<f32> {
    let (m, n) = (lhs.rows, rhs.cols);
    if lhs.cols == 0 {
        return zeros(m * n);
    }
    let mut out = Vec::with_capacity(m * n);
    let dst = out.spare_capacity_mut();
    // SAFETY: with `beta` 0 gemm never reads the destination and writes each of its `m·n`
    // values (k ≥ 1 here), so after the call they are all initialized. `MaybeUninit<f32>`
    // has the layout of `f32`.
    unsafe {
        let dst = std::slice::from_raw_parts_mut(dst.as_mut_ptr().cast::<f32>(), m * n);
        gemm_on(dst, 0.0, lhs, rhs, alpha, parallelism(m * lhs.cols * n));
        out.set_len(m * n);
    }
    out
}

/// [`gemm`] on the calling thread alone: for products inside a task of a row loop.
pub fn gemm_serial(dst: &mut [f32], beta: f32, lhs: MatRef<'_>, rhs: MatRef<'_>, alpha: f32) {
    gemm_on(dst, beta, lhs, rhs, alpha, gemm::Parallelism::None)
}

fn gemm_on(
    dst: &mut [f32],
    beta: f32,
    lhs: MatRef<'_>,
    rhs: MatRef<'_>,
    alpha: f32,
    parallelism: gemm::Parallelism,
) {
    let (m, k, n) = (lhs.rows, lhs.cols, rhs.cols);
    assert_eq!(rhs.rows, k, "gemm: inner dimensions {k} and {}", rhs.rows);
    assert_eq!(
        dst.len(),
        m * n,
        "gemm: output of {} values for [{m}, {n}]",
        dst.len()
    );
    assert!(
        lhs.in_bounds() && rhs.in_bounds(),
        "gemm: operand view out of bounds"
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        dst.iter_mut().for_each(|v| *v *= beta);
        return;
    }
    // SAFETY: the output is exactly `m·n` values, row-major, and both operand views were
    // checked to lie inside their slices; gemm reads the operands and writes `dst` only.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            beta != 0.0,
            lhs.data.as_ptr().add(lhs.offset),
            lhs.col_stride,
            lhs.row_stride,
            rhs.data.as_ptr().add(rhs.offset),
            rhs.col_stride,
            rhs.row_stride,
            beta,
            alpha,
            false,
            false,
            false,
            parallelism,
        )
    }
}

/// Flex's rule: products of at least 192³ multiply-adds use every thread.
fn parallelism(work: usize) -> gemm::Parallelism {
    if work >= 192 * 192 * 192 {
        return pool::GEMM_ALL_THREADS;
    }
    gemm::Parallelism::None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gemm_reads_strided_views() {
        // lhs [2, 3], rhs given as its transpose [2, 3] read through strides.
        let lhs = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let rhs_t = [1.0, 0.0, -1.0, 2.0, 1.0, 0.0];
        let mut out = vec![1.0; 4];
        gemm(
            &mut out,
            1.0,
            MatRef::rows(&lhs, 2, 3),
            MatRef::rows(&rhs_t, 2, 3).t(),
            2.0,
        );
        // lhs·rhs = [[-2, 4], [-2, 13]]; out = 1 + 2·that.
        assert_eq!(out, vec![-3.0, 9.0, -3.0, 27.0]);
    }
}
