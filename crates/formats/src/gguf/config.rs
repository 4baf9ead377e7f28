//! Model hyper-parameters from a GGUF's `{arch}.*` metadata, under HF `config.json` names
//! so the model crate can map them onto its own config one to one.

use super::GgufFile;
use crate::FormatError;

/// The decoder-only transformer described by a `llama` or `qwen2` GGUF (other
/// architectures that use the same keys are read the same way; check `architecture`).
#[derive(Debug, Clone, PartialEq)]
pub struct GgufModelConfig {
    /// `general.architecture`.
    pub architecture: String,
    /// `{arch}.embedding_length`.
    pub hidden_size: usize,
    /// `{arch}.block_count`.
    pub num_hidden_layers: usize,
    /// `{arch}.attention.head_count`.
    pub num_attention_heads: usize,
    /// `{arch}.attention.head_count_kv`; equal to the head count when absent (no GQA).
    pub num_key_value_heads: usize,
    /// `{arch}.feed_forward_length`.
    pub intermediate_size: usize,
    /// `{arch}.attention.key_length`, else `hidden_size / num_attention_heads`.
    pub head_dim: usize,
    /// `{arch}.attention.layer_norm_rms_epsilon`.
    pub rms_norm_eps: f32,
    /// `{arch}.rope.freq_base`; 10000 when absent, llama.cpp's default.
    pub rope_theta: f32,
    /// `{arch}.context_length`.
    pub max_position_embeddings: usize,
    /// Length of `tokenizer.ggml.tokens`, else `{arch}.vocab_size`, else the rows of
    /// `token_embd.weight`.
    pub vocab_size: usize,
    pub bos_token_id: Option<u32>,
    pub eos_token_id: Option<u32>,
    pub pad_token_id: Option<u32>,
    /// No `output.weight`: the LM head reuses `token_embd.weight`.
    pub tie_word_embeddings: bool,
    /// llama.cpp's converter permutes the rows of `attn_q`/`attn_k` of `llama` models
    /// for its interleaved RoPE; HF's rotate-half RoPE needs them back in HF order
    /// ([`GgufFile::read_f32_unpermuted`]). `qwen2` files are stored unpermuted.
    pub qk_permuted: bool,
}

impl GgufModelConfig {
    pub fn from_gguf(file: &GgufFile) -> Result<Self, FormatError> {
        let md = file.metadata();
        let arch = file.architecture()?.to_string();
        let key = |k: &str| format!("{arch}.{k}");
        let size = |k: &str| -> Result<usize, FormatError> {
            let full = key(k);
            let v = md.require_u32(&full)? as usize;
            if v == 0 {
                return Err(md.error(&full, "must be positive"));
            }
            Ok(v)
        };

        let hidden_size = size("embedding_length")?;
        let num_attention_heads = size("attention.head_count")?;
        let num_key_value_heads = match md.get_u32(&key("attention.head_count_kv"))? {
            Some(n) => n as usize,
            None => num_attention_heads,
        };
        if num_key_value_heads == 0 || num_attention_heads % num_key_value_heads != 0 {
            return Err(md.error(
                &key("attention.head_count_kv"),
                format!("{num_key_value_heads} KV heads do not divide {num_attention_heads} attention heads"),
            ));
        }
        let head_dim = match md.get_u32(&key("attention.key_length"))? {
            Some(n) => n as usize,
            None if hidden_size % num_attention_heads == 0 => hidden_size / num_attention_heads,
            None => {
                return Err(md.error(
                    &key("attention.head_count"),
                    format!(
                        "{num_attention_heads} heads do not divide the hidden size {hidden_size}"
                    ),
                ));
            }
        };

        let vocab_size = match md.get_str_array("tokenizer.ggml.tokens")? {
            Some(tokens) => tokens.len(),
            None => match md.get_u32(&key("vocab_size"))? {
                Some(n) => n as usize,
                None => {
                    let embd = file.tensor("token_embd.weight").ok_or_else(|| {
                        md.error(
                            "tokenizer.ggml.tokens",
                            "absent, and no vocab_size key or token_embd.weight to infer it",
                        )
                    })?;
                    embd.dims.last().copied().unwrap_or(0)
                }
            },
        };

        // Special ids index the embedding: reject any the vocabulary does not have.
        let token_id = |k: &str| match md.get_u32(k)? {
            Some(id) if id as usize >= vocab_size => Err(md.error(
                k,
                format!("{id} is past the vocabulary of {vocab_size} tokens"),
            )),
            other => Ok(other),
        };

        Ok(Self {
            hidden_size,
            num_hidden_layers: size("block_count")?,
            num_attention_heads,
            num_key_value_heads,
            intermediate_size: size("feed_forward_length")?,
            head_dim,
            rms_norm_eps: md.require_f32(&key("attention.layer_norm_rms_epsilon"))?,
            rope_theta: md.get_f32(&key("rope.freq_base"))?.unwrap_or(10_000.0),
            max_position_embeddings: size("context_length")?,
            vocab_size,
            bos_token_id: token_id("tokenizer.ggml.bos_token_id")?,
            eos_token_id: token_id("tokenizer.ggml.eos_token_id")?,
            pad_token_id: token_id("tokenizer.ggml.padding_token_id")?,
            tie_word_embeddings: file.tensor("output.weight").is_none(),
            qk_permuted: arch == "llama",
            architecture: arch,
        })
    }
}

/// For each output row in HF order, the row of the llama.cpp-permuted weight to take.
///
/// llama.cpp's `convert_hf_to_gguf.py` stores `attn_q`/`attn_k` as
/// `w.reshape(n_head, 2, d / 2, ...).swapaxes(1, 2)` with `d = rows / n_head`, so that the
/// two halves rotated together by HF's `rotate_half` become adjacent rows. HF row
/// `(h, i, j)` (`i` in 0..2, `j` in 0..d/2) is therefore GGUF row `(h, j, i)`. This is the
/// inverse transformers applies (`reverse_permute_weights`). Works on rows of any element
/// type, so quantized rows (whole blocks) can be reordered before dequantization too.
/// `None` when the rows do not split into `n_head` heads of even size.
pub fn llama_qk_row_order(rows: usize, n_head: usize) -> Option<Vec<usize>> {
    if n_head == 0 || !rows.is_multiple_of(n_head) || !(rows / n_head).is_multiple_of(2) {
        return None;
    }
    let half = rows / n_head / 2;
    let mut order = Vec::with_capacity(rows);
    for h in 0..n_head {
        for i in 0..2 {
            for j in 0..half {
                order.push(h * 2 * half + j * 2 + i);
            }
        }
    }
    Some(order)
}

/// Rows of a row-major array put in `order` (row `i` of the result is row `order[i]`), each
/// `width` elements: applies [`llama_qk_row_order`] to f32 values or to packed codes.
pub fn gather_rows<T: Copy>(values: &[T], width: usize, order: &[usize]) -> Vec<T> {
    order
        .iter()
        .flat_map(|&src| values[src * width..(src + 1) * width].iter().copied())
        .collect()
}
