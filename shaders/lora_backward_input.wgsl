// Input gradient of the LoRA linear: dx = g·W + s·u·A with u = g·B [m, r] computed
// beforehand (the gradient of A needs it too), without forming W + s·B·A: the epilogue of
// the tiled g·W adds s·u·A (r/n of its work). One workgroup computes a 32×32 tile of dx,
// each of its 256 threads a 2×2 block, walking n in steps of 16.
//
// Every binding is read_write: Burn may place small tensors in one shared buffer.

@group(0) @binding(0) var<storage, read_write> g: array<f32>;      // [m, n]
@group(0) @binding(1) var<storage, read_write> w: array<f32>;      // [n, k]
@group(0) @binding(2) var<storage, read_write> u: array<f32>;      // [m, r]
@group(0) @binding(3) var<storage, read_write> a: array<f32>;      // [r, k]
@group(0) @binding(4) var<storage, read_write> dx: array<f32>;     // [m, k]
@group(0) @binding(5) var<storage, read_write> params: array<u32>; // [m, n, k, r, bits(s)]

const TM: u32 = 32u;
const TN: u32 = 32u;
const TK: u32 = 16u;

var<workgroup> gs: array<f32, 512>;           // [TM, TK]
var<workgroup> ws: array<f32, 512>;           // [TN, TK]: ws[c * TK + j] = w[n0 + j, col0 + c]

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let m = params[0];
    let n = params[1];
    let k = params[2];
    let r = params[3];
    let s = bitcast<f32>(params[4]);
    let tid = lid.x;
    let row0 = wg.y * TM;
    let col0 = wg.x * TN;

    var acc00 = 0.0;
    var acc01 = 0.0;
    var acc10 = 0.0;
    var acc11 = 0.0;
    // 16×16 threads, each a 2×2 block of the tile.
    let lr = (tid / 16u) * 2u;
    let lc = (tid % 16u) * 2u;

    for (var n0 = 0u; n0 < n; n0 += TK) {
        for (var i = tid; i < TM * TK; i += 256u) {
            let gr = row0 + i / TK;
            let gc = n0 + i % TK;
            var v = 0.0;
            if (gr < m && gc < n) {
                v = g[gr * n + gc];
            }
            gs[i] = v;
        }
        // Consecutive threads read consecutive columns of a row of w.
        for (var i = tid; i < TN * TK; i += 256u) {
            let j = i / TN;
            let c = i % TN;
            var v = 0.0;
            if (n0 + j < n && col0 + c < k) {
                v = w[(n0 + j) * k + col0 + c];
            }
            ws[c * TK + j] = v;
        }
        workgroupBarrier();

        for (var kk = 0u; kk < TK; kk++) {
            let g0 = gs[lr * TK + kk];
            let g1 = gs[(lr + 1u) * TK + kk];
            let w0 = ws[lc * TK + kk];
            let w1 = ws[(lc + 1u) * TK + kk];
            acc00 += g0 * w0;
            acc01 += g0 * w1;
            acc10 += g1 * w0;
            acc11 += g1 * w1;
        }
        workgroupBarrier();
    }

    let accs = array<f32, 4>(acc00, acc01, acc10, acc11);
    for (var e = 0u; e < 4u; e++) {
        let row = lr + e / 2u;
        let col = lc + e % 2u;
        let gr = row0 + row;
        let gc = col0 + col;
        if (gr < m && gc < k) {
            var low = 0.0;
            for (var q = 0u; q < r; q++) {
                low += u[gr * r + q] * a[q * k + gc];
            }
            dx[gr * k + gc] = accs[e] + s * low;
        }
    }
}
