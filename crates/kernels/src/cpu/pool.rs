//! The thread pool, the one place that knows whether there are threads: natively rayon's
//! global pool (the one Burn's CPU backend and gemm split their work over); in the browser
//! the same pool when the module is built with wasm threads (`atomics`: the page starts the
//! pool's Web Workers, web/threads.js), else one thread that runs every loop in order. Both
//! sides offer the same functions, so the loops in `par.rs` and the gemm wrapper carry no
//! `cfg` of their own.

pub use imp::*;

#[cfg(any(not(target_family = "wasm"), target_feature = "atomics"))]
mod imp {
    use rayon::prelude::*;
    use std::mem::MaybeUninit;

    /// What gemm is told for a product that should use every thread.
    pub const GEMM_ALL_THREADS: gemm::Parallelism = gemm::Parallelism::Rayon(0);

    pub fn on_worker<R: Send>(f: impl FnOnce() -> R + Send) -> R {
        rayon::scope(|_| f())
    }

    pub fn threads() -> usize {
        rayon::current_num_threads()
    }

    /// Zeros into every value of `out`, in blocks of 2¹⁶ over the pool.
    pub fn fill_zeros(out: &mut [MaybeUninit<f32>]) {
        out.par_chunks_mut(1 << 16)
            .for_each(|c| c.fill(MaybeUninit::new(0.0)));
    }

    /// `f(index, chunk)` over the `width`-long chunks of `data`, the results in order.
    pub fn map_chunks<F>(data: &mut [f32], width: usize, f: F) -> Vec<f32>
    where
        F: Fn(usize, &mut [f32]) -> f32 + Send + Sync,
    {
        data.par_chunks_mut(width)
            .enumerate()
            .map(|(i, c)| f(i, c))
            .collect()
    }

    /// `f(index, chunk)` over the `width`-long chunks of `data`.
    pub fn for_each_chunk<F>(data: &mut [f32], width: usize, f: F)
    where
        F: Fn(usize, &mut [f32]) + Send + Sync,
    {
        data.par_chunks_mut(width)
            .enumerate()
            .for_each(|(i, c)| f(i, c));
    }

    /// `f(index, chunk of a, chunk of b)` over the `width`-long chunks of both.
    pub fn for_each_chunk2<F>(a: &mut [f32], b: &mut [f32], width: usize, f: F)
    where
        F: Fn(usize, &mut [f32], &mut [f32]) + Send + Sync,
    {
        a.par_chunks_mut(width)
            .zip(b.par_chunks_mut(width))
            .enumerate()
            .for_each(|(i, (x, y))| f(i, x, y));
    }
}

/// The browser without wasm threads: no shared memory (gemm is built without rayon there), so
/// each function below is the native one run in order on the calling thread.
#[cfg(all(target_family = "wasm", not(target_feature = "atomics")))]
mod imp {
    use std::mem::MaybeUninit;

    pub const GEMM_ALL_THREADS: gemm::Parallelism = gemm::Parallelism::None;

    pub fn on_worker<R: Send>(f: impl FnOnce() -> R + Send) -> R {
        f()
    }

    pub fn threads() -> usize {
        1
    }

    pub fn fill_zeros(out: &mut [MaybeUninit<f32>]) {
        out.fill(MaybeUninit::new(0.0));
    }

    pub fn map_chunks<F>(data: &mut [f32], width: usize, f: F) -> Vec<f32>
    where
        F: Fn(usize, &mut [f32]) -> f32 + Send + Sync,
    {
        data.chunks_mut(width)
            .enumerate()
            .map(|(i, c)| f(i, c))
            .collect()
    }

    pub fn for_each_chunk<F>(data: &mut [f32], width: usize, f: F)
    where
        F: Fn(usize, &mut [f32]) + Send + Sync,
    {
        data.chunks_mut(width)
            .enumerate()
            .for_each(|(i, c)| f(i, c));
    }

    pub fn for_each_chunk2<F>(a: &mut [f32], b: &mut [f32], width: usize, f: F)
    where
        F: Fn(usize, &mut [f32], &mut [f32]) + Send + Sync,
    {
        a.chunks_mut(width)
            .zip(b.chunks_mut(width))
            .enumerate()
            .for_each(|(i, (x, y))| f(i, x, y));
    }
}
