//! Small-file output shared by adapters, heads and training checkpoints: every file is
//! written under a temporary name and renamed, so a killed run leaves the previous version
//! intact and never a half-written one.

use std::path::Path;

use burn::tensor::Tensor;
use formats::TensorSource;
use safetensors::tensor::{Dtype, TensorView};

use crate::ModelError;

/// A named f32 tensor ready to be written: name, shape, values.
pub type Named = (String, Vec<usize>, Vec<f32>);

/// An I/O error naming its file.
pub fn io_err(path: &Path, e: std::io::Error) -> ModelError {
    ModelError::Format(formats::FormatError::io(path, e))
}

fn bad(path: &Path, reason: impl Into<String>) -> ModelError {
    ModelError::Config {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Writes `bytes` to `path` whole or not at all ([`formats::atomic`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ModelError> {
    formats::atomic::write_atomic(path, bytes).map_err(|e| io_err(path, e))
}

/// Writes f32 tensors as one safetensors file, atomically.
pub fn write_safetensors(path: &Path, tensors: &[Named]) -> Result<(), ModelError> {
    write_safetensors_as(path, tensors, false)
}

/// Writes tensors as one f16 safetensors file, atomically: shipped weights, half the size.
pub fn write_safetensors_f16(path: &Path, tensors: &[Named]) -> Result<(), ModelError> {
    write_safetensors_as(path, tensors, true)
}

fn write_safetensors_as(path: &Path, tensors: &[Named], f16: bool) -> Result<(), ModelError> {
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, _, v)| {
            if f16 {
                v.iter()
                    .flat_map(|&x| half::f16::from_f32(x).to_le_bytes())
                    .collect()
            } else {
                v.iter().flat_map(|x| x.to_le_bytes()).collect()
            }
        })
        .collect();
    let dtype = if f16 { Dtype::F16 } else { Dtype::F32 };
    let views = tensors
        .iter()
        .zip(&bytes)
        .map(|((name, shape, _), b)| {
            TensorView::new(dtype, shape.clone(), b)
                .map(|v| (name.clone(), v))
                .map_err(|e| bad(path, format!("tensor `{name}`: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let data = safetensors::serialize(views, None).map_err(|e| bad(path, e.to_string()))?;
    write_atomic(path, &data)
}

/// Every tensor of a safetensors file as f32, in name order.
pub fn read_safetensors(path: &Path) -> Result<Vec<Named>, ModelError> {
    let source = formats::safetensors::SafetensorsSource::open(path)?;
    let mut names = source.tensor_names();
    names.sort();
    names
        .into_iter()
        .map(|name| {
            let (values, shape) = source.read_f32(&name)?;
            Ok((name, shape, values))
        })
        .collect()
}

/// Tensor `name` of `source` (from `file`, for messages) as f32, which must have `shape`.
pub fn read_shaped(
    source: &dyn TensorSource,
    file: &Path,
    name: &str,
    shape: Vec<usize>,
) -> Result<Vec<f32>, ModelError> {
    let info = source.info(name).ok_or_else(|| ModelError::MissingTensor {
        name: name.into(),
        origin: file.display().to_string(),
    })?;
    if info.shape != shape {
        return Err(ModelError::Shape {
            name: name.into(),
            origin: file.display().to_string(),
            expected: shape,
            actual: info.shape,
        });
    }
    Ok(source.read_f32(name)?.0)
}

/// A tensor's values on the host (a blocking read: native code only).
pub fn values<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>, ModelError> {
    let data = t
        .try_into_data()
        .map_err(|e| ModelError::Readback(format!("{e:?}")))?;
    data.try_to_vec::<f32>()
        .map_err(|e| ModelError::Readback(format!("{e:?}")))
}

/// [`values`] without blocking: the only read a browser allows on a WebGPU buffer.
pub async fn values_async<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>, ModelError> {
    let data = t
        .into_data_async()
        .await
        .map_err(|e| ModelError::Readback(format!("{e:?}")))?;
    data.try_to_vec::<f32>()
        .map_err(|e| ModelError::Readback(format!("{e:?}")))
}
