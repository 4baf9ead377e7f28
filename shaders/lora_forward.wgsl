// Fused LoRA linear: y = x·Wᵀ + bias + s·(x·Aᵀ)·Bᵀ, without forming W + s·B·A.
// One workgroup computes a 32×32 tile of y (each of its 16×16 threads a 2×2 block). While
// it walks K in steps of 16 for the base product, it also accumulates t = x·Aᵀ for its 32
// rows in workgroup memory, so the low-rank path costs r/32 of the base product and the
// epilogue adds s·t·Bᵀ.
//
// Every binding is read_write: Burn may place small tensors in one shared buffer.

@group(0) @binding(0) var<storage, read_write> x: array<f32>;      // [m, k]
@group(0) @binding(1) var<storage, read_write> w: array<f32>;      // [n, k]
@group(0) @binding(2) var<storage, read_write> a: array<f32>;      // [r, k]
@group(0) @binding(3) var<storage, read_write> b: array<f32>;      // [n, r]
@group(0) @binding(4) var<storage, read_write> bias: array<f32>;   // [n]
@group(0) @binding(5) var<storage, read_write> y: array<f32>;      // [m, n]
@group(0) @binding(6) var<storage, read_write> params: array<u32>; // [m, n, k, r, bits(s)]

const TM: u32 = 32u;
const TN: u32 = 32u;
const TK: u32 = 16u;
const RMAX: u32 = {{ r_max }}u; // the rank rounded up to a multiple of 8

var<workgroup> xs: array<f32, 512>;          // [TM, TK]
var<workgroup> ws: array<f32, 512>;          // [TN, TK]
var<workgroup> as_: array<f32, {{ a_tile }}>; // [RMAX, TK]
var<workgroup> ts: array<f32, {{ t_tile }}>;  // [TM, RMAX]

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let m = params[0];
    let n = params[1];
    let k = params[2];
    let r = params[3];
    let s = bitcast<f32>(params[4]);
    let tid = lid.y * 16u + lid.x;
    let row0 = wg.y * TM;
    let col0 = wg.x * TN;

    for (var i = tid; i < TM * RMAX; i += 256u) {
        ts[i] = 0.0;
    }
    var acc00 = 0.0;
    var acc01 = 0.0;
    var acc10 = 0.0;
    var acc11 = 0.0;
    let lr = lid.y * 2u;
    let lc = lid.x * 2u;

    for (var k0 = 0u; k0 < k; k0 += TK) {
        for (var i = tid; i < TM * TK; i += 256u) {
            let gr = row0 + i / TK;
            let gc = k0 + i % TK;
            var v = 0.0;
            if (gr < m && gc < k) {
                v = x[gr * k + gc];
            }
            xs[i] = v;
        }
        for (var i = tid; i < TN * TK; i += 256u) {
            let gr = col0 + i / TK;
            let gc = k0 + i % TK;
            var v = 0.0;
            if (gr < n && gc < k) {
                v = w[gr * k + gc];
            }
            ws[i] = v;
        }
        for (var i = tid; i < RMAX * TK; i += 256u) {
            let gr = i / TK;
            let gc = k0 + i % TK;
            var v = 0.0;
            if (gr < r && gc < k) {
                v = a[gr * k + gc];
            }
            as_[i] = v;
        }
        workgroupBarrier();

        for (var kk = 0u; kk < TK; kk++) {
            let x0 = xs[lr * TK + kk];
            let x1 = xs[(lr + 1u) * TK + kk];
            let w0 = ws[lc * TK + kk];
            let w1 = ws[(lc + 1u) * TK + kk];
            acc00 += x0 * w0;
            acc01 += x0 * w1;
            acc10 += x1 * w0;
            acc11 += x1 * w1;
        }
        // Each entry of ts belongs to one thread for the whole walk: no race.
        for (var i = tid; i < TM * RMAX; i += 256u) {
            let row = i / RMAX;
            let rank = i % RMAX;
            var sum = 0.0;
            for (var kk = 0u; kk < TK; kk++) {
                sum += xs[row * TK + kk] * as_[rank * TK + kk];
            }
            ts[i] += sum;
        }
        workgroupBarrier();
    }

    let accs = array<f32, 4>(acc00, acc01, acc10, acc11);
    for (var q = 0u; q < 4u; q++) {
        let row = lr + q / 2u;
        let col = lc + q % 2u;
        let gr = row0 + row;
        let gc = col0 + col;
        if (gr < m && gc < n) {
            var low = 0.0;
            for (var rank = 0u; rank < r; rank++) {
                low += ts[row * RMAX + rank] * b[gc * r + rank];
            }
            y[gr * n + gc] = accs[q] + bias[gc] + s * low;
        }
    }
}
