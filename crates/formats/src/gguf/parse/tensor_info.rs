//! One tensor's info (name, dims, type, data offset), read and checked against the limits
//! of the format before its byte range is checked against the file.

use super::cursor::Cursor;
use super::{MAX_DIMS, ParseError, Result};
use crate::dequant::GgmlType;

/// One tensor as the file describes it, validated against the file's size.
#[derive(Debug, Clone, PartialEq)]
pub struct GgufTensorInfo {
    pub name: String,
    /// GGUF order (`ne`): innermost, contiguous dimension first. Reverse it for PyTorch order.
    pub dims: Vec<usize>,
    pub ggml_type: GgmlType,
    /// Byte offset of the data from the start of the data section, as stored.
    pub offset: usize,
    pub n_elements: usize,
    pub n_bytes: usize,
}

impl GgufTensorInfo {
    /// Row-major shape, outermost dimension first (PyTorch order: `ne` reversed).
    pub fn shape(&self) -> Vec<usize> {
        self.dims.iter().rev().copied().collect()
    }
}

pub(super) fn tensor_info(
    c: &mut Cursor<'_>,
    i: usize,
    alignment: usize,
) -> Result<GgufTensorInfo> {
    let name = c.string(&format!("name of tensor {i}"))?;
    let err = |reason: String| ParseError::tensor(&name, reason);
    let n_dims = c.u32(&format!("dimension count of `{name}`"))? as usize;
    if n_dims > MAX_DIMS {
        return Err(err(format!(
            "{n_dims} dimensions, at most {MAX_DIMS} are allowed"
        )));
    }
    let mut dims = Vec::with_capacity(n_dims);
    for _ in 0..n_dims {
        let d = c.u64(&format!("dimensions of `{name}`"))?;
        dims.push(
            usize::try_from(d).map_err(|_| err(format!("dimension {d} does not fit in memory")))?,
        );
    }
    let type_id = c.u32(&format!("type of `{name}`"))?;
    let ggml_type =
        GgmlType::from_id(type_id).ok_or_else(|| err(format!("unknown ggml type id {type_id}")))?;
    let offset = c.u64(&format!("data offset of `{name}`"))?;
    let offset = usize::try_from(offset)
        .map_err(|_| err(format!("data offset {offset} does not fit in memory")))?;
    if offset % alignment != 0 {
        return Err(err(format!(
            "data offset {offset} is not a multiple of the alignment {alignment}"
        )));
    }
    let n_elements = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| {
            err(format!(
                "shape {dims:?} has more elements than fit in memory"
            ))
        })?;
    // Blocks never straddle rows: ggml requires the row length to be whole blocks.
    let row = dims.first().copied().unwrap_or(1);
    if row % ggml_type.block_size() != 0 {
        return Err(err(format!(
            "row length {row} is not a multiple of the {ggml_type} block size {}",
            ggml_type.block_size()
        )));
    }
    let n_bytes = ggml_type
        .bytes_for(n_elements as u64)
        .and_then(|b| usize::try_from(b).ok())
        .ok_or_else(|| {
            err(format!(
                "{n_elements} elements of {ggml_type} overflow the byte size"
            ))
        })?;
    Ok(GgufTensorInfo {
        name,
        dims,
        ggml_type,
        offset,
        n_elements,
        n_bytes,
    })
}
