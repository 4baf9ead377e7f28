// The product of shaders/lora_matmul.wgsl for few rows (decoding a token per sequence), in
// blocks of up to 8 rows:
//
//   out = s_main·(X·Wᵀ) + bias + s_low·T·Fᵀ
//
// with the same bindings and parameters. Few rows make the product a matrix-vector one,
// bound by reading W once: the tiled kernel gave it n/128 workgroups that each walked all
// of k alone (on an H200 its time followed k, 2.3 ms where CubeCL's matmul took 0.08).
// Here one workgroup of COLS×LANES threads computes COLS columns of out for every row: the
// LANES threads of a column split k between them (lane l takes k = l, l + LANES, …, so one
// load by neighbouring lanes reads neighbouring words of W's row), then leave their partial
// results in workgroup memory for the lane that writes the row to add up. That is n/COLS
// workgroups, each walking k/LANES steps; a column's 32 lanes are one warp on NVIDIA GPUs,
// each of their loads one 128-byte line of W. More rows than ROWS (tens of rows over a
// quantized base) take one block of ROWS rows per workgroup row (workgroup_id.y), each
// reading W again from the caches; rows past m read row m - 1 and are not written.
//
// W is f32 through strides (BITS = 32), or 32-value blocks of codes (GGUF's Q8_0, Q4_0,
// Q4_1, repacked row-major by crates/kernels/src/quant.rs; k a whole number of blocks)
// decoded as they are read: 8-bit codes are signed, w = q·d; 4-bit codes are unsigned,
// w = q·d + min. The low-rank term and the bias are added by the lane that writes a row.
//
// T computed here (RP, r rounded up to 4, not 0; as in lora_matmul.wgsl): while the lanes
// walk k, column c's lanes also sum ranks c, c + COLS, … of T = X·Aᵀ for the block's rows
// (A (r, k) through strides in the binding the weight leaves free: scales for f32, mins
// for 8-bit codes), one more round of the same reduction per COLS ranks; the workgroups of
// the first column block write T out. One launch where `x·Aᵀ` took another before it.
//
// Every storage binding is read_write: Burn may place small tensors in one shared buffer.

@group(0) @binding(0) var<storage, read_write> x: array<f32>;      // X (m, k) via strides
@group(0) @binding(1) var<storage, read_write> wq: array<u32>;     // W (n, k) via strides, or codes [n, k / CODES]
@group(0) @binding(2) var<storage, read_write> scales: array<f32>; // [n, k / 32], or A (r, k) (f32, RP > 0)
@group(0) @binding(3) var<storage, read_write> mins: array<f32>;   // [n, k / 32] (4-bit), or A (8-bit, RP > 0)
@group(0) @binding(4) var<storage, read_write> t: array<f32>;      // T [m, r]: read, or written where RP > 0
@group(0) @binding(5) var<storage, read_write> f: array<f32>;      // F (n, r) via strides
@group(0) @binding(6) var<storage, read_write> bias: array<f32>;   // [n]
@group(0) @binding(7) var<storage, read_write> out: array<f32>;    // [m, n]
// The parameters, in CubeCL's per-launch uniform (a uniform, so the one-pass kernels bind
// WebGPU's guaranteed 8 storage buffers); `Params` and `param(i)` are filled in from Rust
// (crates/kernels/src/shaders.rs, params_block):
// [m, n, k, r, bits(s_main), bits(s_low), X row stride, X k stride, W row stride,
//  W k stride, F row stride, F rank stride, has bias, (unused), A row stride, A k stride]
@group(0) @binding(8) var<uniform> params: Params;

{{ params }}

const ROWS: u32 = {{ rows }}u;  // rows per block, 1 to 8: one pipeline per count
const BITS: u32 = {{ bits }}u;  // 32 (f32), 8 or 4
const CODES: u32 = 32u / BITS;  // values per word
const COLS: u32 = 8u;           // columns of out per workgroup
const LANES: u32 = 32u;         // threads sharing one column's k
const RP: u32 = {{ rp }}u;      // T's columns computed here (r rounded up to 4), 0: T given
const RPC: u32 = {{ rp_rounds }}u;  // ranks of T per column (RP / COLS rounded up), at least 1

var<workgroup> partial: array<f32, COLS * ROWS * LANES>; // [COLS, ROWS, LANES]
var<workgroup> ts: array<f32, ROWS * RPC * COLS>;        // [ROWS, RPC·COLS]: the block's T

// Value e of a word of W: the word itself for f32, else code e scaled by its block's d.
fn code(word: u32, e: u32) -> f32 {
    if (BITS == 32u) {
        return bitcast<f32>(word);
    }
    if (BITS == 8u) {
        // Move the byte to the top, then shift back arithmetically to sign-extend it.
        return f32(bitcast<i32>(word << (24u - 8u * e)) >> 24u);
    }
    return f32((word >> (4u * e)) & 15u);
}

@compute @workgroup_size(COLS * LANES, 1, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let m = param(0u);
    let n = param(1u);
    let k = param(2u);
    let r = param(3u);
    let s_main = bitcast<f32>(param(4u));
    let s_low = bitcast<f32>(param(5u));
    let x_row = param(6u);
    let x_k = param(7u);
    let w_row = param(8u);
    let w_k = param(9u);
    let f_row = param(10u);
    let f_rank = param(11u);
    let has_bias = param(12u) != 0u;
    let c = lid.x / LANES;
    let lane = lid.x % LANES;
    let j = wg.x * COLS + c;
    let row0 = wg.y * ROWS;
    // Where row i of the block reads X; rows past m repeat the last row.
    var x_at: array<u32, ROWS>;
    for (var i = 0u; i < ROWS; i++) {
        x_at[i] = min(row0 + i, m - 1u) * x_row;
    }

    var acc: array<f32, ROWS>;
    // T's ranks c + q·COLS of the block's rows (RP > 0).
    var tacc: array<array<f32, ROWS>, RPC>;
    if (RP > 0u) {
        let a_row = param(14u);
        let a_k = param(15u);
        for (var q = 0u; q < RPC; q++) {
            let p = c + q * COLS;
            if (p < r) {
                for (var kk = lane; kk < k; kk += LANES) {
                    var a = 0.0;
                    if (BITS == 8u) {
                        a = mins[p * a_row + kk * a_k];
                    } else {
                        a = scales[p * a_row + kk * a_k];
                    }
                    for (var i = 0u; i < ROWS; i++) {
                        tacc[q][i] += x[x_at[i] + kk * x_k] * a;
                    }
                }
            }
        }
    }
    if (j < n) {
        // f32: one value per word, read through the strides. Codes: CODES values per word,
        // the word's block scale (and minimum) read with it.
        var words = k;
        var row_start = j * w_row;
        var step = w_k;
        if (BITS != 32u) {
            words = k / CODES;
            row_start = j * words;
            step = 1u;
        }
        for (var wi = lane; wi < words; wi += LANES) {
            let word = wq[row_start + wi * step];
            var d = 1.0;
            var low = 0.0;
            if (BITS != 32u) {
                let block = j * (k / 32u) + (wi * CODES) / 32u;
                d = scales[block];
                if (BITS == 4u) {
                    low = mins[block];
                }
            }
            for (var e = 0u; e < CODES; e++) {
                let w = code(word, e) * d + low;
                let col = (wi * CODES + e) * x_k;
                for (var i = 0u; i < ROWS; i++) {
                    acc[i] += x[x_at[i] + col] * w;
                }
            }
        }
    }

    // The LANES partial sums of each (column, row), added up by the lane that writes that
    // row: one barrier, where halving them would take log2(LANES) (each a switch between
    // coroutines on a CPU's Vulkan, for at most 8 rows' 64 values of workgroup memory).
    for (var i = 0u; i < ROWS; i++) {
        partial[(c * ROWS + i) * LANES + lane] = acc[i];
    }
    workgroupBarrier();
    var sum = 0.0;
    if (lane < ROWS) {
        for (var l = 0u; l < LANES; l++) {
            sum += partial[(c * ROWS + lane) * LANES + l];
        }
    }
    // T's partial sums the same way, COLS ranks a round, into ts (and out, from the first
    // column block).
    if (RP > 0u) {
        for (var q = 0u; q < RPC; q++) {
            workgroupBarrier();
            for (var i = 0u; i < ROWS; i++) {
                partial[(c * ROWS + i) * LANES + lane] = tacc[q][i];
            }
            workgroupBarrier();
            let p = c + q * COLS;
            if (lane < ROWS) {
                var tv = 0.0;
                for (var l = 0u; l < LANES; l++) {
                    tv += partial[(c * ROWS + lane) * LANES + l];
                }
                ts[lane * RPC * COLS + p] = tv;
                if (wg.x == 0u && p < r && row0 + lane < m) {
                    t[(row0 + lane) * r + p] = tv;
                }
            }
        }
        workgroupBarrier();
    }

    // Lane i writes row i of the block, column j.
    if (lane < ROWS && row0 + lane < m && j < n) {
        let i = lane;
        let row = row0 + i;
        var v = s_main * sum;
        var low = 0.0;
        for (var p = 0u; p < r; p++) {
            var tv = 0.0;
            if (RP > 0u) {
                tv = ts[i * RPC * COLS + p];
            } else {
                tv = t[row * r + p];
            }
            low += tv * f[j * f_row + p * f_rank];
        }
        v += s_low * low;
        if (has_bias) {
            v += bias[j];
        }
        out[row * n + j] = v;
    }
}
