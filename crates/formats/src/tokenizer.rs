//! The text tokenizer: HF `tokenizer.json` (or one built from GGUF metadata or a
//! SentencePiece model), with the special tokens generation needs, and the model's chat
//! template. Built on the `tokenizers` crate without onig, so the browser build tokenizes
//! exactly as the native one.

use std::path::{Path, PathBuf};

use tokenizers::Tokenizer;

use crate::sentencepiece::{sentencepiece_file, tokenizer_from_spm};
use crate::{Folder, FormatError};

/// A tokenizer plus the ids generation stops on.
#[derive(Clone)]
pub struct TextTokenizer {
    inner: Tokenizer,
    origin: PathBuf,
    /// Ids that end a generated answer: the model's EOS and ChatML's `<|im_end|>`.
    pub stop_ids: Vec<u32>,
    /// Id used to pad batches (left padding; the positions are masked anyway).
    pub pad_id: u32,
    /// The model's Jinja chat template (GGUF `tokenizer.chat_template`, a folder's
    /// `chat_template.jinja` or `tokenizer_config.json`), if it has one. Only its format
    /// is recognised (`data::ChatFormat::from_template`); it is not executed.
    pub chat_template: Option<String>,
}

/// Special tokens tried, in order, as end markers of a chat answer.
const STOP_TOKENS: [&str; 4] = ["<|im_end|>", "<|endoftext|>", "</s>", "<|end_of_text|>"];

impl TextTokenizer {
    /// Reads `tokenizer.json` (a folder or the file itself).
    pub fn from_file(path: &Path) -> Result<Self, FormatError> {
        let file = if path.is_dir() {
            path.join("tokenizer.json")
        } else {
            path.to_path_buf()
        };
        let bytes = std::fs::read(&file).map_err(|e| FormatError::io(&file, e))?;
        Self::from_bytes(&bytes, file)
    }

    /// The tokenizer of a model folder: `tokenizer.json` when there is one (it wins, as in
    /// transformers), else a SentencePiece `tokenizer.model` (Llama) or `spiece.model` (T5),
    /// else GPT-2's byte-level BPE in `vocab.json` and `merges.txt` (BART).
    /// `None` when the folder has none of them.
    pub fn from_folder(folder: &Folder) -> Result<Option<Self>, FormatError> {
        let tok = if folder.has("tokenizer.json") {
            let bytes = folder.open("tokenizer.json")?;
            Self::from_bytes(&bytes, folder.path("tokenizer.json"))?
        } else if let Some(name) = sentencepiece_file(&folder.names()) {
            let bytes = folder.open(name)?;
            let origin = folder.path(name);
            let mut sp = tokenizer_from_spm(&bytes, &origin)?;
            if name == "spiece.model" {
                add_t5_sentinels(&mut sp.tokenizer, t5_extra_ids(folder)?);
            }
            Self::new(sp.tokenizer, origin, sp.model.eos_id)
        } else if folder.has("vocab.json") && folder.has("merges.txt") {
            let (vocab, merges) = (folder.path("vocab.json"), folder.path("merges.txt"));
            let tok = crate::byte_bpe::tokenizer_from_files(
                &folder.open("vocab.json")?,
                &folder.open("merges.txt")?,
                &vocab,
                &merges,
            )?;
            let eos = tok.token_to_id("</s>");
            Self::new(tok, vocab, eos)
        } else {
            return Ok(None);
        };
        Ok(Some(tok.with_chat_template(folder_chat_template(folder)?)))
    }

    pub fn with_chat_template(mut self, template: Option<String>) -> Self {
        self.chat_template = template;
        self
    }

    /// Parses `tokenizer.json` bytes; `origin` names them in messages.
    pub fn from_bytes(bytes: &[u8], origin: PathBuf) -> Result<Self, FormatError> {
        // The JSON is parsed here first, strings and all: tokenizers 0.22 panics
        // (`expect("Helper")` in its decoder deserializer) on a syntax error or invalid UTF-8
        // inside the `decoder` object, where valid JSON of any shape gives an error. Found by
        // mentalqlm-fuzz (docs/fuzzing.md). `IgnoredAny` would not check the UTF-8 of strings.
        serde_json::from_slice::<serde_json::Value>(bytes).map_err(|e| FormatError::Tokenizer {
            path: origin.clone(),
            reason: format!("not JSON: {e}"),
        })?;
        let inner = Tokenizer::from_bytes(bytes).map_err(|e| FormatError::Tokenizer {
            path: origin.clone(),
            reason: e.to_string(),
        })?;
        Ok(Self::new(inner, origin, None))
    }

    /// Wraps a built tokenizer. `eos` adds the model's own EOS id to the stop ids.
    pub fn new(inner: Tokenizer, origin: PathBuf, eos: Option<u32>) -> Self {
        let mut stop_ids: Vec<u32> = STOP_TOKENS
            .iter()
            .filter_map(|t| inner.token_to_id(t))
            .collect();
        if let Some(eos) = eos
            && !stop_ids.contains(&eos)
        {
            stop_ids.push(eos);
        }
        let pad_id = stop_ids.first().copied().unwrap_or(0);
        Self {
            inner,
            origin,
            stop_ids,
            pad_id,
            chat_template: None,
        }
    }

    /// Adds the EOS id from the model config to the stop ids.
    pub fn with_eos(mut self, eos: &[u32]) -> Self {
        for &id in eos {
            if !self.stop_ids.contains(&id) {
                self.stop_ids.push(id);
            }
        }
        self
    }

    /// Token ids of `text`. Special-token strings in the text (`<|im_start|>`) become their
    /// ids; no BOS is prepended (ChatML prompts carry their own markers).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, FormatError> {
        let enc = self.inner.encode(text, false).map_err(|e| self.err(e))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Text of `ids`, special tokens dropped.
    pub fn decode(&self, ids: &[u32]) -> Result<String, FormatError> {
        self.inner.decode(ids, true).map_err(|e| self.err(e))
    }

    /// Number of ids the tokenizer can produce (base vocabulary and added tokens).
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The largest id the tokenizer can produce, plus one.
    pub fn id_bound(&self) -> usize {
        self.inner
            .get_vocab(true)
            .values()
            .map(|&id| id as usize + 1)
            .max()
            .unwrap_or(0)
    }

    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    pub fn inner(&self) -> &Tokenizer {
        &self.inner
    }

    /// Checks that every id the tokenizer produces has a row in the model's embedding.
    pub fn check_vocab(&self, model_vocab: usize) -> Result<(), FormatError> {
        let bound = self.id_bound();
        if bound > model_vocab {
            return Err(FormatError::Tokenizer {
                path: self.origin.clone(),
                reason: format!(
                    "tokenizer produces ids up to {} but the model's vocabulary has {model_vocab} rows: \
                     the tokenizer does not belong to this model",
                    bound - 1
                ),
            });
        }
        Ok(())
    }

    fn err(&self, e: impl std::fmt::Display) -> FormatError {
        FormatError::Tokenizer {
            path: self.origin.clone(),
            reason: e.to_string(),
        }
    }
}

/// A folder's chat template: `chat_template.jinja` when there is one (it wins, as in
/// transformers), else `tokenizer_config.json`'s `chat_template`, a string or a list of
/// `{name, template}` of which the one named `default` (else the first) is taken.
/// T5's sentinel count: `extra_ids` of `tokenizer_config.json`, else 100 (the default of
/// transformers' `T5Tokenizer`, which T5 folders without `tokenizer.json` load).
fn t5_extra_ids(folder: &Folder) -> Result<usize, FormatError> {
    const DEFAULT: usize = 100;
    if !folder.has("tokenizer_config.json") {
        return Ok(DEFAULT);
    }
    let path = folder.path("tokenizer_config.json");
    let config: serde_json::Value = serde_json::from_slice(&folder.open("tokenizer_config.json")?)
        .map_err(|e| FormatError::Json {
            path: path.clone(),
            reason: format!("not JSON: {e}"),
        })?;
    match config.get("extra_ids") {
        None | Some(serde_json::Value::Null) => Ok(DEFAULT),
        Some(v) => v
            .as_u64()
            .filter(|&n| n <= 10_000)
            .map(|n| n as usize)
            .ok_or_else(|| FormatError::Json {
                path,
                reason: format!("`extra_ids` must be an integer from 0 to 10000, found {v}"),
            }),
    }
}

/// T5's sentinels `<extra_id_0>` … as special tokens after the SentencePiece pieces, with
/// `T5Tokenizer`'s ids: `<extra_id_i>` is `pieces + extra_ids - 1 - i` (so they are added
/// last first).
fn add_t5_sentinels(tokenizer: &mut tokenizers::Tokenizer, extra_ids: usize) {
    let sentinels: Vec<tokenizers::AddedToken> = (0..extra_ids)
        .rev()
        .map(|i| tokenizers::AddedToken::from(format!("<extra_id_{i}>"), true).normalized(false))
        .collect();
    tokenizer.add_special_tokens(&sentinels);
}

fn folder_chat_template(folder: &Folder) -> Result<Option<String>, FormatError> {
    if folder.has("chat_template.jinja") {
        let path = folder.path("chat_template.jinja");
        let bytes = folder.open("chat_template.jinja")?;
        let text = std::str::from_utf8(&bytes).map_err(|e| FormatError::Json {
            path: path.clone(),
            reason: format!("not UTF-8: {e}"),
        })?;
        return Ok(Some(text.to_string()));
    }
    if !folder.has("tokenizer_config.json") {
        return Ok(None);
    }
    let path = folder.path("tokenizer_config.json");
    let bytes = folder.open("tokenizer_config.json")?;
    let bad = |reason: String| FormatError::Json {
        path: path.clone(),
        reason,
    };
    let config: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| bad(format!("not JSON: {e}")))?;
    match config.get("chat_template") {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(t)) => Ok(Some(t.clone())),
        Some(serde_json::Value::Array(list)) => {
            let named = |name: Option<&str>| {
                list.iter().find(|t| {
                    name.is_none_or(|n| t.get("name").and_then(|v| v.as_str()) == Some(n))
                })
            };
            let chosen = named(Some("default")).or_else(|| named(None));
            match chosen.and_then(|t| t.get("template")).and_then(|t| t.as_str()) {
                Some(t) => Ok(Some(t.to_string())),
                None => Err(bad(
                    "chat_template is a list without a `template` string in its `default` (or first) entry".into(),
                )),
            }
        }
        Some(other) => Err(bad(format!(
            "chat_template is {other}, expected a string or a list of {{name, template}}"
        ))),
    }
}
