//! The LoRA linear on Burn's wgpu backend, the products over the base weight through our
//! WGSL kernels (`launch`, which picks `lora_rows.wgsl` for up to 8 rows or 64 over codes,
//! `lora_matmul.wgsl` for more rows over codes, CubeCL's matmul and `lora_epilogue.wgsl`
//! for more rows over an f32 base): `forward` over an f32 or quantized base, `backward`
//! the input gradient, and the op's gradients under autodiff, `factors` both factor
//! gradients in one launch. Other CubeCL runtimes, and dtypes other than f32, take the
//! reference in Burn ops.

// `cfg(cube)` (build.rs): everything but the CPU paths and the op under autodiff needs
// Burn's wgpu backend, which a browser module built with wasm threads leaves out.
#[cfg(cube)]
mod args;
pub mod backward;
pub(crate) mod cpu;
pub mod cpu_quantized;
#[cfg(cube)]
mod cube;
#[cfg(cube)]
mod factors;
#[cfg(cube)]
pub mod forward;
#[cfg(cube)]
mod launch;
#[cfg(cube)]
mod operands;
#[cfg(cube)]
mod passes;
#[cfg(cube)]
pub mod tune;
