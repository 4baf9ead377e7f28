// The LoRA terms added to a product CubeCL's matmul has computed, in place:
//
//   y = s_main·Y + bias + s_low·T·Fᵀ
//
// for Y [m, n] = X·Wᵀ (the forward, T = x·Aᵀ and F = B) or g·W (the input gradient, T = g·B
// and F = Aᵀ read through its strides). For tens of rows and more a matmul autotuned for
// the GPU is faster than shaders/lora_matmul.wgsl's one tile schedule (on an H200 it took
// 1.06–1.6× CubeCL's time at 512 tokens); this pass then reads and writes Y once and never
// forms the [m, n] low-rank product, nor W + s·B·A.
//
// One workgroup of TS×TS threads computes a TS×TS tile of y, one value per thread; the
// tile's rows of T and columns of F go through workgroup memory RC ranks at a time, so
// each value of T and F is read from global memory once per tile, not once per output.
//
// Every binding is read_write: Burn may place small tensors in one shared buffer.

@group(0) @binding(0) var<storage, read_write> y: array<f32>;    // [m, n], read and written
@group(0) @binding(1) var<storage, read_write> t: array<f32>;    // T [m, r]
@group(0) @binding(2) var<storage, read_write> f: array<f32>;    // F (n, r) via strides
@group(0) @binding(3) var<storage, read_write> bias: array<f32>; // [n]
// [m, n, r, bits(s_main), bits(s_low), F row stride, F rank stride, has bias]
@group(0) @binding(4) var<storage, read_write> params: array<u32>;

const TS: u32 = 16u; // rows and columns of a tile
const RC: u32 = 16u; // ranks staged at a time: TS·RC = one value per thread
const RCP: u32 = RC + 1u;

var<workgroup> ts: array<f32, TS * RCP>; // [TS rows, RC ranks], padded
var<workgroup> fs: array<f32, TS * RCP>; // [TS columns, RC ranks], padded
// r as a workgroup-uniform value: a browser's compiler (Tint) refuses a barrier in a loop
// bounded by a value read from a read_write buffer, which it cannot prove uniform.
var<workgroup> uniform_r: u32;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let m = params[0];
    let n = params[1];
    let s_main = bitcast<f32>(params[3]);
    let s_low = bitcast<f32>(params[4]);
    let f_row = params[5];
    let f_rank = params[6];
    let has_bias = params[7] != 0u;
    let tid = lid.x;
    let ty = tid / TS;
    let tx = tid % TS;
    let row0 = wg.y * TS;
    let col0 = wg.x * TS;
    if (tid == 0u) {
        uniform_r = params[2];
    }
    let r = workgroupUniformLoad(&uniform_r);

    var low = 0.0;
    for (var p0 = 0u; p0 < r; p0 += RC) {
        // Thread (a, b) stages rank p0 + b of T's row a and of F's row (y's column) a.
        let a = tid / RC;
        let b = tid % RC;
        var tv = 0.0;
        var fv = 0.0;
        if (p0 + b < r) {
            if (row0 + a < m) {
                tv = t[(row0 + a) * r + p0 + b];
            }
            if (col0 + a < n) {
                fv = f[(col0 + a) * f_row + (p0 + b) * f_rank];
            }
        }
        ts[a * RCP + b] = tv;
        fs[a * RCP + b] = fv;
        workgroupBarrier();
        for (var p = 0u; p < RC; p++) {
            low += ts[ty * RCP + p] * fs[tx * RCP + p];
        }
        workgroupBarrier();
    }

    let row = row0 + ty;
    let col = col0 + tx;
    if (row < m && col < n) {
        let at = row * n + col;
        var v = s_main * y[at] + s_low * low;
        if (has_bias) {
            v += bias[col];
        }
        y[at] = v;
    }
}
