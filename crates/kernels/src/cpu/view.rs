//! Views of Burn's CPU-backend (Flex) tensors as f32 storage: strided matrices
//! ([`MatRef`], [`View4`]) read in place, and the conversions between Flex tensors and
//! plain vectors that our ops start and end with.

use burn::backend::flex::FlexTensor;
use burn::backend::{DType, TensorMetadata};
use burn::tensor::TensorData;

/// A strided `[rows, cols]` view of f32 values: element `(i, j)` is at
/// `offset + i·row_stride + j·col_stride`.
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a> {
    pub data: &'a [f32],
    pub offset: usize,
    pub rows: usize,
    pub cols: usize,
    pub row_stride: isize,
    pub col_stride: isize,
}

impl<'a> MatRef<'a> {
    /// A dense row-major matrix.
    pub fn rows(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self {
            data,
            offset: 0,
            rows,
            cols,
            row_stride: cols as isize,
            col_stride: 1,
        }
    }

    /// A 2-D f32 tensor of Burn's CPU backend as a view of its storage, through its strides
    /// (a transposed tensor is read as it is, not copied); `None` for other dtypes or ranks.
    pub fn of(t: &'a FlexTensor) -> Option<Self> {
        let (data, offset, [rows, cols], [row_stride, col_stride]) = strided(t)?;
        Some(Self {
            data,
            offset,
            rows,
            cols,
            row_stride,
            col_stride,
        })
    }

    /// Row `i` as a slice; only for a view whose rows are contiguous (`col_stride` 1).
    #[inline(always)]
    pub fn row(&self, i: usize) -> &'a [f32] {
        assert!(
            self.col_stride == 1 && i < self.rows,
            "row {i} of a strided view"
        );
        let at = (self.offset as isize + i as isize * self.row_stride) as usize;
        &self.data[at..at + self.cols]
    }

    /// The transpose, as a swap of strides.
    pub fn t(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }

    /// Rows `start..start + len`.
    pub fn row_range(self, start: usize, len: usize) -> Self {
        assert!(
            start + len <= self.rows,
            "rows {start}+{len} of {}",
            self.rows
        );
        Self {
            offset: (self.offset as isize + start as isize * self.row_stride) as usize,
            rows: len,
            ..self
        }
    }

    /// Whether every element lies inside `data` (strides may be negative only in theory:
    /// Burn's layouts here are never flipped, and such a view is refused).
    pub(super) fn in_bounds(&self) -> bool {
        if self.rows == 0 || self.cols == 0 {
            return true;
        }
        if self.row_stride < 0 || self.col_stride < 0 {
            return false;
        }
        let last = self.offset
            + (self.rows - 1) * self.row_stride as usize
            + (self.cols - 1) * self.col_stride as usize;
        last < self.data.len()
    }
}

/// An f32 tensor of rank `N` of Burn's CPU backend as its storage, start offset, shape and
/// strides; `None` for other dtypes or ranks, or negative strides.
fn strided<const N: usize>(t: &FlexTensor) -> Option<(&[f32], usize, [usize; N], [isize; N])> {
    let shape = t.shape();
    let strides = t.layout().strides();
    if t.dtype() != DType::F32 || shape.num_dims() != N || strides.iter().any(|&s| s < 0) {
        return None;
    }
    Some((
        t.storage::<f32>(),
        t.layout().start_offset(),
        std::array::from_fn(|i| shape[i]),
        std::array::from_fn(|i| strides[i]),
    ))
}

/// A strided 4-D f32 tensor of Burn's CPU backend, read as `[rows, cols]` matrices over its
/// last two dimensions.
#[derive(Clone, Copy, Debug)]
pub struct View4<'a> {
    pub data: &'a [f32],
    pub offset: usize,
    pub dims: [usize; 4],
    pub strides: [isize; 4],
}

impl<'a> View4<'a> {
    /// `None` for other dtypes or ranks, or negative strides.
    pub fn of(t: &'a FlexTensor) -> Option<Self> {
        let (data, offset, dims, strides) = strided(t)?;
        Some(Self {
            data,
            offset,
            dims,
            strides,
        })
    }

    /// The matrix at `[i, j, .., ..]`.
    pub fn mat(&self, i: usize, j: usize) -> MatRef<'a> {
        assert!(
            i < self.dims[0] && j < self.dims[1],
            "[{i}, {j}] of {:?}",
            self.dims
        );
        MatRef {
            data: self.data,
            offset: (self.offset as isize
                + i as isize * self.strides[0]
                + j as isize * self.strides[1]) as usize,
            rows: self.dims[2],
            cols: self.dims[3],
            row_stride: self.strides[2],
            col_stride: self.strides[3],
        }
    }
}

/// The values of a Flex tensor as a dense row-major slice (copied only when the layout is
/// not already that), or `None` when it does not hold f32.
pub fn dense_f32(t: &FlexTensor) -> Option<std::borrow::Cow<'_, [f32]>> {
    if t.dtype() != DType::F32 {
        return None;
    }
    match t.as_slice::<f32>() {
        Some(s) => Some(std::borrow::Cow::Borrowed(s)),
        None => Some(std::borrow::Cow::Owned(
            t.to_contiguous().into_data().try_into_vec::<f32>().ok()?,
        )),
    }
}

/// Integer values of a Flex tensor (any signed or unsigned width) as `i64`.
pub fn ints(t: &FlexTensor) -> Option<Vec<i64>> {
    let t = t.to_contiguous();
    Some(match t.dtype() {
        DType::I64 => t.as_slice::<i64>()?.to_vec(),
        DType::I32 => t.as_slice::<i32>()?.iter().map(|&v| v as i64).collect(),
        DType::I16 => t.as_slice::<i16>()?.iter().map(|&v| v as i64).collect(),
        DType::U32 => t.as_slice::<u32>()?.iter().map(|&v| v as i64).collect(),
        DType::U64 => t.as_slice::<u64>()?.iter().map(|&v| v as i64).collect(),
        _ => return None,
    })
}

/// A Flex tensor owning `values` as `shape`, without the copy `FlexTensor::empty` makes.
pub fn tensor(values: Vec<f32>, shape: &[usize]) -> FlexTensor {
    debug_assert_eq!(values.len(), shape.iter().product::<usize>());
    FlexTensor::from_data(TensorData::new(values, shape.to_vec()))
}
