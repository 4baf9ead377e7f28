// The gradients of both LoRA factors in one launch (crates/kernels/src/lora/factors.rs):
//
//   dA = s·Uᵀ·X  [r, k]   (U = g·B, the input gradient's by-product)
//   dB = s·Gᵀ·T  [n, r]   (T = x·Aᵀ, the forward's)
//
// Both are sums over the m rows of a column of P (X [m, k] or G [m, n]) times a row of Q
// (U or T, [m, r]): out(c, j) = s·Σ_i P[i, c]·Q[i, j]. As two products of CubeCL's they are
// two launches, each an output with a side of length r; on a GPU where launches are the
// cost (the 896×896 products of a 0.5B model at 512 tokens on an H200) one is worth more.
//
// Workgroups 0 .. ceil(k / CW) - 1 take CW columns of X each (dA's columns, stored [r, k]),
// the rest CW columns of G (dB's rows, stored [n, r]). In a workgroup, thread (part, c) sums
// the rows i ≡ part (mod PARTS) of column c for every j < r (RP/4 vec4s of registers), so
// neighbouring threads read neighbouring values of P's rows and share Q's; then the PARTS
// partial sums are added in workgroup memory, halving.
//
// Every storage binding is read_write: Burn may place small tensors in one shared buffer.

@group(0) @binding(0) var<storage, read_write> x: array<f32>;   // X [m, k]
@group(0) @binding(1) var<storage, read_write> u: array<f32>;   // U [m, r]
@group(0) @binding(2) var<storage, read_write> g: array<f32>;   // G [m, n]
@group(0) @binding(3) var<storage, read_write> t: array<f32>;   // T [m, r]
@group(0) @binding(4) var<storage, read_write> da: array<f32>;  // dA [r, k]
@group(0) @binding(5) var<storage, read_write> db: array<f32>;  // dB [n, r]
// The parameters, in CubeCL's per-launch uniform (crates/kernels/src/shaders.rs,
// params_block): [m, k, n, r, bits(s)]
@group(0) @binding(6) var<uniform> params: Params;

{{ params }}

const CW: u32 = 16u;     // columns per workgroup
const PARTS: u32 = 16u;  // threads per column, each summing every PARTS-th row
const RP: u32 = {{ rp }}u;  // r rounded up to 4
const RQ: u32 = RP / 4u;    // vec4s of a row of Q

// Half the parts' sums at a time: [PARTS / 2, CW, RQ].
var<workgroup> partial: array<vec4<f32>, (PARTS / 2u) * CW * RQ>;

// Four consecutive values of row i of Q (U or T) from column j, zero past r.
fn q4(from_u: bool, i: u32, j: u32, r: u32) -> vec4<f32> {
    var v = vec4<f32>(0.0);
    for (var e = 0u; e < 4u; e++) {
        if (j + e < r) {
            if (from_u) {
                v[e] = u[i * r + j + e];
            } else {
                v[e] = t[i * r + j + e];
            }
        }
    }
    return v;
}

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let m = param(0u);
    let k = param(1u);
    let n = param(2u);
    let r = param(3u);
    let s = bitcast<f32>(param(4u));
    let lane = lid.x % CW;
    let part = lid.x / CW;
    // dA's workgroups first, then dB's.
    let blocks_a = (k + CW - 1u) / CW;
    let is_a = wg.x < blocks_a;
    var width = k;
    var c = wg.x * CW + lane;
    if (!is_a) {
        width = n;
        c = (wg.x - blocks_a) * CW + lane;
    }

    var acc: array<vec4<f32>, RQ>;
    for (var q = 0u; q < RQ; q++) {
        acc[q] = vec4<f32>(0.0);
    }
    if (c < width) {
        for (var i = part; i < m; i += PARTS) {
            var p: f32;
            if (is_a) {
                p = x[i * k + c];
            } else {
                p = g[i * n + c];
            }
            for (var q = 0u; q < RQ; q++) {
                acc[q] += p * q4(is_a, i, 4u * q, r);
            }
        }
    }

    // The parts' sums added by halving: parts [h, 2h) leave theirs, parts below h add them.
    for (var h = PARTS / 2u; h > 0u; h /= 2u) {
        if (part >= h && part < 2u * h) {
            for (var q = 0u; q < RQ; q++) {
                partial[((part - h) * CW + lane) * RQ + q] = acc[q];
            }
        }
        workgroupBarrier();
        if (part < h) {
            for (var q = 0u; q < RQ; q++) {
                acc[q] += partial[(part * CW + lane) * RQ + q];
            }
        }
        workgroupBarrier();
    }

    if (part == 0u && c < width) {
        for (var j = 0u; j < r; j++) {
            let v = s * acc[j / 4u][j % 4u];
            if (is_a) {
                da[j * k + c] = v;
            } else {
                db[c * r + j] = v;
            }
        }
    }
}
