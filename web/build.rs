//! `cfg(threads)`: the browser module built with wasm threads (`atomics`, web/build.sh's
//! pkg-threads). It runs the CPU backend on a pool of workers and has no WebGPU: the kernels
//! crate leaves Burn's wgpu backend out of it on the same condition (its `cfg(cube)`).

fn main() {
    println!("cargo::rustc-check-cfg=cfg(threads)");
    let wasm =
        std::env::var("CARGO_CFG_TARGET_FAMILY").is_ok_and(|f| f.split(',').any(|f| f == "wasm"));
    let atomics = std::env::var("CARGO_CFG_TARGET_FEATURE")
        .is_ok_and(|f| f.split(',').any(|f| f == "atomics"));
    if wasm && atomics {
        println!("cargo::rustc-cfg=threads");
    }
}
