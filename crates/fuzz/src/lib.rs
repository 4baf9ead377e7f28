//! A mutation fuzzer for every file format mentalqlm reads, on stable Rust.
//!
//! `mentalqlm-fuzz run --target gguf --cases 100000` mutates committed fixtures (bit flips,
//! truncation, extreme length and offset fields, duplicated, swapped and deleted spans)
//! and feeds them to the same readers the CLI and the browser use. Worker processes run
//! the cases; the supervisor records every panic, hang (per-case time limit), over-sized
//! allocation and error message that names no file, and saves each such input for
//! `mentalqlm-fuzz replay`.

pub mod alloc;
pub mod case;
pub mod gguf_seed;
pub mod mutate;
pub mod supervise;
pub mod targets;
pub mod worker;
