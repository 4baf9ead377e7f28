//! HF safetensors weights: one `model.safetensors`, or shards listed by
//! `model.safetensors.index.json`. Files are memory-mapped; tensors are converted to
//! `f32` on read (F32, F16, BF16 are accepted; other dtypes are an error naming the tensor).

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use half::{bf16, f16};
use memmap2::Mmap;
use safetensors::{Dtype, SafeTensors};

use crate::{FormatError, TensorInfo, TensorSource};

/// One memory-mapped safetensors file whose header has been validated.
struct Shard {
    path: PathBuf,
    mmap: Mmap,
}

impl Shard {
    fn open(path: &Path) -> Result<Self, FormatError> {
        let file = File::open(path).map_err(|e| FormatError::io(path, e))?;
        // SAFETY: the file is opened read-only; a concurrent writer could change the bytes
        // under us, which the safetensors parser then reports as a bad file, not UB in safe code
        // paths we rely on.
        let mmap = unsafe { Mmap::map(&file) }.map_err(|e| FormatError::io(path, e))?;
        let shard = Self {
            path: path.to_path_buf(),
            mmap,
        };
        // Validate the header and every tensor's byte range once, up front.
        shard.parse()?;
        Ok(shard)
    }

    fn parse(&self) -> Result<SafeTensors<'_>, FormatError> {
        SafeTensors::deserialize(&self.mmap).map_err(|e| FormatError::Safetensors {
            path: self.path.clone(),
            reason: e.to_string(),
        })
    }
}

/// The weights of a HF model folder.
pub struct SafetensorsSource {
    root: PathBuf,
    shards: Vec<Shard>,
    /// Tensor name → index into `shards`, in the order the files list them.
    index: BTreeMap<String, usize>,
    order: Vec<String>,
}

impl SafetensorsSource {
    /// Opens `dir/model.safetensors`, or the shards of `dir/model.safetensors.index.json`.
    /// A path to a single `.safetensors` file is accepted too.
    pub fn open(path: &Path) -> Result<Self, FormatError> {
        if path.is_file() {
            return Self::from_files(
                path.parent().unwrap_or(Path::new(".")),
                &[path.to_path_buf()],
            );
        }
        let single = path.join("model.safetensors");
        let index = path.join("model.safetensors.index.json");
        if single.is_file() {
            Self::from_files(path, &[single])
        } else if index.is_file() {
            let files = shard_files(&index)?;
            Self::from_files(path, &files)
        } else {
            Err(FormatError::io(
                &single,
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "neither model.safetensors nor model.safetensors.index.json exists",
                ),
            ))
        }
    }

    fn from_files(root: &Path, files: &[PathBuf]) -> Result<Self, FormatError> {
        let mut shards = Vec::with_capacity(files.len());
        let mut index = BTreeMap::new();
        let mut order = Vec::new();
        for (i, file) in files.iter().enumerate() {
            let shard = Shard::open(file)?;
            let mut names: Vec<(usize, String)> = shard
                .parse()?
                .tensors()
                .into_iter()
                .map(|(name, view)| (view.data().as_ptr() as usize, name))
                .collect();
            // File order (by data offset) keeps listings stable and readable.
            names.sort();
            for (_, name) in names {
                index.insert(name.clone(), i);
                order.push(name);
            }
            shards.push(shard);
        }
        Ok(Self {
            root: root.to_path_buf(),
            shards,
            index,
            order,
        })
    }
}

/// The distinct shard files named by an index's `weight_map`, in first-seen order.
fn shard_files(index: &Path) -> Result<Vec<PathBuf>, FormatError> {
    let text = std::fs::read_to_string(index).map_err(|e| FormatError::io(index, e))?;
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| FormatError::Json {
        path: index.to_path_buf(),
        reason: e.to_string(),
    })?;
    let map = json
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| FormatError::Json {
            path: index.to_path_buf(),
            reason: "no `weight_map` object".into(),
        })?;
    let dir = index.parent().unwrap_or(Path::new("."));
    let mut files: Vec<PathBuf> = Vec::new();
    for (name, file) in map {
        let file = file.as_str().ok_or_else(|| FormatError::Json {
            path: index.to_path_buf(),
            reason: format!("weight_map entry `{name}` is not a file name"),
        })?;
        let path = dir.join(file);
        if !files.contains(&path) {
            files.push(path);
        }
    }
    Ok(files)
}

fn dtype_name(dtype: Dtype) -> String {
    format!("{dtype:?}")
}

impl TensorSource for SafetensorsSource {
    fn tensor_names(&self) -> Vec<String> {
        self.order.clone()
    }

    fn info(&self, name: &str) -> Option<TensorInfo> {
        let shard = &self.shards[*self.index.get(name)?];
        let view = shard.parse().ok()?.tensor(name).ok()?;
        Some(TensorInfo {
            name: name.to_string(),
            shape: view.shape().to_vec(),
            dtype: dtype_name(view.dtype()),
        })
    }

    fn read_f32(&self, name: &str) -> Result<(Vec<f32>, Vec<usize>), FormatError> {
        let i = *self
            .index
            .get(name)
            .ok_or_else(|| FormatError::MissingTensor {
                name: name.to_string(),
                path: self.root.clone(),
            })?;
        let shard = &self.shards[i];
        let tensors = shard.parse()?;
        let view = tensors.tensor(name).map_err(|e| FormatError::BadTensor {
            name: name.to_string(),
            path: shard.path.clone(),
            reason: e.to_string(),
        })?;
        let bytes = view.data();
        let values = match view.dtype() {
            Dtype::F32 => bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            Dtype::F16 => bytes
                .chunks_exact(2)
                .map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            Dtype::BF16 => bytes
                .chunks_exact(2)
                .map(|b| bf16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            other => {
                return Err(FormatError::BadTensor {
                    name: name.to_string(),
                    path: shard.path.clone(),
                    reason: format!("dtype {other:?} is not supported (expected F32, F16 or BF16)"),
                });
            }
        };
        Ok((values, view.shape().to_vec()))
    }

    fn origin(&self) -> String {
        self.root.display().to_string()
    }
}
