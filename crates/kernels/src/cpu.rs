//! Host-side pieces of our ops on Burn's CPU backend (Flex): a checked wrapper over the
//! `gemm` crate that Flex itself multiplies with, an `exp` the compiler can vectorize, and
//! the row loop over both threads. Flex's own element-wise ops run on one thread and give
//! every output a fresh allocation (copied once more to align it), which is most of a CPU
//! training step outside the matmuls; an op written here does its passes in place, once.

use burn::backend::flex::FlexTensor;
use burn::backend::{DType, TensorMetadata};
use burn::tensor::TensorData;

/// A strided `[rows, cols]` view of f32 values: element `(i, j)` is at
/// `offset + i·row_stride + j·col_stride`.
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a> {
    pub data: &'a [f32],
    pub offset: usize,
    pub rows: usize,
    pub cols: usize,
    pub row_stride: isize,
    pub col_stride: isize,
}

impl<'a> MatRef<'a> {
    /// A dense row-major matrix.
    pub fn rows(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self {
            data,
            offset: 0,
            rows,
            cols,
            row_stride: cols as isize,
            col_stride: 1,
        }
    }

    /// A 2-D f32 tensor of Burn's CPU backend as a view of its storage, through its strides
    /// (a transposed tensor is read as it is, not copied); `None` for other dtypes or ranks.
    pub fn of(t: &'a FlexTensor) -> Option<Self> {
        let (data, offset, [rows, cols], [row_stride, col_stride]) = strided(t)?;
        Some(Self {
            data,
            offset,
            rows,
            cols,
            row_stride,
            col_stride,
        })
    }

    /// Row `i` as a slice; only for a view whose rows are contiguous (`col_stride` 1).
    #[inline(always)]
    pub fn row(&self, i: usize) -> &'a [f32] {
        assert!(
            self.col_stride == 1 && i < self.rows,
            "row {i} of a strided view"
        );
        let at = (self.offset as isize + i as isize * self.row_stride) as usize;
        &self.data[at..at + self.cols]
    }

    /// The transpose, as a swap of strides.
    pub fn t(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }

    /// Rows `start..start + len`.
    pub fn row_range(self, start: usize, len: usize) -> Self {
        assert!(
            start + len <= self.rows,
            "rows {start}+{len} of {}",
            self.rows
        );
        Self {
            offset: (self.offset as isize + start as isize * self.row_stride) as usize,
            rows: len,
            ..self
        }
    }

    /// Whether every element lies inside `data` (strides may be negative only in theory:
    /// Burn's layouts here are never flipped, and such a view is refused).
    fn in_bounds(&self) -> bool {
        if self.rows == 0 || self.cols == 0 {
            return true;
        }
        if self.row_stride < 0 || self.col_stride < 0 {
            return false;
        }
        let last = self.offset
            + (self.rows - 1) * self.row_stride as usize
            + (self.cols - 1) * self.col_stride as usize;
        last < self.data.len()
    }
}

/// An f32 tensor of rank `N` of Burn's CPU backend as its storage, start offset, shape and
/// strides; `None` for other dtypes or ranks, or negative strides.
fn strided<const N: usize>(t: &FlexTensor) -> Option<(&[f32], usize, [usize; N], [isize; N])> {
    let shape = t.shape();
    let strides = t.layout().strides();
    if t.dtype() != DType::F32 || shape.num_dims() != N || strides.iter().any(|&s| s < 0) {
        return None;
    }
    Some((
        t.storage::<f32>(),
        t.layout().start_offset(),
        std::array::from_fn(|i| shape[i]),
        std::array::from_fn(|i| strides[i]),
    ))
}

/// A strided 4-D f32 tensor of Burn's CPU backend, read as `[rows, cols]` matrices over its
/// last two dimensions.
#[derive(Clone, Copy, Debug)]
pub struct View4<'a> {
    pub data: &'a [f32],
    pub offset: usize,
    pub dims: [usize; 4],
    pub strides: [isize; 4],
}

impl<'a> View4<'a> {
    /// `None` for other dtypes or ranks, or negative strides.
    pub fn of(t: &'a FlexTensor) -> Option<Self> {
        let (data, offset, dims, strides) = strided(t)?;
        Some(Self {
            data,
            offset,
            dims,
            strides,
        })
    }

    /// The matrix at `[i, j, .., ..]`.
    pub fn mat(&self, i: usize, j: usize) -> MatRef<'a> {
        assert!(
            i < self.dims[0] && j < self.dims[1],
            "[{i}, {j}] of {:?}",
            self.dims
        );
        MatRef {
            data: self.data,
            offset: (self.offset as isize
                + i as isize * self.strides[0]
                + j as isize * self.strides[1]) as usize,
            rows: self.dims[2],
            cols: self.dims[3],
            row_stride: self.strides[2],
            col_stride: self.strides[3],
        }
    }
}

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

/// `len` zeros, written on every thread: glibc's `calloc` of a block from the heap (the CLI
/// keeps large blocks there) is a `memset` on the calling thread.
pub fn zeros(len: usize) -> Vec<f32> {
    if len <= 1 << 16 {
        return vec![0.0; len];
    }
    let mut out = Vec::with_capacity(len);
    #[cfg(not(target_family = "wasm"))]
    {
        use rayon::prelude::*;
        out.spare_capacity_mut()
            .par_chunks_mut(1 << 16)
            .for_each(|c| c.fill(std::mem::MaybeUninit::new(0.0)));
    }
    #[cfg(target_family = "wasm")]
    out.spare_capacity_mut()
        .fill(std::mem::MaybeUninit::new(0.0));
    // SAFETY: every value up to `len` was just written.
    unsafe { out.set_len(len) };
    out
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

/// The instruction sets our loops are compiled for, in increasing width.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Isa {
    /// As the crate is built: SSE2 on x86-64, plain Rust elsewhere (the browser).
    Portable,
    /// AVX2 with FMA: 8 lanes.
    Avx2,
    /// AVX-512 (F and BW): 16 lanes.
    Avx512,
}

impl Isa {
    /// The widest this CPU runs.
    pub fn detected() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bw") {
                return Self::Avx512;
            }
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                return Self::Avx2;
            }
        }
        Self::Portable
    }

    /// What [`simd`] and the quantized product use: [`Isa::detected`], or `Portable` with
    /// `MENTALQLM_SIMD=0` (for comparisons). Found once.
    pub fn chosen() -> Self {
        static CHOSEN: std::sync::OnceLock<Isa> = std::sync::OnceLock::new();
        *CHOSEN.get_or_init(|| match std::env::var("MENTALQLM_SIMD").as_deref() {
            Ok("0") => Self::Portable,
            _ => Self::detected(),
        })
    }

    /// Whether this CPU runs it.
    pub fn available(self) -> bool {
        self <= Self::detected()
    }
}

/// Runs `f` compiled for the widest vector instructions this CPU has ([`Isa::chosen`]).
/// The crate is built for baseline x86-64, whose SSE2 holds four floats; gemm picks its own
/// kernels at run time, and our loops do the same through this. `f` is inlined into a
/// function compiled for those features, so it should hold the loop itself, not calls out
/// of the crate.
#[inline(always)]
pub fn simd<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    match Isa::chosen() {
        // SAFETY: the CPU has every feature `avx512` is compiled for.
        Isa::Avx512 => return unsafe { x86::avx512(f) },
        // SAFETY: as above, for `avx2`.
        Isa::Avx2 => return unsafe { x86::avx2(f) },
        Isa::Portable => {}
    }
    f()
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,f16c")]
    pub fn avx512<R>(f: impl FnOnce() -> R) -> R {
        f()
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub fn avx2<R>(f: impl FnOnce() -> R) -> R {
        f()
    }
}

/// Runs `f` on a thread of the pool that gemm and our row loops split their work over
/// (natively; in the browser it just runs `f`). Called from any other thread, each of those
/// parallel loops hands its work to the pool and sleeps until a worker has woken, done it
/// and woken it back: measured at 115 µs per call with one thread and 26 µs with two, against
/// 80 µs for a whole 576×1536 Q4_1 product of one row. From a worker the loop starts on its
/// own thread at once while the others steal. The CLI runs every command through this.
pub fn on_worker<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    #[cfg(not(target_family = "wasm"))]
    return rayon::scope(|_| f());
    #[cfg(target_family = "wasm")]
    f()
}

/// Threads the row loops split their work over.
pub fn threads() -> usize {
    #[cfg(not(target_family = "wasm"))]
    return rayon::current_num_threads();
    #[cfg(target_family = "wasm")]
    1
}

/// Flex's rule: products of at least 192³ multiply-adds use every thread.
fn parallelism(work: usize) -> gemm::Parallelism {
    #[cfg(not(target_family = "wasm"))]
    if work >= 192 * 192 * 192 {
        return gemm::Parallelism::Rayon(0);
    }
    let _ = work;
    gemm::Parallelism::None
}

/// `f(index, row)` over the `width`-long rows of `data`, in order of the rows: on every
/// thread natively, one after another in the browser; each call through [`simd`] (give the
/// closure `#[inline(always)]` so that its loops are compiled for the wider vectors).
pub fn map_rows<F>(data: &mut [f32], width: usize, f: F) -> Vec<f32>
where
    F: Fn(usize, &mut [f32]) -> f32 + Send + Sync,
{
    #[cfg(not(target_family = "wasm"))]
    {
        use rayon::prelude::*;
        data.par_chunks_mut(width)
            .enumerate()
            .map(|(i, row)| {
                simd(
                    #[inline(always)]
                    || f(i, row),
                )
            })
            .collect()
    }
    #[cfg(target_family = "wasm")]
    data.chunks_mut(width)
        .enumerate()
        .map(|(i, row)| {
            simd(
                #[inline(always)]
                || f(i, row),
            )
        })
        .collect()
}

/// Values up to which [`for_each_chunk`] stays on the calling thread: handing a task to the
/// pool costs microseconds, more than a pass over a decoding step's row.
#[cfg(not(target_family = "wasm"))]
const SERIAL: usize = 1 << 12;

/// `f(index, chunk)` over the `width`-long chunks of `data` (the last one may be shorter).
pub fn for_each_chunk<F>(data: &mut [f32], width: usize, f: F)
where
    F: Fn(usize, &mut [f32]) + Send + Sync,
{
    #[cfg(not(target_family = "wasm"))]
    let parallel = data.len() > width.max(SERIAL);
    #[cfg(target_family = "wasm")]
    let parallel = false;
    chunks(data, width, parallel, f)
}

/// [`for_each_chunk`] for tasks that each carry much work per value (a chunk of a matrix
/// product's rows, an attention head): on every thread whenever there are two chunks.
pub fn for_each_task<F>(data: &mut [f32], width: usize, f: F)
where
    F: Fn(usize, &mut [f32]) + Send + Sync,
{
    chunks(data, width, data.len() > width, f)
}

/// The chunk loop, over the pool when `parallel` (natively), each call through [`simd`].
fn chunks<F>(data: &mut [f32], width: usize, parallel: bool, f: F)
where
    F: Fn(usize, &mut [f32]) + Send + Sync,
{
    #[cfg(not(target_family = "wasm"))]
    if parallel {
        use rayon::prelude::*;
        data.par_chunks_mut(width).enumerate().for_each(|(i, c)| {
            simd(
                #[inline(always)]
                || f(i, c),
            )
        });
        return;
    }
    let _ = parallel;
    data.chunks_mut(width).enumerate().for_each(|(i, c)| {
        simd(
            #[inline(always)]
            || f(i, c),
        )
    });
}

/// Values per task of the element-wise loops.
pub const CHUNK: usize = 1 << 14;

/// `f(a[i], b[i])` for two slices of one length, on every thread in chunks of [`CHUNK`].
/// Give `f` `#[inline(always)]`, so that it is compiled into the vector loop.
#[inline(always)]
pub fn zip_map<F>(a: &[f32], b: &[f32], f: F) -> Vec<f32>
where
    F: Fn(f32, f32) -> f32 + Send + Sync,
{
    assert_eq!(a.len(), b.len(), "zip_map: inputs differ in length");
    let mut out = zeros(a.len());
    for_each_chunk(
        &mut out,
        CHUNK,
        #[inline(always)]
        |i, out| {
            let at = i * CHUNK..i * CHUNK + out.len();
            for ((o, &x), &y) in out.iter_mut().zip(&a[at.clone()]).zip(&b[at]) {
                *o = f(x, y);
            }
        },
    );
    out
}

/// [`for_each_chunk`] over two outputs of one length side by side.
pub fn for_each_chunk2<F>(a: &mut [f32], b: &mut [f32], width: usize, f: F)
where
    F: Fn(usize, &mut [f32], &mut [f32]) + Send + Sync,
{
    assert_eq!(
        a.len(),
        b.len(),
        "for_each_chunk2: outputs differ in length"
    );
    #[cfg(not(target_family = "wasm"))]
    {
        use rayon::prelude::*;
        a.par_chunks_mut(width)
            .zip(b.par_chunks_mut(width))
            .enumerate()
            .for_each(|(i, (x, y))| {
                simd(
                    #[inline(always)]
                    || f(i, x, y),
                )
            });
    }
    #[cfg(target_family = "wasm")]
    a.chunks_mut(width)
        .zip(b.chunks_mut(width))
        .enumerate()
        .for_each(|(i, (x, y))| {
            simd(
                #[inline(always)]
                || f(i, x, y),
            )
        });
}

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

/// The values of a Flex tensor as a dense row-major slice (copied only when the layout is
/// not already that), or `None` when it does not hold f32.
pub fn dense_f32(t: &FlexTensor) -> Option<std::borrow::Cow<'_, [f32]>> {
    if t.dtype() != DType::F32 {
        return None;
    }
    match t.as_slice::<f32>() {
        Some(s) => Some(std::borrow::Cow::Borrowed(s)),
        None => Some(std::borrow::Cow::Owned(
            t.to_contiguous().into_data().try_into_vec::<f32>().ok()?,
        )),
    }
}

/// Integer values of a Flex tensor (any signed or unsigned width) as `i64`.
pub fn ints(t: &FlexTensor) -> Option<Vec<i64>> {
    let t = t.to_contiguous();
    Some(match t.dtype() {
        DType::I64 => t.as_slice::<i64>()?.to_vec(),
        DType::I32 => t.as_slice::<i32>()?.iter().map(|&v| v as i64).collect(),
        DType::I16 => t.as_slice::<i16>()?.iter().map(|&v| v as i64).collect(),
        DType::U32 => t.as_slice::<u32>()?.iter().map(|&v| v as i64).collect(),
        DType::U64 => t.as_slice::<u64>()?.iter().map(|&v| v as i64).collect(),
        _ => return None,
    })
}

/// A Flex tensor owning `values` as `shape`, without the copy `FlexTensor::empty` makes.
pub fn tensor(values: Vec<f32>, shape: &[usize]) -> FlexTensor {
    debug_assert_eq!(values.len(), shape.iter().product::<usize>());
    FlexTensor::from_data(TensorData::new(values, shape.to_vec()))
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
