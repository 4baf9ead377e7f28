//! HF safetensors weights: one `model.safetensors`, or shards listed by
//! `model.safetensors.index.json`. Files are memory-mapped; tensors are converted to
//! `f32` on read (F32, F16, BF16 are accepted; other dtypes are an error naming the tensor).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use half::{bf16, f16};
use safetensors::{Dtype, SafeTensors};

use crate::folder::{Folder, Storage};
use crate::{FormatError, TensorInfo, TensorSource};

/// One safetensors file (mapped or in memory) whose header has been validated.
struct Shard {
    path: PathBuf,
    bytes: Storage,
}

impl Shard {
    fn open(folder: &Folder, name: &str) -> Result<Self, FormatError> {
        let shard = Self {
            path: folder.path(name),
            bytes: folder.open(name)?,
        };
        // Validate the header and every tensor's byte range once, up front.
        shard.parse()?;
        Ok(shard)
    }

    fn parse(&self) -> Result<SafeTensors<'_>, FormatError> {
        SafeTensors::deserialize(&self.bytes).map_err(|e| FormatError::Safetensors {
            path: self.path.clone(),
            reason: e.to_string(),
        })
    }
}

/// The weights of a HF model folder.
pub struct SafetensorsSource {
    /// The file, or the index of the shards, for messages.
    origin: String,
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
            let dir = Folder::disk(path.parent().unwrap_or(Path::new(".")));
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            return Self::from_files(&dir, &[name.to_string()]);
        }
        Self::open_in(&Folder::disk(path))
    }

    /// The model weights of a folder: `model.safetensors`, or the shards of
    /// `model.safetensors.index.json`.
    pub fn open_in(folder: &Folder) -> Result<Self, FormatError> {
        const SINGLE: &str = "model.safetensors";
        const INDEX: &str = "model.safetensors.index.json";
        if folder.has(SINGLE) {
            Self::from_files(folder, &[SINGLE.to_string()])
        } else if folder.has(INDEX) {
            let files = shard_files(folder, INDEX)?;
            let mut source = Self::from_files(folder, &files)?;
            source.origin = format!("{} ({} shards)", folder.path(INDEX).display(), files.len());
            Ok(source)
        } else if let Some(bin) = folder
            .names()
            .into_iter()
            .find(|n| n.starts_with("pytorch_model") && n.ends_with(".bin"))
        {
            // A PyTorch checkpoint is a pickle, and unpickling runs whatever calls it names;
            // it is refused rather than read, with the one-line conversion.
            Err(FormatError::Safetensors {
                path: folder.path(&bin),
                reason: format!(
                    "PyTorch pickle checkpoints are not read (unpickling can run code). Convert \
                     the folder once with transformers: python -c \"import sys, transformers as t; \
                     t.AutoModelForCausalLM.from_pretrained(sys.argv[1]).save_pretrained(sys.argv[2], \
                     safe_serialization=True)\" {} OUT, then copy the tokenizer files into OUT",
                    folder.root().display()
                ),
            })
        } else {
            Err(FormatError::io(
                folder.path(SINGLE),
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "neither model.safetensors nor model.safetensors.index.json exists",
                ),
            ))
        }
    }

    /// One named safetensors file of a folder (an adapter's or a head's weights).
    pub fn open_file(folder: &Folder, name: &str) -> Result<Self, FormatError> {
        Self::from_files(folder, &[name.to_string()])
    }

    fn from_files(folder: &Folder, files: &[String]) -> Result<Self, FormatError> {
        let mut shards = Vec::with_capacity(files.len());
        let mut index = BTreeMap::new();
        let mut order = Vec::new();
        for (i, file) in files.iter().enumerate() {
            let shard = Shard::open(folder, file)?;
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
        let origin = match files {
            [one] => folder.path(one).display().to_string(),
            _ => folder.root().display().to_string(),
        };
        Ok(Self {
            origin,
            shards,
            index,
            order,
        })
    }
}

/// The distinct shard files named by an index's `weight_map`, in first-seen order.
fn shard_files(folder: &Folder, index_name: &str) -> Result<Vec<String>, FormatError> {
    let index = folder.path(index_name);
    let text = folder.read_string(index_name)?;
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
    let mut files: Vec<String> = Vec::new();
    for (name, file) in map {
        let file = file.as_str().ok_or_else(|| FormatError::Json {
            path: index.to_path_buf(),
            reason: format!("weight_map entry `{name}` is not a file name"),
        })?;
        if !files.iter().any(|f| f == file) {
            files.push(file.to_string());
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
                path: PathBuf::from(&self.origin),
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
        // The bytes are converted: their pages need not stay in this process's memory.
        let start = bytes.as_ptr() as usize - shard.bytes.as_ptr() as usize;
        shard.bytes.release(start..start + bytes.len());
        Ok((values, view.shape().to_vec()))
    }

    fn origin(&self) -> String {
        self.origin.clone()
    }
}
