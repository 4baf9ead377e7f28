//! The one launch of `shaders/lora_matmul.wgsl`, `out = s_main·(X·Wᵀ) + bias + s_low·T·Fᵀ`,
//! which every LoRA product (forward and backward) goes through: operands as strided views
//! (a transpose is a swap of strides), the integer parameters in a small storage buffer
//! (every binding of the shader is a read_write storage array), and one-element
//! placeholders for the bindings a launch does not use.

use burn::backend::DType;
use burn::backend::wgpu::{
    CubeTensor, KernelSource, SourceKernel, SourceTemplate, into_contiguous,
};
use burn_cubecl::cubecl::ir::attributes::BufferIOAttr;
use burn_cubecl::cubecl::prelude::KernelId;
use burn_cubecl::cubecl::server::KernelArguments;
use burn_cubecl::cubecl::{CubeCount, CubeDim};

use crate::shaders::{self, Tile};

/// A row-major 2-D tensor seen as `op(t)`, op a transpose where asked: `rows × cols` with
/// element `(i, j)` at `i·row_stride + j·col_stride`.
#[derive(Clone)]
pub struct Strided {
    tensor: CubeTensor,
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

/// The kernel for one weight encoding and output tile (each its own pipeline).
struct LoraMatmul {
    bits: u32,
    tile: Tile,
}

impl KernelSource for LoraMatmul {
    fn source(&self) -> SourceTemplate {
        SourceTemplate::new(shaders::lora_matmul(self.bits, self.tile))
    }

    fn id(&self) -> KernelId {
        KernelId::new::<Self>().info((self.bits, self.tile))
    }

    fn lang(&self) -> &'static str {
        "wgsl"
    }
}

/// `s_main·(X·Wᵀ) + bias + low` for `x` seen as `[m, k]`.
pub fn matmul(
    x: Strided,
    w: Weight,
    low: Option<LowRank>,
    bias: Option<CubeTensor>,
    s_main: f32,
) -> CubeTensor {
    let (m, k) = (x.rows, x.cols);
    let client = x.tensor.client.clone();
    let device = x.tensor.device.clone();
    let placeholder = || {
        CubeTensor::new_contiguous(
            client.clone(),
            device.clone(),
            [1].into(),
            client.create_from_slice(bytemuck::cast_slice(&[0f32])),
            DType::F32,
        )
    };
    let (n, bits, w_strides, [wq, scales, mins]) = match w {
        Weight::F32(w) => (
            w.rows,
            32,
            [w.row_stride, w.col_stride],
            [w.tensor, placeholder(), placeholder()],
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
    let (r, s_low, f_strides, t, f) = match low {
        Some(low) => (
            low.t.meta.shape()[1],
            low.scaling,
            [low.f.row_stride, low.f.col_stride],
            into_contiguous(low.t),
            low.f.tensor,
        ),
        None => (0, 0.0, [0, 0], placeholder(), placeholder()),
    };
    let has_bias = bias.is_some();
    let bias = bias.map(into_contiguous).unwrap_or_else(placeholder);
    let out = CubeTensor::new_contiguous(
        client.clone(),
        device,
        [m, n].into(),
        client.empty(m * n * 4),
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
    ]
    .map(|v| v as u32);
    let params = client.create_from_slice(bytemuck::cast_slice(&params));
    let args = [&x.tensor, &wq, &scales, &mins, &t, &f, &bias, &out]
        .into_iter()
        .fold(KernelArguments::new(), |args, t| {
            args.with_buffer_io(t.handle.clone().binding(), BufferIOAttr::ReadWrite)
        })
        .with_buffer_io(params.binding(), BufferIOAttr::ReadWrite);
    let tile = Tile::for_rows(m);
    let (tm, tn) = tile.size();
    let (wm, wn) = tile.threads();
    client.launch(
        Box::new(SourceKernel::new(
            LoraMatmul { bits, tile },
            CubeDim::new_1d((wm * wn) as u32),
        )),
        CubeCount::Static(n.div_ceil(tn) as u32, m.div_ceil(tm) as u32, 1),
        args,
    );
    out
}
