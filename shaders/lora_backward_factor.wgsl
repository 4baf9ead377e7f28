// The small products of the LoRA backward, s·op(lhs)·op(rhs) with op a transpose where the
// strides say so: u = g·B, t = x·Aᵀ, dA = s·uᵀ·x, dB = s·gᵀ·t (and dW = gᵀ·x when the base
// is trained). Reading through strides lets one kernel take every layout without a copy.
// One workgroup computes a 32×32 tile of out (each of its 256 threads a 2×2 block),
// walking the inner dimension in steps of 16.
//
// Every binding is read_write: Burn may place small tensors in one shared buffer.

@group(0) @binding(0) var<storage, read_write> lhs: array<f32>;    // op(lhs) is [rows, inner]
@group(0) @binding(1) var<storage, read_write> rhs: array<f32>;    // op(rhs) is [inner, cols]
@group(0) @binding(2) var<storage, read_write> out: array<f32>;    // [rows, cols]
// [rows, cols, inner, lhs row stride, lhs inner stride, rhs inner stride, rhs col stride, bits(s)]
@group(0) @binding(3) var<storage, read_write> params: array<u32>;

const TM: u32 = 32u;
const TN: u32 = 32u;
const TK: u32 = 16u;

var<workgroup> ls: array<f32, 512>; // [TM, TK]
var<workgroup> rs: array<f32, 512>; // [TN, TK]

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let rows = params[0];
    let cols = params[1];
    let inner = params[2];
    let l_row = params[3];
    let l_inner = params[4];
    let r_inner = params[5];
    let r_col = params[6];
    let s = bitcast<f32>(params[7]);
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

    for (var i0 = 0u; i0 < inner; i0 += TK) {
        for (var i = tid; i < TM * TK; i += 256u) {
            let row = row0 + i / TK;
            let j = i0 + i % TK;
            var v = 0.0;
            if (row < rows && j < inner) {
                v = lhs[row * l_row + j * l_inner];
            }
            ls[i] = v;
        }
        for (var i = tid; i < TN * TK; i += 256u) {
            let col = col0 + i / TK;
            let j = i0 + i % TK;
            var v = 0.0;
            if (col < cols && j < inner) {
                v = rhs[j * r_inner + col * r_col];
            }
            rs[i] = v;
        }
        workgroupBarrier();

        for (var kk = 0u; kk < TK; kk++) {
            let l0 = ls[lr * TK + kk];
            let l1 = ls[(lr + 1u) * TK + kk];
            let r0 = rs[lc * TK + kk];
            let r1 = rs[(lc + 1u) * TK + kk];
            acc00 += l0 * r0;
            acc01 += l0 * r1;
            acc10 += l1 * r0;
            acc11 += l1 * r1;
        }
        workgroupBarrier();
    }

    let accs = array<f32, 4>(acc00, acc01, acc10, acc11);
    for (var e = 0u; e < 4u; e++) {
        let row = row0 + lr + e / 2u;
        let col = col0 + lc + e % 2u;
        if (row < rows && col < cols) {
            out[row * cols + col] = s * accs[e];
        }
    }
}
