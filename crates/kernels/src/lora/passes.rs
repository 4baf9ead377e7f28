//! The launches of our product kernels: `lora_matmul.wgsl` (tiled) or `lora_rows.wgsl`, the
//! whole product in one pass (or the partial products over slices of k), and
//! `lora_epilogue.wgsl` over a product CubeCL's matmul computed (or those partial products).

use burn::backend::tensor::FloatTensor;
use burn::backend::wgpu::{
    CubeBackend, CubeTensor, KernelSource, SourceKernel, SourceTemplate, into_contiguous,
};
use burn::backend::{Backend, DType};
use burn::tensor::Slice;
use burn_cubecl::cubecl::prelude::KernelId;
use burn_cubecl::cubecl::{CubeCount, CubeDim};

use super::args::{Unused, arguments, placeholder};
use super::operands::{LowRank, Resolved, Strided, Weight, resolve};
use crate::shaders::{self, Tile};

/// A kernel that computes the whole product in one launch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum OnePass {
    /// `lora_matmul.wgsl` with this tile, for any number of rows.
    Tiled(Tile),
    /// `lora_rows.wgsl` for blocks of this many rows.
    Rows(usize),
}

/// One of them for one weight encoding and ranks of `T` computed in it (each its own
/// pipeline).
struct LoraMatmul {
    bits: u32,
    pass: OnePass,
    projected: usize,
}

impl KernelSource for LoraMatmul {
    fn source(&self) -> SourceTemplate {
        SourceTemplate::new(match self.pass {
            OnePass::Tiled(tile) => shaders::lora_matmul(self.bits, tile, self.projected),
            OnePass::Rows(rows) => shaders::lora_rows(self.bits, rows, self.projected),
        })
    }

    fn id(&self) -> KernelId {
        KernelId::new::<Self>().info((self.bits, self.pass, self.projected))
    }

    fn lang(&self) -> &'static str {
        "wgsl"
    }
}

/// `lora_epilogue.wgsl` (one pipeline).
struct LoraEpilogue;

impl KernelSource for LoraEpilogue {
    fn source(&self) -> SourceTemplate {
        SourceTemplate::new(shaders::lora_epilogue())
    }

    fn id(&self) -> KernelId {
        KernelId::new::<Self>()
    }

    fn lang(&self) -> &'static str {
        "wgsl"
    }
}

/// `y[0]` of `y [s, m, n]` as `[m, n]`: a view of the same buffer where its alignment allows.
fn first_slice<B: Backend>(y: FloatTensor<B>, m: usize, n: usize) -> FloatTensor<B> {
    let first = B::float_slice(y, &[Slice::from(0..1), Slice::from(..), Slice::from(..)]);
    B::float_reshape(first, [m, n].into())
}

/// `y ← s_main·y + bias + low` in place over `y [m, n]`, by `lora_epilogue.wgsl`; over
/// the partial products `y [s, m, n]` of a split product, `s_main·Σ y[i] + bias + low` in
/// place of `y[0]`, which is returned. `y` is the fresh output of CubeCL's matmul, so no
/// other tensor shares its buffer.
pub(super) fn epilogue(
    y: CubeTensor,
    low: Option<Resolved>,
    bias: Option<CubeTensor>,
    s_main: f32,
) -> CubeTensor {
    let y = into_contiguous(y);
    let dims = y.meta.shape().to_vec();
    let (splits, m, n) = match dims[..] {
        [m, n] => (1, m, n),
        [s, m, n] => (s, m, n),
        _ => unreachable!("the epilogue takes a product or its slices, not {dims:?}"),
    };
    let (r, s_low, f_strides, t, f) = low_rank_parts(low, &y);
    let has_bias = bias.is_some();
    let bias = bias
        .map(into_contiguous)
        .unwrap_or_else(|| placeholder(&y, Unused::Bias));
    let params = [
        m,
        n,
        r,
        s_main.to_bits() as usize,
        s_low.to_bits() as usize,
        f_strides[0],
        f_strides[1],
        has_bias as usize,
        splits,
    ];
    let client = y.client.clone();
    client.launch(
        Box::new(SourceKernel::new(LoraEpilogue, CubeDim::new_1d(256))),
        // 16 rows by 64 columns per workgroup (`TM`, `WN`·`CN` in the shader).
        CubeCount::Static(n.div_ceil(64) as u32, m.div_ceil(16) as u32, 1),
        arguments(&[&y, &t, &f, &bias], &params),
    );
    if splits == 1 {
        return y;
    }
    first_slice::<CubeBackend>(y, m, n)
}

/// `(r, s_low, F's strides, T, F)` of the low-rank term, placeholders without one.
fn low_rank_parts(
    low: Option<Resolved>,
    like: &CubeTensor,
) -> (usize, f32, [usize; 2], CubeTensor, CubeTensor) {
    match low {
        Some(low) => (
            low.t.meta.shape()[1],
            low.scaling,
            [low.f.row_stride, low.f.col_stride],
            into_contiguous(low.t),
            low.f.tensor,
        ),
        None => (
            0,
            0.0,
            [0, 0],
            placeholder(like, Unused::T),
            placeholder(like, Unused::F),
        ),
    }
}

/// `lora_matmul.wgsl` (tiled) or `lora_rows.wgsl`: the whole product in one launch, and
/// `T` (the kernel computing it in the same pass, `inside`, where `shaders::projected_ranks`
/// or `shaders::rows_projected_ranks` allows, else CubeCL's matmul before it); or, tiled over
/// `slices` > 1 slices of k (dividing it), their partial products `[s, m, n]` (`low` and
/// `bias` then `None`, for the epilogue to add).
#[allow(clippy::too_many_arguments)]
pub(super) fn one_pass(
    pass: OnePass,
    x: Strided,
    w: Weight,
    low: Option<LowRank>,
    bias: Option<CubeTensor>,
    s_main: f32,
    slices: usize,
    inside: bool,
) -> (CubeTensor, Option<CubeTensor>) {
    let (m, k) = (x.rows, x.cols);
    let like = x.tensor.clone();
    let n = w.outputs();
    let bits = w.bits();
    // A and the ranks of `T` the kernel computes, with `T`'s fresh tensor; else `T` at hand.
    let projection = match (&pass, &low) {
        _ if !inside => None,
        (OnePass::Tiled(tile), Some(LowRank { a, .. })) if slices == 1 => {
            shaders::projected_ranks(a.rows, bits, *tile).map(|ranks| (a.clone(), ranks))
        }
        (OnePass::Rows(_), Some(LowRank { a, .. })) => {
            shaders::rows_projected_ranks(a.rows, bits).map(|ranks| (a.clone(), ranks))
        }
        _ => None,
    };
    let (low, t_made, a, projected) = match (projection, low) {
        (Some((a, ranks)), Some(low)) => {
            let r = a.rows;
            let t = CubeTensor::new_contiguous(
                like.client.clone(),
                like.device.clone(),
                [m, r].into(),
                like.client.empty(m * r * 4),
                DType::F32,
            );
            let low = Resolved {
                t: t.clone(),
                f: low.f,
                scaling: low.scaling,
            };
            (Some(low), Some(t), Some(a), ranks)
        }
        (_, low) => {
            let (low, t) = resolve(low, &x);
            (low, t, None, 0)
        }
    };
    let (w_strides, [wq, scales, mins]) = match w {
        Weight::F32(w) => (
            [w.row_stride, w.col_stride],
            [
                w.tensor,
                placeholder(&like, Unused::Scales),
                placeholder(&like, Unused::Mins),
            ],
        ),
        Weight::Quantized {
            quants,
            scales,
            mins,
            ..
        } => {
            let [quants, scales, mins] = [quants, scales, mins].map(into_contiguous);
            ([0, 0], [quants, scales, mins])
        }
    };
    // A in the binding W's codes leave free (the projected ranks allow no other).
    let (a_strides, scales, mins) = match a {
        Some(a) if bits == 8 => ([a.row_stride, a.col_stride], scales, a.tensor),
        Some(a) => ([a.row_stride, a.col_stride], a.tensor, mins),
        None => ([0, 0], scales, mins),
    };
    let (r, s_low, f_strides, t, f) = low_rank_parts(low, &like);
    let has_bias = bias.is_some();
    let bias = bias
        .map(into_contiguous)
        .unwrap_or_else(|| placeholder(&like, Unused::Bias));
    let client = like.client.clone();
    let shape = if slices > 1 {
        vec![slices, m, n]
    } else {
        vec![m, n]
    };
    let out = CubeTensor::new_contiguous(
        client.clone(),
        like.device.clone(),
        shape.into(),
        client.empty(slices * m * n * 4),
        DType::F32,
    );
    let params = [
        m,
        n,
        k,
        r,
        s_main.to_bits() as usize,
        s_low.to_bits() as usize,
        x.row_stride,
        x.col_stride,
        w_strides[0],
        w_strides[1],
        f_strides[0],
        f_strides[1],
        has_bias as usize,
        if slices > 1 { k / slices } else { 0 },
        a_strides[0],
        a_strides[1],
    ];
    let args = arguments(
        &[&x.tensor, &wq, &scales, &mins, &t, &f, &bias, &out],
        &params,
    );
    let (threads, count) = match pass {
        OnePass::Tiled(tile) => {
            let (tm, tn) = tile.size();
            let (wm, wn) = tile.threads();
            (wm * wn, (n.div_ceil(tn), m.div_ceil(tm)))
        }
        // Eight columns of 32 threads each (`COLS`, `LANES` in the shader), a block of
        // rows for each workgroup row.
        OnePass::Rows(rows) => (256, (n.div_ceil(8), m.div_ceil(rows))),
    };
    client.launch(
        Box::new(SourceKernel::new(
            LoraMatmul {
                bits,
                pass,
                projected,
            },
            CubeDim::new_1d(threads as u32),
        )),
        CubeCount::Static(count.0 as u32, count.1 as u32, slices as u32),
        args,
    );
    (out, t_made)
}
