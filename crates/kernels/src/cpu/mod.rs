//! Host-side pieces of our ops on Burn's CPU backend (Flex): a checked wrapper over the
//! `gemm` crate that Flex itself multiplies with, an `exp` the compiler can vectorize, and
//! the row loop over both threads. Flex's own element-wise ops run on one thread and give
//! every output a fresh allocation (copied once more to align it), which is most of a CPU
//! training step outside the matmuls; an op written here does its passes in place, once.
//!
//! - `view.rs`: Flex tensors as strided f32 views ([`MatRef`], [`View4`]) and back.
//! - `gemm.rs`: the gemm wrapper.
//! - `many_rows.rs`: the browser's product over a prompt's rows with an f32 weight, which V8
//!   runs faster than gemm's `simd128` kernel.
//! - `isa.rs`: the vector instructions this CPU runs ([`Isa`]) and [`simd`].
//! - `par.rs`: the row and chunk loops over the threads.
//! - `pool.rs`: the threads themselves: rayon natively, one thread in the browser (the only
//!   `cfg(target_family = "wasm")` here, with `many_rows`' wasm loop).
//! - `math.rs`: `exp`, reductions, softmax and dot products that vectorize.
//!
//! Everything public is re-exported here, so callers name it `cpu::<item>`.

mod gemm;
mod isa;
mod many_rows;
mod math;
mod par;
mod pool;
mod view;

pub use self::gemm::{gemm, gemm_new, gemm_serial};
pub use isa::{Isa, simd};
pub use many_rows::matmul_many_rows;
pub use math::{
    LANES, add_rows, dot, exp, exp_shifted_in_place, max, softmax_in_place, sum_exp_shifted,
};
pub use par::{
    CHUNK, for_each_chunk, for_each_chunk2, for_each_task, map_rows, on_worker, threads, zeros,
    zip_map,
};
pub use view::{MatRef, View4, dense_f32, ints, tensor};
