// Fused LoRA linear: y = x·Wᵀ + bias + s·t·Bᵀ with t = x·Aᵀ [m, r] computed beforehand
// (by lora_backward_factor.wgsl, r/n of the base product's work), so neither W + s·B·A nor
// the [m, n] low-rank product is ever formed: the epilogue of the tiled base product adds
// bias and s·t·Bᵀ (r/k of its work). One workgroup of WM×WN threads computes a TM×TN
// tile of y, each thread a 4×4 block (16 products per 8 loads from workgroup memory),
// walking k in steps of TK. The tile's shape is filled in per launch: 32×32 for many rows,
// 8×128 for a few (decoding one token), so short inputs do not pad 31 of 32 rows with zeros.
//
// The base W [n, k] is read as 32-bit words: f32 values (BITS = 32), or codes of 32-value
// blocks (GGUF's Q8_0, Q4_0, Q4_1 repacked by crates/kernels/src/quant.rs) that the load of
// the weight tile dequantizes, so a quantized W is never formed in f32: 8-bit codes are
// signed, w = q·d; 4-bit codes are unsigned, w = q·d + min. For f32, scales and mins are
// one-element placeholders.
//
// Every binding is read_write: Burn may place small tensors in one shared buffer.

@group(0) @binding(0) var<storage, read_write> x: array<f32>;      // [m, k]
@group(0) @binding(1) var<storage, read_write> wq: array<u32>;     // [n, k / CODES]
@group(0) @binding(2) var<storage, read_write> scales: array<f32>; // [n, k / 32]
@group(0) @binding(3) var<storage, read_write> mins: array<f32>;   // [n, k / 32] (4-bit)
@group(0) @binding(4) var<storage, read_write> t: array<f32>;      // [m, r]
@group(0) @binding(5) var<storage, read_write> b: array<f32>;      // [n, r]
@group(0) @binding(6) var<storage, read_write> bias: array<f32>;   // [n]
@group(0) @binding(7) var<storage, read_write> y: array<f32>;      // [m, n]
@group(0) @binding(8) var<storage, read_write> params: array<u32>; // [m, n, k, r, bits(s)]

const WM: u32 = {{ wm }}u;  // threads along m
const WN: u32 = {{ wn }}u;  // threads along n
const THREADS: u32 = WM * WN;
const TM: u32 = 4u * WM;
const TN: u32 = 4u * WN;
const TK: u32 = {{ tk }}u;
const TKP: u32 = TK + 1u;   // padded row: the 4 rows a thread reads fall in different banks
const BITS: u32 = {{ bits }}u;  // 32 (f32), 8 or 4
const CODES: u32 = 32u / BITS;  // codes per word

var<workgroup> xs: array<f32, TM * TKP>; // [TM, TKP]
var<workgroup> ws: array<f32, TN * TKP>; // [TN, TKP]

// Element (row, col) of W; col < k, row < n.
fn weight(row: u32, col: u32, k: u32) -> f32 {
    if (BITS == 32u) {
        return bitcast<f32>(wq[row * k + col]);
    }
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

@compute @workgroup_size(THREADS, 1, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let m = params[0];
    let n = params[1];
    let k = params[2];
    let r = params[3];
    let s = bitcast<f32>(params[4]);
    let tid = lid.x;
    let row0 = wg.y * TM;
    let col0 = wg.x * TN;
    let lr = (tid / WN) * 4u;
    let lc = (tid % WN) * 4u;
    var acc: array<f32, 16>; // [4 rows, 4 cols] of this thread's block

    for (var k0 = 0u; k0 < k; k0 += TK) {
        for (var i = tid; i < TM * TK; i += THREADS) {
            let row = i / TK;
            let j = i % TK;
            var v = 0.0;
            if (row0 + row < m && k0 + j < k) {
                v = x[(row0 + row) * k + k0 + j];
            }
            xs[row * TKP + j] = v;
        }
        for (var i = tid; i < TN * TK; i += THREADS) {
            let col = i / TK;
            let j = i % TK;
            var v = 0.0;
            if (col0 + col < n && k0 + j < k) {
                v = weight(col0 + col, k0 + j, k);
            }
            ws[col * TKP + j] = v;
        }
        workgroupBarrier();

        for (var kk = 0u; kk < TK; kk++) {
            var xv: array<f32, 4>;
            for (var i = 0u; i < 4u; i++) {
                xv[i] = xs[(lr + i) * TKP + kk];
            }
            for (var j = 0u; j < 4u; j++) {
                let wv = ws[(lc + j) * TKP + kk];
                for (var i = 0u; i < 4u; i++) {
                    acc[i * 4u + j] += xv[i] * wv;
                }
            }
        }
        workgroupBarrier();
    }

    for (var e = 0u; e < 16u; e++) {
        let gr = row0 + lr + e / 4u;
        let gc = col0 + lc + e % 4u;
        if (gr < m && gc < n) {
            var low = 0.0;
            for (var rank = 0u; rank < r; rank++) {
                low += t[gr * r + rank] * b[gc * r + rank];
            }
            y[gr * n + gc] = acc[e] + bias[gc] + s * low;
        }
    }
}
