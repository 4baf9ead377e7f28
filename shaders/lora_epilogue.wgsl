// The LoRA terms added to a product CubeCL's matmul (or, split over k, the tiled
// shaders/lora_matmul.wgsl) has computed, in place:
//
//   y = s_main·Y + bias + s_low·T·Fᵀ
//
// where Y is the product, or the sum of its S partial products over slices of k (a split
// product, for long k over few outputs: S planes [m, n] one after the other, the result
// written over the first).
//
// for Y [m, n] = X·Wᵀ (the forward, T = x·Aᵀ and F = B) or g·W (the input gradient, T = g·B
// and F = Aᵀ read through its strides). For tens of rows and more a matmul autotuned for
// the GPU is faster than shaders/lora_matmul.wgsl's one tile schedule (on an H200 it took
// 1.06–1.6× CubeCL's time at 512 tokens); this pass then reads and writes Y once and never
// forms the [m, n] low-rank product, nor W + s·B·A.
//
// One workgroup of 256 threads computes a 16×64 tile of y, each thread one row and four
// columns 16 apart (so neighbouring threads read and write neighbouring addresses): a row
// of T is read once for four outputs. No barriers: with r in the tens, T's and F's rows are
// read from the caches (staging them in workgroup memory cost llvmpipe a third more time
// than the whole product, its barriers being switches between coroutines).
//
// Every storage binding is read_write: Burn may place small tensors in one shared buffer.

@group(0) @binding(0) var<storage, read_write> y: array<f32>;    // [S, m, n], plane 0 written
@group(0) @binding(1) var<storage, read_write> t: array<f32>;    // T [m, r]
@group(0) @binding(2) var<storage, read_write> f: array<f32>;    // F (n, r) via strides
@group(0) @binding(3) var<storage, read_write> bias: array<f32>; // [n]
// The parameters, in CubeCL's per-launch uniform (a uniform, so the one-pass kernels bind
// WebGPU's guaranteed 8 storage buffers); `Params` and `param(i)` are filled in from Rust
// (crates/kernels/src/shaders.rs, params_block):
// [m, n, r, bits(s_main), bits(s_low), F row stride, F rank stride, has bias, S]
@group(0) @binding(4) var<uniform> params: Params;

{{ params }}

const TM: u32 = 16u; // rows of a tile, one per thread row
const WN: u32 = 16u; // threads along n
const CN: u32 = 4u;  // columns per thread, WN apart

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let m = param(0u);
    let n = param(1u);
    let r = param(2u);
    let s_main = bitcast<f32>(param(3u));
    let s_low = bitcast<f32>(param(4u));
    let f_row = param(5u);
    let f_rank = param(6u);
    let has_bias = param(7u) != 0u;
    let splits = param(8u);
    let row = wg.y * TM + lid.x / WN;
    let col0 = wg.x * WN * CN + lid.x % WN;
    if (row >= m) {
        return;
    }

    var low = vec4<f32>(0.0);
    var cols = vec4<u32>(0u);
    for (var c = 0u; c < CN; c++) {
        // Columns past n read F's row n - 1 and are not written.
        cols[c] = min(col0 + c * WN, n - 1u);
    }
    for (var p = 0u; p < r; p++) {
        let tv = t[row * r + p];
        let fv = vec4<f32>(
            f[cols[0] * f_row + p * f_rank],
            f[cols[1] * f_row + p * f_rank],
            f[cols[2] * f_row + p * f_rank],
            f[cols[3] * f_row + p * f_rank],
        );
        low += tv * fv;
    }
    for (var c = 0u; c < CN; c++) {
        let col = col0 + c * WN;
        if (col < n) {
            let at = row * n + col;
            var sum = y[at];
            for (var p = 1u; p < splits; p++) {
                sum += y[p * m * n + at];
            }
            var v = s_main * sum + s_low * low[c];
            if (has_bias) {
                v += bias[col];
            }
            y[at] = v;
        }
    }
}
