//! GGUF (llama.cpp's model file), versions 2 and 3: metadata, tensor infos and tensor
//! data, memory-mapped from disk or held in memory (the browser has no mmap).
//!
//! Tensor names are the file's own (`blk.0.attn_q.weight`); shapes are reported in
//! PyTorch order (GGUF's `ne` reversed). The whole header is validated on open, so every
//! tensor's byte range is known to lie inside the file before any read.

mod config;
mod metadata;
mod parse;
mod value;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use config::{GgufModelConfig, gather_rows, llama_qk_row_order};
pub use metadata::GgufMetadata;
pub use parse::{DEFAULT_ALIGNMENT, GgufTensorInfo, MAX_DIMS, SUPPORTED_VERSIONS};
pub use value::{GgufArray, GgufValue, GgufValueType};

use crate::dequant::{self, GgmlType};
use crate::folder::Storage;
use crate::{FormatError, TensorInfo, TensorSource};

/// An opened, validated GGUF file.
pub struct GgufFile {
    path: PathBuf,
    storage: Storage,
    version: u32,
    alignment: usize,
    data_start: usize,
    metadata: GgufMetadata,
    tensors: Vec<GgufTensorInfo>,
    index: HashMap<String, usize>,
}

impl std::fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufFile")
            .field("path", &self.path)
            .field("version", &self.version)
            .field("alignment", &self.alignment)
            .field("metadata_entries", &self.metadata.entries().count())
            .field("tensors", &self.tensors.len())
            .finish()
    }
}

/// A tensor's stored bytes, for code that keeps weights quantized (a GPU kernel reading
/// Q8_0/Q4_0/Q4_1 blocks directly).
#[derive(Debug, Clone, Copy)]
pub struct RawTensor<'a> {
    /// The blocks, `ggml_type.bytes_for(n_elements)` bytes, rows of whole blocks.
    pub bytes: &'a [u8],
    pub ggml_type: GgmlType,
    /// GGUF order: `dims[0]` is the row length (contiguous, multiple of the block size).
    pub dims: &'a [usize],
}

impl RawTensor<'_> {
    /// PyTorch order (outermost first).
    pub fn shape(&self) -> Vec<usize> {
        self.dims.iter().rev().copied().collect()
    }
}

impl GgufFile {
    /// Memory-maps and validates `path`.
    pub fn open(path: &Path) -> Result<Self, FormatError> {
        Self::from_storage(path.to_path_buf(), Storage::map(path)?)
    }

    /// Validates a GGUF held in memory (a fetch in the browser, a test fixture).
    /// `label` names it in error messages.
    pub fn from_bytes(bytes: Vec<u8>, label: impl Into<PathBuf>) -> Result<Self, FormatError> {
        Self::from_storage(label.into(), Storage::Owned(Arc::new(bytes)))
    }

    /// Opens the GGUF file `name` of a folder on disk or in memory.
    pub fn open_in(folder: &crate::Folder, name: &str) -> Result<Self, FormatError> {
        Self::from_storage(folder.path(name), folder.open(name)?)
    }

    fn from_storage(path: PathBuf, storage: Storage) -> Result<Self, FormatError> {
        let parsed = parse::parse(&storage).map_err(|e| match e.tensor {
            Some(name) => FormatError::BadTensor {
                name,
                path: path.clone(),
                reason: e.reason,
            },
            None => FormatError::Gguf {
                path: path.clone(),
                reason: e.reason,
            },
        })?;
        let index = parsed
            .tensors
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i))
            .collect();
        Ok(Self {
            metadata: GgufMetadata::new(path.clone(), parsed.metadata),
            path,
            storage,
            version: parsed.version,
            alignment: parsed.alignment,
            data_start: parsed.data_start,
            tensors: parsed.tensors,
            index,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// 2 or 3.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// `general.alignment`, or 32.
    pub fn alignment(&self) -> usize {
        self.alignment
    }

    /// Absolute offset of the tensor data section.
    pub fn data_start(&self) -> usize {
        self.data_start
    }

    pub fn metadata(&self) -> &GgufMetadata {
        &self.metadata
    }

    /// `general.architecture` (`llama`, `qwen2`, ...).
    pub fn architecture(&self) -> Result<&str, FormatError> {
        self.metadata.require_str("general.architecture")
    }

    /// Tensor infos in file order.
    pub fn tensors(&self) -> &[GgufTensorInfo] {
        &self.tensors
    }

    pub fn tensor(&self, name: &str) -> Option<&GgufTensorInfo> {
        self.index.get(name).map(|&i| &self.tensors[i])
    }

    /// The model hyper-parameters from the `{arch}.*` keys; see [`GgufModelConfig`].
    pub fn model_config(&self) -> Result<GgufModelConfig, FormatError> {
        GgufModelConfig::from_gguf(self)
    }

    /// The stored bytes of `name`, without conversion.
    pub fn read_raw(&self, name: &str) -> Result<RawTensor<'_>, FormatError> {
        let info = self.tensor(name).ok_or_else(|| self.missing(name))?;
        // `parse` checked `data_start + offset + n_bytes <= len`, so this cannot fail; the
        // checked form keeps that a reported error rather than a panic if it ever did.
        let bytes = self
            .data_start
            .checked_add(info.offset)
            .and_then(|start| self.storage.get(start..start.checked_add(info.n_bytes)?))
            .ok_or_else(|| self.bad(name, "data lies outside the file"))?;
        Ok(RawTensor {
            bytes,
            ggml_type: info.ggml_type,
            dims: &info.dims,
        })
    }

    /// `read_f32` with llama.cpp's Q/K row permutation undone (see [`llama_qk_row_order`]):
    /// pass `n_head` for `attn_q` and `n_kv_head` for `attn_k` of a `llama` GGUF.
    pub fn read_f32_unpermuted(
        &self,
        name: &str,
        n_head: usize,
    ) -> Result<(Vec<f32>, Vec<usize>), FormatError> {
        let (values, shape) = self.read_f32(name)?;
        let rows = shape.first().copied().unwrap_or(1);
        let cols = values.len().checked_div(rows).unwrap_or(0);
        let order = llama_qk_row_order(rows, n_head).ok_or_else(|| {
            self.bad(
                name,
                format!("{rows} rows cannot be split into {n_head} heads of an even size"),
            )
        })?;
        Ok((gather_rows(&values, cols, &order), shape))
    }

    fn missing(&self, name: &str) -> FormatError {
        FormatError::MissingTensor {
            name: name.to_string(),
            path: self.path.clone(),
        }
    }

    fn bad(&self, name: &str, reason: impl Into<String>) -> FormatError {
        FormatError::BadTensor {
            name: name.to_string(),
            path: self.path.clone(),
            reason: reason.into(),
        }
    }
}

impl TensorSource for GgufFile {
    fn tensor_names(&self) -> Vec<String> {
        self.tensors.iter().map(|t| t.name.clone()).collect()
    }

    fn info(&self, name: &str) -> Option<TensorInfo> {
        let t = self.tensor(name)?;
        Some(TensorInfo {
            name: t.name.clone(),
            shape: t.shape(),
            dtype: t.ggml_type.to_string(),
        })
    }

    fn read_f32(&self, name: &str) -> Result<(Vec<f32>, Vec<usize>), FormatError> {
        let raw = self.read_raw(name)?;
        let n = raw.dims.iter().product();
        let values = dequant::dequantize(raw.ggml_type, raw.bytes, n)
            .map_err(|e| self.bad(name, e.to_string()))?;
        Ok((values, raw.shape()))
    }

    fn origin(&self) -> String {
        self.path.display().to_string()
    }
}
