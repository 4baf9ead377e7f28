//! Encoder-decoder models (MentaLLaMA's MentalBART and MentalT5): BART and T5 in Burn with
//! HF names, one interface over both ([`Seq2SeqLm`]), their loading, and generation
//! (greedy and HF's beam search, [`generation`]).
//!
//! The post goes into the encoder once; the decoder completes the answer token by token,
//! with its self-attention keys and values cached and the cross-attention keys and values
//! computed once from the encoder output ([`DecoderState`]).

pub mod bart;
pub mod generation;
pub mod layers;
pub mod score;
pub mod t5;

use std::path::PathBuf;

use burn::tensor::activation::{gelu, gelu_approximate, relu, silu};
use burn::tensor::{Device, Tensor};
use formats::Folder;
use formats::safetensors::SafetensorsSource;
use formats::tokenizer::TextTokenizer;

pub use generation::GenerationSettings;
pub use layers::{DecoderState, Encoded};

use crate::ModelError;
use crate::load::{LoadOptions, WeightReader};
use bart::{Bart, BartConfig};
use t5::{T5, T5Config};

/// The `model_type`s of `config.json` this module reads.
pub const MODEL_TYPES: [&str; 2] = ["bart", "t5"];

/// An activation named as `ACT2FN` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `gelu`: the exact, erf-based GELU.
    Gelu,
    /// `gelu_new` / `gelu_pytorch_tanh`: the tanh approximation (T5 v1.1).
    GeluNew,
    Relu,
    Silu,
}

impl Activation {
    pub fn parse(name: &str) -> Result<Self, String> {
        Ok(match name {
            "gelu" => Self::Gelu,
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Self::GeluNew,
            "relu" => Self::Relu,
            "silu" | "swish" => Self::Silu,
            other => {
                return Err(format!(
                    "activation `{other}` is not supported (gelu, gelu_new, relu, silu)"
                ));
            }
        })
    }

    pub fn apply<const D: usize>(self, x: Tensor<D>) -> Tensor<D> {
        match self {
            Self::Gelu => gelu(x),
            Self::GeluNew => gelu_approximate(x),
            Self::Relu => relu(x),
            Self::Silu => silu(x),
        }
    }
}

/// An encoder-decoder model's `config.json`.
#[derive(Debug, Clone)]
pub enum Seq2SeqConfig {
    Bart(BartConfig),
    T5(T5Config),
}

impl Seq2SeqConfig {
    /// Parses `config.json` of a BART or T5 model; `file` names it in messages (a missing
    /// key is named).
    pub fn from_json(text: &str, file: PathBuf) -> Result<Self, ModelError> {
        let bad = |reason: String| ModelError::Config {
            path: file.clone(),
            reason,
        };
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        let kind = model_type(&value).unwrap_or("<missing>");
        let config = match kind {
            "bart" => Self::Bart(serde_json::from_value(value).map_err(|e| bad(e.to_string()))?),
            "t5" => Self::T5(serde_json::from_value(value).map_err(|e| bad(e.to_string()))?),
            other => {
                return Err(ModelError::UnknownModelType {
                    path: file,
                    model_type: other.to_string(),
                });
            }
        };
        match &config {
            Self::Bart(c) => c.validate(),
            Self::T5(c) => c.validate(),
        }
        .map_err(bad)?;
        Ok(config)
    }
}

/// `model_type` of a parsed `config.json`.
fn model_type(value: &serde_json::Value) -> Option<&str> {
    value.get("model_type").and_then(|v| v.as_str())
}

/// Whether a folder holds an encoder-decoder model (its `config.json` says `bart` or `t5`).
/// A folder without a readable `config.json` is not one.
pub fn is_seq2seq_folder(folder: &Folder) -> bool {
    folder
        .read_string("config.json")
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .is_some_and(|v| model_type(&v).is_some_and(|t| MODEL_TYPES.contains(&t)))
}

/// A BART or T5 model, one interface over both.
#[derive(Debug)]
pub enum Seq2SeqLm {
    Bart(Bart),
    T5(T5),
}

/// The ids generation starts from and stops at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpecialIds {
    pub pad: u32,
    pub eos: u32,
    pub decoder_start: u32,
    /// BART prepends `<s>` to the encoder input; T5 does not.
    pub bos: Option<u32>,
}

impl Seq2SeqLm {
    pub fn model_type(&self) -> &'static str {
        match self {
            Self::Bart(_) => "bart",
            Self::T5(_) => "t5",
        }
    }

    pub fn vocab_size(&self) -> usize {
        match self {
            Self::Bart(m) => m.config.vocab_size,
            Self::T5(m) => m.config.vocab_size,
        }
    }

    /// Encoder and decoder layers together.
    pub fn layers(&self) -> usize {
        match self {
            Self::Bart(m) => m.encoder_layers.len() + m.decoder_layers.len(),
            Self::T5(m) => m.encoder.block.len() + m.decoder.block.len(),
        }
    }

    /// The longest sequence each stack takes: BART's `max_position_embeddings`; T5's
    /// relative positions have no limit.
    pub fn max_positions(&self) -> Option<usize> {
        match self {
            Self::Bart(m) => Some(m.config.max_position_embeddings),
            Self::T5(_) => None,
        }
    }

    /// `d_model`.
    pub fn hidden_size(&self) -> usize {
        match self {
            Self::Bart(m) => m.config.d_model,
            Self::T5(m) => m.config.d_model,
        }
    }

    pub fn device(&self) -> Device {
        match self {
            Self::Bart(m) => m.shared.device(),
            Self::T5(m) => m.shared.device(),
        }
    }

    pub fn special_ids(&self) -> SpecialIds {
        match self {
            Self::Bart(m) => SpecialIds {
                pad: m.config.pad_token_id,
                eos: m.config.eos_token_id,
                decoder_start: m.config.decoder_start_token_id,
                bos: Some(m.config.bos_token_id),
            },
            Self::T5(m) => SpecialIds {
                pad: m.config.pad_token_id,
                eos: m.config.eos_token_id,
                decoder_start: m
                    .config
                    .decoder_start_token_id
                    .unwrap_or(m.config.pad_token_id),
                bos: None,
            },
        }
    }

    /// A text's ids as the tokenizer's `add_special_tokens=True` gives them to the encoder:
    /// `<s> … </s>` for BART, `… </s>` for T5.
    pub fn encoder_input(&self, text_ids: &[u32]) -> Vec<u32> {
        let special = self.special_ids();
        special
            .bos
            .into_iter()
            .chain(text_ids.iter().copied())
            .chain([special.eos])
            .collect()
    }

    /// Runs the encoder over `ids` (right-padded to one length). An empty batch or an empty
    /// sequence is refused.
    pub fn encode(&self, ids: &[Vec<u32>]) -> Result<Encoded, ModelError> {
        self.check_ids(ids, "encoder input")?;
        match self {
            Self::Bart(m) => m.encode(ids),
            Self::T5(m) => m.encode(ids),
        }
    }

    /// A fresh decoder state over `encoded` (the cross-attention keys and values computed).
    pub fn start(&self, encoded: Encoded) -> DecoderState {
        match self {
            Self::Bart(m) => m.start(encoded),
            Self::T5(m) => m.start(encoded),
        }
    }

    /// Logits `[batch, seq, vocab]` of the new decoder tokens `ids` (one length per row,
    /// one row per sequence of the state).
    pub fn decode(
        &self,
        state: &mut DecoderState,
        ids: &[Vec<u32>],
    ) -> Result<Tensor<3>, ModelError> {
        self.check_ids(ids, "decoder input")?;
        if ids.len() != state.batch() {
            return Err(ModelError::Input(format!(
                "decoder input has {} rows for {} encoded sequences",
                ids.len(),
                state.batch()
            )));
        }
        let len = ids[0].len();
        if ids.iter().any(|r| r.len() != len) {
            return Err(ModelError::Input(
                "decoder input rows differ in length".into(),
            ));
        }
        match self {
            Self::Bart(m) => m.decode(state, ids),
            Self::T5(m) => m.decode(state, ids),
        }
    }

    fn check_ids(&self, ids: &[Vec<u32>], what: &str) -> Result<(), ModelError> {
        if ids.is_empty() || ids.iter().any(Vec::is_empty) {
            return Err(ModelError::Input(format!("{what}: an empty sequence")));
        }
        let vocab = self.vocab_size();
        if let Some(&bad) = ids.iter().flatten().find(|&&t| t as usize >= vocab) {
            return Err(ModelError::Input(format!(
                "{what}: token id {bad} is outside the vocabulary of {vocab}"
            )));
        }
        Ok(())
    }
}

/// Refuses a layer count (`key` of config.json) that is not the number of layers the
/// weights hold (`name(i)` is a tensor every layer has), before anything is allocated.
fn check_layers(
    w: &WeightReader<'_>,
    layers: usize,
    key: &str,
    name: impl Fn(usize) -> String,
) -> Result<(), ModelError> {
    let present = (0..).take_while(|&i| w.has(&name(i))).count();
    if present != layers {
        return Err(ModelError::Config {
            path: w.origin().into(),
            reason: format!(
                "{key} (config.json) is {layers}, but the weights hold {present} layers \
                 ({} missing or extra)",
                name(present.min(layers))
            ),
        });
    }
    Ok(())
}

/// Refuses a special id outside the vocabulary, naming `file` and the key: encoding and
/// generation would feed it to the model.
fn check_special_ids(
    ids: impl IntoIterator<Item = (&'static str, Option<u32>)>,
    vocab: usize,
    file: std::path::PathBuf,
) -> Result<(), ModelError> {
    for (key, id) in ids {
        if let Some(id) = id.filter(|&id| id as usize >= vocab) {
            return Err(ModelError::Config {
                path: file,
                reason: format!("{key} {id} is outside the vocabulary of {vocab}"),
            });
        }
    }
    Ok(())
}

/// An encoder-decoder model with its tokenizer and generation settings.
pub struct LoadedSeq2Seq {
    pub model: Seq2SeqLm,
    pub tokenizer: Option<TextTokenizer>,
    pub generation: GenerationSettings,
    pub origin: PathBuf,
}

/// Loads a BART or T5 folder: `config.json`, safetensors weights, `generation_config.json`
/// when present, and its tokenizer (`tokenizer.json`, `spiece.model`, or `vocab.json` with
/// `merges.txt`). `options.max_tensor_bytes` splits large tables for a browser;
/// `options.codes_at_load` makes codes of the projections and tables as they are read.
pub fn load_seq2seq(
    folder: &Folder,
    device: &Device,
    options: LoadOptions,
) -> Result<LoadedSeq2Seq, ModelError> {
    let config_text = folder.read_string("config.json")?;
    let config = Seq2SeqConfig::from_json(&config_text, folder.path("config.json"))?;
    let source = SafetensorsSource::open_in(folder)?;
    let mut reader = WeightReader::hf(&source, device);
    reader.max_tensor_bytes = options.max_tensor_bytes;
    reader.codes_at_load = options.codes_at_load;
    reader.progress = options.progress;
    let model = match &config {
        Seq2SeqConfig::Bart(c) => Seq2SeqLm::Bart(bart::build(c, &reader)?),
        Seq2SeqConfig::T5(c) => Seq2SeqLm::T5(t5::build(c, &reader)?),
    };
    let special = model.special_ids();
    let vocab = model.vocab_size();
    let generation = GenerationSettings::from_folder(folder, &config_text, special)?;
    let settings_file = if folder.has("generation_config.json") {
        folder.path("generation_config.json")
    } else {
        folder.path("config.json")
    };
    check_special_ids(
        [
            ("bos_token_id", special.bos),
            ("eos_token_id", Some(special.eos)),
            ("pad_token_id", Some(special.pad)),
            ("decoder_start_token_id", Some(special.decoder_start)),
        ],
        vocab,
        folder.path("config.json"),
    )?;
    let g = &generation;
    check_special_ids(
        [
            ("decoder_start_token_id", Some(g.decoder_start)),
            ("pad_token_id", Some(g.pad)),
            ("forced_bos_token_id", g.forced_bos_token_id),
            ("forced_eos_token_id", g.forced_eos_token_id),
        ]
        .into_iter()
        .chain(g.eos.iter().map(|&e| ("eos_token_id", Some(e)))),
        vocab,
        settings_file,
    )?;
    let tokenizer = match TextTokenizer::from_folder(folder)? {
        Some(tok) => {
            let tok = tok.with_eos(&[special.eos]);
            tok.check_vocab(vocab)?;
            Some(tok)
        }
        None => None,
    };
    Ok(LoadedSeq2Seq {
        model,
        tokenizer,
        generation,
        origin: folder.root().to_path_buf(),
    })
}
