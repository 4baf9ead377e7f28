//! The loops that split our work over threads: rows and chunks of a slice, each call
//! compiled for the chosen vector instructions through [`simd`]. Which threads there are is
//! [`pool`](super::pool)'s business; this file holds the rules for when to split.

use super::pool;
use super::{Isa, simd};

/// Runs `f` on a thread of the pool that gemm and our row loops split their work over
/// (natively; in the browser it just runs `f`). Called from any other thread, each of those
/// parallel loops hands its work to the pool and sleeps until a worker has woken, done it
/// and woken it back: measured at 115 µs per call with one thread and 26 µs with two, against
/// 80 µs for a whole 576×1536 Q4_1 product of one row. From a worker the loop starts on its
/// own thread at once while the others steal. The CLI runs every command through this.
pub fn on_worker<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    pool::on_worker(f)
}

/// Threads the row loops split their work over.
#[inline]
pub fn threads() -> usize {
    pool::threads()
}

/// `len` zeros, written on every thread: glibc's `calloc` of a block from the heap (the CLI
/// keeps large blocks there) is a `memset` on the calling thread.
pub fn zeros(len: usize) -> Vec<f32> {
    if len <= 1 << 16 {
        return vec![0.0; len];
    }
    let mut out = Vec::with_capacity(len);
    pool::fill_zeros(out.spare_capacity_mut());
    // SAFETY: every value up to `len` was just written.
    unsafe { out.set_len(len) };
    out
}

/// `f(index, row)` over the `width`-long rows of `data`, in order of the rows: on every
/// thread natively, one after another in the browser; each call through [`simd`] (give the
/// closure `#[inline(always)]` so that its loops are compiled for the wider vectors).
pub fn map_rows<F>(data: &mut [f32], width: usize, f: F) -> Vec<f32>
where
    F: Fn(usize, &mut [f32]) -> f32 + Send + Sync,
{
    let isa = Isa::chosen();
    pool::map_chunks(data, width, |i, row| {
        simd(
            isa,
            #[inline(always)]
            || f(i, row),
        )
    })
}

/// Values up to which [`for_each_chunk`] stays on the calling thread: handing a task to the
/// pool costs microseconds, more than a pass over a decoding step's row.
const SERIAL: usize = 1 << 12;

/// `f(index, chunk)` over the `width`-long chunks of `data` (the last one may be shorter).
pub fn for_each_chunk<F>(data: &mut [f32], width: usize, f: F)
where
    F: Fn(usize, &mut [f32]) + Send + Sync,
{
    chunks(data, width, data.len() > width.max(SERIAL), f)
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
    let isa = Isa::chosen();
    if parallel {
        pool::for_each_chunk(data, width, |i, c| {
            simd(
                isa,
                #[inline(always)]
                || f(i, c),
            )
        });
        return;
    }
    data.chunks_mut(width).enumerate().for_each(|(i, c)| {
        simd(
            isa,
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
    let isa = Isa::chosen();
    assert_eq!(
        a.len(),
        b.len(),
        "for_each_chunk2: outputs differ in length"
    );
    pool::for_each_chunk2(a, b, width, |i, x, y| {
        simd(
            isa,
            #[inline(always)]
            || f(i, x, y),
        )
    });
}
