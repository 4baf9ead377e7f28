//! Building a [`CausalLm`] from weights on disk: a HF folder (`config.json`, safetensors,
//! `tokenizer.json`) or a GGUF file. Module field names are HF tensor names, so the HF path
//! needs no renaming; the one renaming table (GGUF) lives in [`gguf_name`].
//!
//! `hf.rs` reads HF folders and `gguf.rs` GGUF files (with the renaming table); both read
//! through a [`WeightReader`] (`reader.rs`) and assemble the network with [`build()`].

mod build;
mod gguf;
mod hf;
mod reader;

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use formats::Folder;
use formats::gguf::GgufFile;
use formats::tokenizer::TextTokenizer;

use crate::ModelError;
use crate::heads::lm::CausalLm;

pub use build::build;
pub use gguf::gguf_name;
pub use reader::WeightReader;

/// A model with the tokenizer that came with it (if the folder or file has one).
pub struct LoadedModel {
    pub model: CausalLm,
    pub tokenizer: Option<TextTokenizer>,
    pub origin: PathBuf,
}

/// Told how far a model's build has come: `(steps done, steps in all)`, a step being the
/// embedding table, each decoder layer, and the final norm with the LM head. A browser's
/// build takes seconds, and its page shows this.
#[derive(Clone, Copy)]
pub struct BuildProgress<'a>(pub &'a dyn Fn(usize, usize));

impl std::fmt::Debug for BuildProgress<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BuildProgress")
    }
}

/// How to load a model.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoadOptions<'a> {
    /// Keep a GGUF file's Q8_0, Q4_0 and Q4_1 projection weights as codes on the device,
    /// read by the quantized kernel, instead of converting them to f32 (19–28% of the f32
    /// memory); so too the embedding table and LM head when they are of those types and fit
    /// `max_tensor_bytes` (inference only). Other types and HF folders are loaded as f32.
    pub keep_quantized: bool,
    /// Hold the projections, the embedding table and the LM head as codes made as they are
    /// read (inference only), for models whose f32 copy would not fit: `Q8_0` (a 7B model
    /// in about 7.2 GB instead of 27; HF folders) or `F16` (half floats as they are, about
    /// 14.3 GB; HF folders, and a GGUF file's F16/BF16/F32 tensors under `keep_quantized`).
    pub codes_at_load: Option<kernels::QuantFormat>,
    /// The largest tensor the device takes in one buffer, in bytes (a browser's WebGPU
    /// `maxStorageBufferBindingSize`). A larger embedding table or LM head is held in row
    /// blocks under it ([`crate::vocab::RowParts`]; inference only). `None`: no limit.
    pub max_tensor_bytes: Option<u64>,
    /// Called after each step of the build (the tables, each layer, the rest), with the
    /// steps done and their total.
    pub progress: Option<BuildProgress<'a>>,
}

/// Loads a `.gguf` file or a HF model folder on disk onto `device`.
pub fn load_model(
    path: &Path,
    device: &Device,
    options: LoadOptions,
) -> Result<LoadedModel, ModelError> {
    if is_gguf(path) {
        return gguf::load(&GgufFile::open(path)?, device, options);
    }
    require_folder(path)?;
    hf::load(&Folder::disk(path), device, options)
}

/// Loads the model in a folder on disk or in memory (the files a browser user picked): its
/// one `.gguf` file, else HF's `config.json`, safetensors and `tokenizer.json`.
pub fn load_folder(
    folder: &Folder,
    device: &Device,
    options: LoadOptions,
) -> Result<LoadedModel, ModelError> {
    if let Some(name) = gguf_file_name(folder) {
        return gguf::load(&GgufFile::open_in(folder, &name)?, device, options);
    }
    if !folder.has("config.json") {
        return Err(ModelError::Config {
            path: folder.path("config.json"),
            reason: format!(
                "missing: give a .gguf file, or a HF model folder's config.json, \
                 safetensors and tokenizer.json (found: {})",
                folder.names().join(", ")
            ),
        });
    }
    hf::load(folder, device, options)
}

/// Reads only the tokenizer of a `.gguf` file or a HF model folder (`tokenizer.json`, else
/// a SentencePiece `tokenizer.model` or `spiece.model`, or BART's `vocab.json` + `merges.txt`):
/// no weights are read.
pub fn load_tokenizer(path: &Path) -> Result<TextTokenizer, ModelError> {
    if is_gguf(path) {
        return gguf::text_tokenizer(&GgufFile::open(path)?);
    }
    require_folder(path)?;
    let folder = Folder::disk(path);
    TextTokenizer::from_folder(&folder)?.ok_or_else(|| {
        ModelError::Format(formats::FormatError::Tokenizer {
            path: path.to_path_buf(),
            reason: format!(
                "no tokenizer.json, tokenizer.model, spiece.model, or vocab.json with merges.txt in the folder (found: {})",
                folder.names().join(", ")
            ),
        })
    })
}

/// Whether `path` names a `.gguf` file (by its extension, in any case).
pub fn is_gguf(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
}

/// A path that is not a `.gguf` file must be a model folder.
fn require_folder(path: &Path) -> Result<(), ModelError> {
    if path.is_dir() {
        return Ok(());
    }
    Err(ModelError::Format(formats::FormatError::io(
        path,
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "expected a HF model folder or a .gguf file",
        ),
    )))
}

/// The `.gguf` file among a folder's files, if any.
pub fn gguf_file_name(folder: &Folder) -> Option<String> {
    folder
        .names()
        .into_iter()
        .find(|n| n.to_ascii_lowercase().ends_with(".gguf"))
}
