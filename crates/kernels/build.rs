//! `cfg(cube)`: Burn's CubeCL backends (wgpu) and our WGSL kernels are built. They are left
//! out of a browser module built with wasm threads (`atomics`), where wgpu's types are not
//! Send; Cargo.toml leaves out their dependencies on the same condition.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(cube)");
    let wasm =
        std::env::var("CARGO_CFG_TARGET_FAMILY").is_ok_and(|f| f.split(',').any(|f| f == "wasm"));
    let atomics = std::env::var("CARGO_CFG_TARGET_FEATURE")
        .is_ok_and(|f| f.split(',').any(|f| f == "atomics"));
    if !(wasm && atomics) {
        println!("cargo::rustc-cfg=cube");
    }
}
