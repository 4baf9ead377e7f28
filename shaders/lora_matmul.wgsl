// The LoRA product over the base weight in one tiled pass:
//
//   out = s_main·(X·Wᵀ) + bias + s_low·T·Fᵀ
//
// with X [m, k] and W [n, k] read through strides (so a transposed operand is a swap of
// strides, never a copy) and an optional low-rank epilogue T [m, r]·F [n, r]ᵀ, F also
// strided. The launches (crates/kernels/src/lora) use it as:
//   forward  y  = x·Wᵀ + bias + s·t·Bᵀ with t = x·Aᵀ computed in the same pass (RP, below),
//            or before it; neither W + s·B·A nor the [m, n] low-rank product is formed;
//   backward dx = g·W + s·u·A with u = g·B the same way.
// The factors' gradients (dA = s·uᵀ·x, dB = s·gᵀ·t) go to CubeCL's matmul: here they
// would be a handful of tiles each walking a long k alone.
//
// crates/kernels/src/shaders.rs (Schedule) sends a product here when its base is quantized
// and it has more than 8 rows; up to 8 rows take lora_rows.wgsl, and more rows over an f32
// base take CubeCL's matmul and lora_epilogue.wgsl, unless this kernel is timed faster on
// the device (crates/kernels/src/lora/tune.rs). MENTALQLM_LORA_SCHEDULE=tiled sends every
// product here.
//
// Split over k (a slice depth KC in the parameters, not 0): workgroup z computes
// s_main·X·Wᵀ over k in [z·KC, (z + 1)·KC) into out[z] ([s, m, n]), with no bias and no
// low-rank term, and lora_epilogue.wgsl adds the slices up with them; a long k over few
// output tiles then fills more of a GPU.
//
// One workgroup of WM×WN threads computes a TM×TN tile of out, walking k in steps of TK;
// each thread owns 4 rows (WM apart) and 4 columns (WN apart) and reads the tiles as vec4s
// along k: 16 four-wide dot products per 8 loads from workgroup memory. The low-rank term
// takes r more steps of the same loop over T and F. The tile's shape is filled in per
// launch (crates/kernels/src/shaders.rs): 64×64 for hundreds of rows, 32×32 for tens, 8×128
// for up to 8 (decoding one token), so short inputs are not padded to 64 rows of zeros.
//
// W is read as 32-bit words: f32 values (BITS = 32), or codes of 32-value blocks (GGUF's
// Q8_0, Q4_0, Q4_1 repacked by crates/kernels/src/quant.rs, W row-major) that the tile load
// dequantizes, so a quantized W is never formed in f32: 8-bit codes are signed, w = q·d;
// 4-bit codes are unsigned, w = q·d + min. Bindings a launch does not need (scales and mins
// for f32, bias, T and F) get one-element placeholders.
//
// The low-rank input computed here (RP, the rank rounded up to 4, not 0): instead of
// reading a T made by another launch, the kernel computes T = X·Aᵀ [m, r] for its rows
// while it walks k (A (r, k) through strides, staged beside W's tile: r/TN more of the
// loop's work), adds s_low·T·Fᵀ from workgroup memory, and the workgroups of the first
// column of tiles write T out through the T binding (the forward keeps it for the gradient
// of B, the input gradient's u = g·B is the gradient of A's input). A takes the binding
// W's codes leave free: scales for an f32 base, mins for 8-bit codes (4-bit codes need
// both, and take T from another launch). One launch where there were two. Not with a
// slice of k (KC), which sees only part of each row's sum.
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
//  W k stride, F row stride, F rank stride, has bias, KC (0: k whole), A row stride,
//  A k stride]
@group(0) @binding(8) var<uniform> params: Params;

{{ params }}

const WM: u32 = {{ wm }}u;  // threads along m
const WN: u32 = {{ wn }}u;  // threads along n
const THREADS: u32 = WM * WN;
const TM: u32 = 4u * WM;
const TN: u32 = 4u * WN;
const TK: u32 = {{ tk }}u;  // a multiple of 4
const KQ: u32 = TK / 4u;    // vec4s along k per tile row
const KQP: u32 = KQ + 1u;   // padded: threads reading different rows hit different banks
const BITS: u32 = {{ bits }}u;  // 32 (f32), 8 or 4
const CODES: u32 = 32u / BITS;  // codes per word
const RP: u32 = {{ rp }}u;      // T's columns computed here (r rounded up to 4), 0: T given
const RPS: u32 = {{ rp_slots }}u;  // RP, or 1 where it is 0 (arrays are never empty, and
                                   // naga refuses a division by a constant 0)
const TPER: u32 = {{ tper }}u;  // of the tile's TM×RP values of T, each thread's (at most)

var<workgroup> xs: array<vec4<f32>, TM * KQP>; // [TM, KQP]: 4 consecutive k per entry
var<workgroup> ws: array<vec4<f32>, TN * KQP>; // [TN, KQP]
var<workgroup> pa: array<vec4<f32>, RPS * KQP>; // [RP, KQP]: A's rows (RP > 0)
var<workgroup> ts: array<f32, TM * RPS>;        // [TM, RP]: the tile's rows of T (RP > 0)

// The strides, read from params once per invocation rather than once per element.
var<private> x_row: u32;
var<private> x_k: u32;
var<private> w_row: u32;
var<private> w_k: u32;
var<private> f_row: u32;
var<private> f_rank: u32;
var<private> s_low: f32;
var<private> k_all: u32;  // k: the codes' row length, whatever slice of it is walked
var<private> a_row: u32;
var<private> a_k: u32;
var<private> r_all: u32;
var<private> tile_row0: u32;   // the tile's first row (T's rows in ts are relative to it)
var<private> tacc: array<f32, TPER>;  // this thread's values of T: entry tid + j·THREADS

// Element (row, col) of W; row < n, col < k. Codes are only ever row-major.
fn weight(row: u32, col: u32) -> f32 {
    if (BITS == 32u) {
        return bitcast<f32>(wq[row * w_row + col * w_k]);
    }
    let k = k_all;
    let word = wq[(row * k + col) / CODES];
    let shift = (col % CODES) * BITS;
    let block = (row * k + col) / 32u;
    if (BITS == 8u) {
        // Move the byte to the top, then shift back arithmetically to sign-extend it.
        let q = bitcast<i32>(word << (24u - shift)) >> 24u;
        return f32(q) * scales[block];
    }
    let q = (word >> shift) & 15u;
    return f32(q) * scales[block] + mins[block];
}

// Element (rank, col) of A (r, k), in the binding W leaves free.
fn proj(rank: u32, col: u32) -> f32 {
    let i = rank * a_row + col * a_k;
    if (BITS == 8u) {
        return mins[i];
    }
    return scales[i];
}

// Four consecutive values of A's row `rank` from column `col`, zero past the edges.
fn a4(rank: u32, col: u32, k: u32) -> vec4<f32> {
    var v = vec4<f32>(0.0);
    if (rank < r_all) {
        for (var e = 0u; e < 4u; e++) {
            if (col + e < k) {
                v[e] = proj(rank, col + e);
            }
        }
    }
    return v;
}

// Four consecutive (along k) values of row `row` of X from column `col`, zero past the edges.
fn x4(row: u32, col: u32, m: u32, k: u32) -> vec4<f32> {
    var v = vec4<f32>(0.0);
    if (row < m) {
        for (var e = 0u; e < 4u; e++) {
            if (col + e < k) {
                v[e] = x[row * x_row + (col + e) * x_k];
            }
        }
    }
    return v;
}

// The same for W.
fn w4(row: u32, col: u32, n: u32, k: u32) -> vec4<f32> {
    var v = vec4<f32>(0.0);
    if (row < n) {
        for (var e = 0u; e < 4u; e++) {
            if (col + e < k) {
                v[e] = weight(row, col + e);
            }
        }
    }
    return v;
}

// The same for T [m, r] (row-major, or this tile's rows in ts), scaled by s_low.
fn t4(row: u32, col: u32, m: u32, r: u32) -> vec4<f32> {
    var v = vec4<f32>(0.0);
    if (row < m) {
        for (var e = 0u; e < 4u; e++) {
            if (col + e < r) {
                if (RP > 0u) {
                    v[e] = ts[(row - tile_row0) * RP + col + e];
                } else {
                    v[e] = t[row * r + col + e];
                }
            }
        }
    }
    return v * s_low;
}

// The same for F (n, r), through its strides.
fn f4(row: u32, col: u32, n: u32, r: u32) -> vec4<f32> {
    var v = vec4<f32>(0.0);
    if (row < n) {
        for (var e = 0u; e < 4u; e++) {
            if (col + e < r) {
                v[e] = f[row * f_row + (col + e) * f_rank];
            }
        }
    }
    return v;
}

// Stages the tiles of step k0 in workgroup memory: X and W (`low` false, read up to `depth`,
// the end of the slice of k), or T and F (`low` true, depth r). Neighbouring threads load neighbouring addresses: along the depth
// when it is contiguous, along the rows when the operand is read transposed.
fn stage(low: bool, k0: u32, depth: u32, tid: u32, row0: u32, col0: u32, m: u32, n: u32) {
    let lhs_along = low || x_k == 1u;
    let rhs_along = (low && f_rank == 1u) || (!low && (BITS != 32u || w_k == 1u));
    for (var i = tid; i < TM * KQ; i += THREADS) {
        var row = i / KQ;
        var q = i % KQ;
        if (!lhs_along) {
            row = i % TM;
            q = i / TM;
        }
        if (low) {
            xs[row * KQP + q] = t4(row0 + row, k0 + 4u * q, m, depth);
        } else {
            xs[row * KQP + q] = x4(row0 + row, k0 + 4u * q, m, depth);
        }
    }
    for (var i = tid; i < TN * KQ; i += THREADS) {
        var col = i / KQ;
        var q = i % KQ;
        if (!rhs_along) {
            col = i % TN;
            q = i / TN;
        }
        if (low) {
            ws[col * KQP + q] = f4(col0 + col, k0 + 4u * q, n, depth);
        } else {
            ws[col * KQP + q] = w4(col0 + col, k0 + 4u * q, n, depth);
        }
    }
    if (RP > 0u && !low) {
        for (var i = tid; i < RP * KQ; i += THREADS) {
            pa[(i / KQ) * KQP + i % KQ] = a4(i / KQ, k0 + 4u * (i % KQ), depth);
        }
    }
}

// This thread's rows are ty + i·WM and its columns tx + j·WN (i, j < 4); acc_i holds row i's
// four columns.
var<private> acc0: vec4<f32>;
var<private> acc1: vec4<f32>;
var<private> acc2: vec4<f32>;
var<private> acc3: vec4<f32>;

// Adds the staged tiles' product to this thread's 4×4 values.
fn multiply(ty: u32, tx: u32) {
    for (var q = 0u; q < KQ; q++) {
        let x0 = xs[ty * KQP + q];
        let x1 = xs[(ty + WM) * KQP + q];
        let x2 = xs[(ty + 2u * WM) * KQP + q];
        let x3 = xs[(ty + 3u * WM) * KQP + q];
        let w0 = ws[tx * KQP + q];
        let w1 = ws[(tx + WN) * KQP + q];
        let w2 = ws[(tx + 2u * WN) * KQP + q];
        let w3 = ws[(tx + 3u * WN) * KQP + q];
        acc0 += vec4<f32>(dot(x0, w0), dot(x0, w1), dot(x0, w2), dot(x0, w3));
        acc1 += vec4<f32>(dot(x1, w0), dot(x1, w1), dot(x1, w2), dot(x1, w3));
        acc2 += vec4<f32>(dot(x2, w0), dot(x2, w1), dot(x2, w2), dot(x2, w3));
        acc3 += vec4<f32>(dot(x3, w0), dot(x3, w1), dot(x3, w2), dot(x3, w3));
    }
}

// Adds the staged tiles' part of T = X·Aᵀ to this thread's values of it.
fn project(tid: u32) {
    for (var j = 0u; j < TPER; j++) {
        let e = tid + j * THREADS;
        if (e < TM * RP) {
            let row = e / RPS;
            let rank = e % RPS;
            var sum = 0.0;
            for (var q = 0u; q < KQ; q++) {
                sum += dot(xs[row * KQP + q], pa[rank * KQP + q]);
            }
            tacc[j] += sum;
        }
    }
}

@compute @workgroup_size(THREADS, 1, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let m = param(0u);
    let n = param(1u);
    let s_main = bitcast<f32>(param(4u));
    s_low = bitcast<f32>(param(5u));
    x_row = param(6u);
    x_k = param(7u);
    w_row = param(8u);
    w_k = param(9u);
    f_row = param(10u);
    f_rank = param(11u);
    let has_bias = param(12u) != 0u;
    a_row = param(14u);
    a_k = param(15u);
    let tid = lid.x;
    // k and r bound loops with barriers: read from the uniform, they are uniform values (a
    // browser's compiler, Tint, refuses such a loop bounded by a read_write buffer's value).
    let k = param(2u);
    let r = param(3u);
    k_all = k;
    r_all = r;
    // This workgroup's slice of k: all of it, or slice wg.z of KC.
    let kc = param(13u);
    var k_begin = 0u;
    var k_end = k;
    if (kc != 0u) {
        k_begin = wg.z * kc;
        k_end = min(k_begin + kc, k);
    }
    let row0 = wg.y * TM;
    tile_row0 = row0;
    let col0 = wg.x * TN;
    let ty = tid / WN;
    let tx = tid % WN;
    acc0 = vec4<f32>(0.0);
    acc1 = vec4<f32>(0.0);
    acc2 = vec4<f32>(0.0);
    acc3 = vec4<f32>(0.0);
    for (var j = 0u; j < TPER; j++) {
        tacc[j] = 0.0;
    }

    for (var k0 = k_begin; k0 < k_end; k0 += TK) {
        stage(false, k0, k_end, tid, row0, col0, m, n);
        workgroupBarrier();
        multiply(ty, tx);
        if (RP > 0u) {
            project(tid);
        }
        workgroupBarrier();
    }
    if (RP > 0u) {
        // T's tile to workgroup memory for the low-rank step, and out from the first
        // column of tiles (each column computed the same values).
        for (var j = 0u; j < TPER; j++) {
            let e = tid + j * THREADS;
            if (e < TM * RP) {
                ts[e] = tacc[j];
                let row = row0 + e / RPS;
                let rank = e % RPS;
                if (wg.x == 0u && row < m && rank < r) {
                    t[row * r + rank] = tacc[j];
                }
            }
        }
        workgroupBarrier();
    }
    // The low-rank term is r more steps of the same product, [s_main·X | s_low·T] times
    // [W | F]ᵀ: T and F go through the tiles like X and W, so its cost is that of r more
    // columns of k, not r reads of global memory per output.
    acc0 *= s_main;
    acc1 *= s_main;
    acc2 *= s_main;
    acc3 *= s_main;
    for (var k0 = 0u; k0 < r; k0 += TK) {
        stage(true, k0, r, tid, row0, col0, m, n);
        workgroupBarrier();
        multiply(ty, tx);
        workgroupBarrier();
    }

    let accs = array<vec4<f32>, 4>(acc0, acc1, acc2, acc3);
    let base = wg.z * m * n;  // slice z's partial product (0 when k is whole)
    for (var i = 0u; i < 4u; i++) {
        let gr = row0 + ty + i * WM;
        for (var j = 0u; j < 4u; j++) {
            let gc = col0 + tx + j * WN;
            if (gr < m && gc < n) {
                var v = accs[i][j];
                if (has_bias) {
                    v += bias[gc];
                }
                out[base + gr * n + gc] = v;
            }
        }
    }
}
