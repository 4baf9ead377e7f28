//! The operands of a LoRA product over the base weight on wgpu: strided views (a transpose
//! is a swap of strides), the base weight as f32 values or packed codes, and the low-rank
//! term, before and after its `T = X·Aᵀ` is computed.

use burn::backend::wgpu::{CubeBackend, CubeTensor, into_contiguous};

use crate::reference;

/// A row-major 2-D tensor seen as `op(t)`, op a transpose where asked: `rows × cols` with
/// element `(i, j)` at `i·row_stride + j·col_stride`.
#[derive(Clone)]
pub struct Strided {
    pub(super) tensor: CubeTensor,
    pub(super) transposed: bool,
    pub(super) rows: usize,
    pub(super) cols: usize,
    pub(super) row_stride: usize,
    pub(super) col_stride: usize,
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
#[derive(Clone)]
pub enum Weight {
    F32(Strided),
    Quantized {
        quants: CubeTensor,
        scales: CubeTensor,
        mins: CubeTensor,
        bits: u32,
    },
}

impl Weight {
    /// n, the outputs: W's rows.
    pub(super) fn outputs(&self) -> usize {
        match self {
            Self::F32(w) => w.rows,
            Self::Quantized { scales, .. } => scales.meta.shape()[0],
        }
    }

    /// 32 for f32 values, else the code width.
    pub(super) fn bits(&self) -> u32 {
        match self {
            Self::F32(_) => 32,
            Self::Quantized { bits, .. } => *bits,
        }
    }
}

/// The low-rank term `s·T·Fᵀ` with `T = X·Aᵀ [m, r]`, `a` seen as `[r, k]` and `f` as
/// `[n, r]` (the forward's `x·Aᵀ` and B; the input gradient's `g·B` and Aᵀ). The one-pass
/// kernels (tiled, and rows) compute `T` in the same pass over X where they can
/// (`shaders::projected_ranks`, `shaders::rows_projected_ranks`), the epilogue schedule by
/// a launch of CubeCL's matmul before its own; [`matmul`](super::launch::matmul) returns it either way, for the
/// gradients that need it.
#[derive(Clone)]
pub struct LowRank {
    pub a: Strided,
    pub f: Strided,
    pub scaling: f32,
}

/// A low-rank term whose `T` is at hand.
pub(super) struct Resolved {
    pub(super) t: CubeTensor,
    pub(super) f: Strided,
    pub(super) scaling: f32,
}

/// `low` with its `T = X·Aᵀ` computed by CubeCL's matmul, and that `T`.
pub(super) fn resolve(low: Option<LowRank>, x: &Strided) -> (Option<Resolved>, Option<CubeTensor>) {
    let Some(LowRank { a, f, scaling }) = low else {
        return (None, None);
    };
    // `op(a)ᵀ` as CubeCL sees it: the view's transpose is the tensor's, undone.
    let t = reference::scaled_matmul::<CubeBackend>(
        x.tensor(),
        a.tensor,
        x.transposed,
        !a.transposed,
        1.0,
    );
    let t = into_contiguous(t);
    (
        Some(Resolved {
            t: t.clone(),
            f,
            scaling,
        }),
        Some(t),
    )
}
