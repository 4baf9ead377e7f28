//! `out = s_main·(X·Wᵀ) + bias + s_low·T·Fᵀ`, which every LoRA product over the base
//! weight (the forward and the input gradient) goes through, by one of three schedules
//! (`shaders::Schedule`): `shaders/lora_rows.wgsl` for up to 8 rows, `shaders/lora_matmul.wgsl`
//! (tiled) for more rows over codes, and CubeCL's matmul followed by
//! `shaders/lora_epilogue.wgsl` for more rows over an f32 base. Operands are strided views
//! (a transpose is a swap of strides), the integer parameters go in a small storage buffer
//! (every binding of the shaders is a read_write storage array), and bindings a launch does
//! not use get one-element placeholders.

use burn::backend::DType;
use burn::backend::wgpu::{
    CubeBackend, CubeTensor, KernelSource, SourceKernel, SourceTemplate, into_contiguous,
};
use burn_cubecl::cubecl::ir::attributes::BufferIOAttr;
use burn_cubecl::cubecl::prelude::KernelId;
use burn_cubecl::cubecl::server::KernelArguments;
use burn_cubecl::cubecl::{CubeCount, CubeDim};

use crate::reference;
use crate::shaders::{self, Schedule, Tile};

/// A row-major 2-D tensor seen as `op(t)`, op a transpose where asked: `rows × cols` with
/// element `(i, j)` at `i·row_stride + j·col_stride`.
#[derive(Clone)]
pub struct Strided {
    tensor: CubeTensor,
    transposed: bool,
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl Strided {
    pub fn of(tensor: CubeTensor, transposed: bool) -> Self {
        let tensor = into_contiguous(tensor);
        let [d0, d1] = [tensor.meta.shape()[0], tensor.meta.shape()[1]];
        let (rows, cols, row_stride, col_stride) = if transposed {
            (d1, d0, 1, d1)
        } else {
            (d0, d1, d1, 1)
        };
        Self {
            tensor,
            transposed,
            rows,
            cols,
            row_stride,
            col_stride,
        }
    }

    /// The contiguous tensor under the view.
    pub fn tensor(&self) -> CubeTensor {
        self.tensor.clone()
    }
}

/// The `W [n, k]` operand: f32 values through strides, or packed codes (row-major, see
/// `crate::quant`) with their block scales and minimums.
pub enum Weight {
    F32(Strided),
    Quantized {
        quants: CubeTensor,
        scales: CubeTensor,
        mins: CubeTensor,
        bits: u32,
    },
}

/// The epilogue `s·T·Fᵀ`: `t [m, r]` and `f` seen as `[n, r]`.
pub struct LowRank {
    pub t: CubeTensor,
    pub f: Strided,
    pub scaling: f32,
}

/// A kernel that computes the whole product in one launch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum OnePass {
    /// `lora_matmul.wgsl` with this tile, for any number of rows.
    Tiled(Tile),
    /// `lora_rows.wgsl` for this many rows.
    Rows(usize),
}

/// One of them for one weight encoding (each its own pipeline).
struct LoraMatmul {
    bits: u32,
    pass: OnePass,
}

impl KernelSource for LoraMatmul {
    fn source(&self) -> SourceTemplate {
        SourceTemplate::new(match self.pass {
            OnePass::Tiled(tile) => shaders::lora_matmul(self.bits, tile),
            OnePass::Rows(rows) => shaders::lora_rows(self.bits, rows),
        })
    }

    fn id(&self) -> KernelId {
        KernelId::new::<Self>().info((self.bits, self.pass))
    }

    fn lang(&self) -> &'static str {
        "wgsl"
    }
}

/// `lora_epilogue.wgsl` (one pipeline).
struct LoraEpilogue;

impl KernelSource for LoraEpilogue {
    fn source(&self) -> SourceTemplate {
        SourceTemplate::new(shaders::LORA_EPILOGUE)
    }

    fn id(&self) -> KernelId {
        KernelId::new::<Self>()
    }

    fn lang(&self) -> &'static str {
        "wgsl"
    }
}

/// `s_main·(X·Wᵀ) + bias + low` for `x` seen as `[m, k]`, by the schedule
/// `Schedule::choose` picks for its rows and base.
pub fn matmul(
    x: Strided,
    w: Weight,
    low: Option<LowRank>,
    bias: Option<CubeTensor>,
    s_main: f32,
) -> CubeTensor {
    let m = x.rows;
    match (Schedule::choose(m, matches!(w, Weight::Quantized { .. })), w) {
        (Schedule::Epilogue, Weight::F32(w)) => {
            // `op(w)ᵀ` as CubeCL sees it: the view's transpose is the tensor's, undone.
            let y = reference::scaled_matmul::<CubeBackend>(
                x.tensor,
                w.tensor,
                x.transposed,
                !w.transposed,
                1.0,
            );
            epilogue(y, low, bias, s_main)
        }
        (Schedule::Rows, w) => one_pass(OnePass::Rows(m), x, w, low, bias, s_main),
        (Schedule::Tiled(tile), w) => one_pass(OnePass::Tiled(tile), x, w, low, bias, s_main),
        // Not chosen for codes, which would need an f32 copy of W for CubeCL's matmul.
        (Schedule::Epilogue, w) => {
            one_pass(OnePass::Tiled(Tile::for_rows(m)), x, w, low, bias, s_main)
        }
    }
}

/// A one-element f32 tensor for a binding a launch does not use.
fn placeholder(like: &CubeTensor) -> CubeTensor {
    let client = &like.client;
    CubeTensor::new_contiguous(
        client.clone(),
        like.device.clone(),
        [1].into(),
        client.create_from_slice(bytemuck::cast_slice(&[0f32])),
        DType::F32,
    )
}

/// The integer parameters as a storage buffer of 32-bit words.
fn params_buffer(like: &CubeTensor, params: &[usize]) -> CubeTensor {
    let words: Vec<u32> = params.iter().map(|&v| v as u32).collect();
    let client = &like.client;
    CubeTensor::new_contiguous(
        client.clone(),
        like.device.clone(),
        [words.len()].into(),
        client.create_from_slice(bytemuck::cast_slice(&words)),
        DType::U32,
    )
}

/// The bindings in order, each read_write.
fn arguments(tensors: &[&CubeTensor]) -> KernelArguments {
    tensors.iter().fold(KernelArguments::new(), |args, t| {
        args.with_buffer_io(t.handle.clone().binding(), BufferIOAttr::ReadWrite)
    })
}

/// `y ← s_main·y + bias + low` in place over `y [m, n]`, by `lora_epilogue.wgsl`. `y` is
/// the fresh output of CubeCL's matmul, so no other tensor shares its buffer.
fn epilogue(
    y: CubeTensor,
    low: Option<LowRank>,
    bias: Option<CubeTensor>,
    s_main: f32,
) -> CubeTensor {
    let y = into_contiguous(y);
    let [m, n] = [y.meta.shape()[0], y.meta.shape()[1]];
    let (r, s_low, f_strides, t, f) = low_rank_parts(low, &y);
    let has_bias = bias.is_some();
    let bias = bias
        .map(into_contiguous)
        .unwrap_or_else(|| placeholder(&y));
    let params = params_buffer(
        &y,
        &[
            m,
            n,
            r,
            s_main.to_bits() as usize,
            s_low.to_bits() as usize,
            f_strides[0],
            f_strides[1],
            has_bias as usize,
        ],
    );
    let client = y.client.clone();
    client.launch(
        Box::new(SourceKernel::new(LoraEpilogue, CubeDim::new_1d(256))),
        // 16 rows by 64 columns per workgroup (`TM`, `WN`·`CN` in the shader).
        CubeCount::Static(n.div_ceil(64) as u32, m.div_ceil(16) as u32, 1),
        arguments(&[&y, &t, &f, &bias, &params]),
    );
    y
}

/// `(r, s_low, F's strides, T, F)` of the low-rank term, placeholders without one.
fn low_rank_parts(
    low: Option<LowRank>,
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
        None => (0, 0.0, [0, 0], placeholder(like), placeholder(like)),
    }
}

/// `lora_matmul.wgsl` (tiled) or `lora_rows.wgsl`: the whole product in one launch.
fn one_pass(
    pass: OnePass,
    x: Strided,
    w: Weight,
    low: Option<LowRank>,
    bias: Option<CubeTensor>,
    s_main: f32,
) -> CubeTensor {
    let (m, k) = (x.rows, x.cols);
    let like = x.tensor.clone();
    let (n, bits, w_strides, [wq, scales, mins]) = match w {
        Weight::F32(w) => (
            w.rows,
            32,
            [w.row_stride, w.col_stride],
            [w.tensor, placeholder(&like), placeholder(&like)],
        ),
        Weight::Quantized {
            quants,
            scales,
            mins,
            bits,
        } => {
            let n = scales.meta.shape()[0];
            let [quants, scales, mins] = [quants, scales, mins].map(into_contiguous);
            (n, bits, [0, 0], [quants, scales, mins])
        }
    };
    let (r, s_low, f_strides, t, f) = low_rank_parts(low, &like);
    let has_bias = bias.is_some();
    let bias = bias
        .map(into_contiguous)
        .unwrap_or_else(|| placeholder(&like));
    let client = like.client.clone();
    let out = CubeTensor::new_contiguous(
        client.clone(),
        like.device.clone(),
        [m, n].into(),
        client.empty(m * n * 4),
        DType::F32,
    );
    let params = params_buffer(
        &like,
        &[
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
        ],
    );
    let args = arguments(&[&x.tensor, &wq, &scales, &mins, &t, &f, &bias, &out, &params]);
    let (threads, count) = match pass {
        OnePass::Tiled(tile) => {
            let (tm, tn) = tile.size();
            let (wm, wn) = tile.threads();
            (wm * wn, (n.div_ceil(tn), m.div_ceil(tm)))
        }
        // Eight columns of 32 threads each (`COLS`, `LANES` in the shader).
        OnePass::Rows(_) => (256, (n.div_ceil(8), 1)),
    };
    client.launch(
        Box::new(SourceKernel::new(
            LoraMatmul { bits, pass },
            CubeDim::new_1d(threads as u32),
        )),
        CubeCount::Static(count.0 as u32, count.1 as u32, 1),
        args,
    );
    out
}
