//! A HF `tokenizers::Tokenizer` rebuilt from a GGUF's `tokenizer.ggml.*` metadata.
//!
//! Only byte-level BPE (`tokenizer.ggml.model == "gpt2"`) is built: SmolLM2, Qwen2 and
//! Llama 3 files use it. The tokenizer is assembled as the `tokenizer.json` the HF repo
//! ships and parsed by `tokenizers`, so the browser and the CLI share one code path and
//! the JSON can be dumped for comparison ([`tokenizer_json`]).
//!
//! The pre-tokenizer is chosen by `tokenizer.ggml.pre`, following llama.cpp's
//! `llama-vocab.cpp` (the regexes are the ones of the models' own `tokenizer.json`).

use serde_json::{Value, json};
use tokenizers::Tokenizer;

use crate::FormatError;
use crate::gguf::GgufMetadata;

/// `tokenizer.ggml.token_type` values (llama.cpp `llama_token_type`).
const TOKEN_TYPE_CONTROL: i32 = 3;
const TOKEN_TYPE_USER_DEFINED: i32 = 4;

/// Qwen2's split: like GPT-4's, but digits one at a time (`\p{N}`), as its `tokenizer.json`.
const QWEN2_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Llama 3's split: digits in runs of up to three.
const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// A tokenizer built from GGUF metadata, with what the file says about its special tokens.
#[derive(Clone)]
pub struct GgufTokenizer {
    pub tokenizer: Tokenizer,
    /// `tokenizer.chat_template` (a Jinja template), if the file has one.
    pub chat_template: Option<String>,
    pub bos_token_id: Option<u32>,
    pub eos_token_id: Option<u32>,
    pub pad_token_id: Option<u32>,
    pub unk_token_id: Option<u32>,
    /// `tokenizer.ggml.add_bos_token` (false when absent, as for a gpt2 vocabulary).
    /// When true the built tokenizer's post-processor prepends BOS if asked to add special tokens.
    pub add_bos_token: bool,
    /// `tokenizer.ggml.pre`, or `default` when absent.
    pub pre: String,
}

impl std::fmt::Debug for GgufTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufTokenizer")
            .field("pre", &self.pre)
            .field("vocab_size", &self.tokenizer.get_vocab_size(true))
            .field("bos_token_id", &self.bos_token_id)
            .field("eos_token_id", &self.eos_token_id)
            .field("pad_token_id", &self.pad_token_id)
            .field("add_bos_token", &self.add_bos_token)
            .field(
                "chat_template",
                &self.chat_template.as_ref().map(|t| t.len()),
            )
            .finish()
    }
}

/// Builds the tokenizer described by `metadata`.
pub fn tokenizer_from_gguf(metadata: &GgufMetadata) -> Result<GgufTokenizer, FormatError> {
    let json = tokenizer_json(metadata)?;
    let bytes = serde_json::to_vec(&json)
        .map_err(|e| err(metadata, format!("cannot serialize tokenizer.json: {e}")))?;
    let tokenizer = Tokenizer::from_bytes(bytes)
        .map_err(|e| err(metadata, format!("tokenizers rejected it: {e}")))?;
    // Ids are checked against the vocabulary here so that callers can index with them.
    let n_tokens = metadata
        .get_str_array("tokenizer.ggml.tokens")?
        .map_or(0, <[String]>::len);
    let id = |key: &str| match metadata.get_u32(key)? {
        Some(id) if id as usize >= n_tokens => Err(err(
            metadata,
            format!("{key} is {id}, past the {n_tokens} tokens of the vocabulary"),
        )),
        other => Ok(other),
    };
    Ok(GgufTokenizer {
        tokenizer,
        chat_template: metadata
            .get_str("tokenizer.chat_template")?
            .map(str::to_string),
        bos_token_id: id("tokenizer.ggml.bos_token_id")?,
        eos_token_id: id("tokenizer.ggml.eos_token_id")?,
        pad_token_id: id("tokenizer.ggml.padding_token_id")?,
        unk_token_id: id("tokenizer.ggml.unknown_token_id")?,
        add_bos_token: metadata
            .get_bool("tokenizer.ggml.add_bos_token")?
            .unwrap_or(false),
        pre: metadata
            .get_str("tokenizer.ggml.pre")?
            .unwrap_or("default")
            .to_string(),
    })
}

/// The HF `tokenizer.json` equivalent to the GGUF's tokenizer metadata.
pub fn tokenizer_json(md: &GgufMetadata) -> Result<Value, FormatError> {
    let model = md.require_str("tokenizer.ggml.model")?;
    if model != "gpt2" {
        return Err(err(
            md,
            format!("tokenizer.ggml.model is `{model}`; only byte-level BPE (`gpt2`) is supported"),
        ));
    }
    let tokens = md.require_str_array("tokenizer.ggml.tokens")?;
    let n_tokens = u32::try_from(tokens.len()).map_err(|_| err(md, "more than 2^32 tokens"))?;
    let types = md
        .get_i32_array("tokenizer.ggml.token_type")?
        .unwrap_or_default();
    if !types.is_empty() && types.len() != tokens.len() {
        return Err(err(
            md,
            format!("{} token types for {} tokens", types.len(), tokens.len()),
        ));
    }

    // Every token of a byte-level vocabulary is spelled in GPT-2's byte alphabet; a token
    // that is not (llama.cpp sometimes stores control tokens as raw text) is respelled,
    // as transformers does, so that it can still be matched.
    let spelled: Vec<String> = tokens.iter().map(|t| respell(t)).collect();
    let mut vocab = serde_json::Map::with_capacity(spelled.len());
    for (id, token) in (0..n_tokens).zip(&spelled) {
        // On duplicates the first id wins, as in llama.cpp's token-to-id map.
        vocab.entry(token.clone()).or_insert(json!(id));
    }

    let mut merges = Vec::new();
    for merge in md
        .get_str_array("tokenizer.ggml.merges")?
        .unwrap_or_default()
    {
        let (a, b) = merge.split_once(' ').ok_or_else(|| {
            err(
                md,
                format!("merge {merge:?} is not two tokens separated by a space"),
            )
        })?;
        merges.push(json!([a, b]));
    }

    // Control tokens become special added tokens and user-defined ones plain added tokens,
    // so both are matched whole in the text (llama.cpp does the same). A control token not
    // written in the byte alphabet is a mislabel transformers skips, and it skips
    // user-defined tokens missing from the vocabulary; so do we.
    let mut added = Vec::new();
    for (id, (token, &ty)) in (0..n_tokens).zip(tokens.iter().zip(&types)) {
        let special = match ty {
            TOKEN_TYPE_CONTROL if in_byte_alphabet(token) => true,
            TOKEN_TYPE_USER_DEFINED if vocab.contains_key(token.as_str()) => false,
            _ => continue,
        };
        added.push(json!({
            "id": id, "content": token, "single_word": false, "lstrip": false,
            "rstrip": false, "normalized": false, "special": special,
        }));
    }

    let pre = md.get_str("tokenizer.ggml.pre")?.unwrap_or("default");
    let (pre_tokenizer, ignore_merges) = pre_tokenizer(pre).ok_or_else(|| {
        err(md, format!("pre-tokenizer `{pre}` is not supported (supported: default, gpt-2, smollm, qwen2, llama3)"))
    })?;

    let add_bos = md
        .get_bool("tokenizer.ggml.add_bos_token")?
        .unwrap_or(false);
    let bos = md.get_u32("tokenizer.ggml.bos_token_id")?;
    let post_processor = match bos {
        Some(bos) if add_bos => {
            let token = tokens.get(bos as usize).ok_or_else(|| {
                err(
                    md,
                    format!("bos_token_id {bos} is past the {n_tokens} tokens"),
                )
            })?;
            json!({
                "type": "TemplateProcessing",
                "single": [{"SpecialToken": {"id": token, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                "pair": [
                    {"SpecialToken": {"id": token, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                    {"SpecialToken": {"id": token, "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}},
                ],
                "special_tokens": {token: {"id": token, "ids": [bos], "tokens": [token]}},
            })
        }
        _ => {
            json!({"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true})
        }
    };

    Ok(json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": pre_tokenizer,
        "post_processor": post_processor,
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {
            "type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
            "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false,
            "ignore_merges": ignore_merges, "vocab": vocab, "merges": merges,
        },
    }))
}

/// The pre-tokenizer for llama.cpp's `tokenizer.ggml.pre` name, and whether whole words
/// found in the vocabulary skip the merges (Llama 3's `ignore_merges`).
fn pre_tokenizer(pre: &str) -> Option<(Value, bool)> {
    let byte_level = |use_regex: bool| json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": use_regex, "use_regex": use_regex});
    let split = |regex: &str| {
        json!({"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": regex}, "behavior": "Isolated", "invert": false},
            byte_level(false),
        ]})
    };
    Some(match pre {
        // GPT-2's own regex, inside ByteLevel.
        "default" | "gpt-2" | "gpt2" => (byte_level(true), false),
        // SmolLM2's tokenizer.json: every digit alone, then GPT-2's regex (llama.cpp's
        // LLAMA_VOCAB_PRE_TYPE_SMOLLM is the same two regexes).
        "smollm" => (
            json!({"type": "Sequence", "pretokenizers": [
                {"type": "Digits", "individual_digits": true},
                byte_level(true),
            ]}),
            false,
        ),
        "qwen2" | "deepseek-r1-qwen" => (split(QWEN2_SPLIT), false),
        "llama3" | "llama-v3" | "llama-bpe" => (split(LLAMA3_SPLIT), true),
        _ => return None,
    })
}

/// Whether `c` is one of the 256 characters GPT-2's `bytes_to_unicode` spells bytes with:
/// printable Latin-1 stands for itself, the other 68 bytes map to U+0100..=U+0143.
fn in_alphabet(c: char) -> bool {
    matches!(c as u32, 33..=126 | 161..=172 | 174..=323)
}

fn in_byte_alphabet(token: &str) -> bool {
    token.chars().all(in_alphabet)
}

/// `token` spelled in the byte alphabet (unchanged when it already is).
fn respell(token: &str) -> String {
    if in_byte_alphabet(token) {
        return token.to_string();
    }
    token.bytes().map(byte_char).collect()
}

/// GPT-2's `bytes_to_unicode` for one byte.
fn byte_char(b: u8) -> char {
    match b {
        33..=126 | 161..=172 | 174..=255 => char::from(b),
        // The unprintable bytes, in increasing order, take U+0100 onwards.
        _ => {
            let rank = match b {
                0..=32 => b as u32,
                127..=160 => 33 + (b as u32 - 127),
                _ => 67, // 173, the soft hyphen
            };
            char::from_u32(256 + rank).unwrap_or('\u{fffd}')
        }
    }
}

fn err(md: &GgufMetadata, reason: impl Into<String>) -> FormatError {
    FormatError::Tokenizer {
        path: md.path().to_path_buf(),
        reason: reason.into(),
    }
}
