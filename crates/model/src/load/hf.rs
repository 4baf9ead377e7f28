//! Loading a HF model folder: `config.json`, the safetensors weights and `tokenizer.json`
//! (or a SentencePiece `tokenizer.model`),
//! read by their own (HF) tensor names.

use burn::tensor::Device;
use formats::Folder;
use formats::safetensors::SafetensorsSource;
use formats::tokenizer::TextTokenizer;

use super::{LoadOptions, LoadedModel, WeightReader, build};
use crate::ModelError;
use crate::config::ModelConfig;

/// Loads a HF model from a folder on disk or in memory: `config.json`, the safetensors
/// weights and, when present, `tokenizer.json` or `tokenizer.model`. `keep_quantized` applies to GGUF only.
pub(super) fn load(
    folder: &Folder,
    device: &Device,
    options: LoadOptions,
) -> Result<LoadedModel, ModelError> {
    let config = ModelConfig::from_folder(folder)?;
    let source = SafetensorsSource::open_in(folder)?;
    let mut reader = WeightReader::hf(&source, device);
    reader.max_tensor_bytes = options.max_tensor_bytes;
    reader.progress = options.progress;
    reader.codes_at_load = options.codes_at_load;
    let model = build(&config, &reader)?;
    let tokenizer = match TextTokenizer::from_folder(folder)? {
        Some(tok) => {
            let tok = tok.with_eos(&config.eos_ids());
            tok.check_vocab(config.vocab_size)?;
            Some(tok)
        }
        None => None,
    };
    Ok(LoadedModel {
        model,
        tokenizer,
        origin: folder.root().to_path_buf(),
    })
}
