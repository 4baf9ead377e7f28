//! Loading a GGUF file: weights, config and tokenizer all come from the file, and
//! [`gguf_name`] is the project's one table renaming HF tensor names to GGUF's.

use burn::tensor::Device;
use formats::gguf::GgufFile;
use formats::gguf_tokenizer::tokenizer_from_gguf;
use formats::tokenizer::TextTokenizer;

use super::{LoadOptions, LoadedModel, WeightReader, build};
use crate::ModelError;
use crate::config::{ModelConfig, ModelType, TokenIds};

/// Loads an opened GGUF (from disk or, in the browser, from memory).
pub(super) fn load(
    gguf: &GgufFile,
    device: &Device,
    options: LoadOptions,
) -> Result<LoadedModel, ModelError> {
    let path = gguf.path();
    let g = gguf.model_config()?;
    let model_type = match g.architecture.as_str() {
        "llama" => ModelType::Llama,
        "qwen2" => ModelType::Qwen2,
        other => {
            return Err(ModelError::UnknownModelType {
                path: path.to_path_buf(),
                model_type: other.to_string(),
            });
        }
    };
    let config = ModelConfig {
        model_type,
        vocab_size: g.vocab_size,
        hidden_size: g.hidden_size,
        intermediate_size: g.intermediate_size,
        num_hidden_layers: g.num_hidden_layers,
        num_attention_heads: g.num_attention_heads,
        num_key_value_heads: Some(g.num_key_value_heads),
        head_dim: Some(g.head_dim),
        rms_norm_eps: g.rms_norm_eps as f64,
        rope_theta: Some(g.rope_theta as f64),
        rope_parameters: None,
        rope_scaling: None,
        max_position_embeddings: g.max_position_embeddings,
        tie_word_embeddings: g.tie_word_embeddings,
        attention_bias: false,
        hidden_act: "silu".into(),
        bos_token_id: g.bos_token_id,
        eos_token_id: g.eos_token_id.map(TokenIds::One),
    };
    config.validate().map_err(|reason| ModelError::Config {
        path: path.to_path_buf(),
        reason,
    })?;
    let unpermute = g
        .qk_permuted
        .then_some((config.num_attention_heads, config.kv_heads()));
    let mut reader = WeightReader::gguf(gguf, device, unpermute);
    if options.keep_quantized {
        reader.quantized = Some(gguf);
        reader.codes_at_load = options.codes_at_load;
    }
    reader.max_tensor_bytes = options.max_tensor_bytes;
    reader.progress = options.progress;
    let model = build(&config, &reader)?;
    let tokenizer = text_tokenizer(gguf)?;
    tokenizer.check_vocab(config.vocab_size)?;
    Ok(LoadedModel {
        model,
        tokenizer: Some(tokenizer),
        origin: path.to_path_buf(),
    })
}

/// The tokenizer in a GGUF file's metadata, with its EOS and chat template.
pub(super) fn text_tokenizer(gguf: &GgufFile) -> Result<TextTokenizer, ModelError> {
    let tok = tokenizer_from_gguf(gguf.metadata())?;
    Ok(
        TextTokenizer::new(tok.tokenizer, gguf.path().to_path_buf(), tok.eos_token_id)
            .with_chat_template(tok.chat_template),
    )
}

/// GGUF's names for HF tensor names: the one renaming table of the project.
///
/// | HF                                         | GGUF                      |
/// |--------------------------------------------|---------------------------|
/// | model.embed_tokens.weight                  | token_embd.weight         |
/// | model.norm.weight                          | output_norm.weight        |
/// | lm_head.weight                             | output.weight             |
/// | model.layers.N.self_attn.{q,k,v}_proj.*    | blk.N.attn_{q,k,v}.*      |
/// | model.layers.N.self_attn.o_proj.weight     | blk.N.attn_output.weight  |
/// | model.layers.N.mlp.{gate,up,down}_proj.*   | blk.N.ffn_{gate,up,down}.*|
/// | model.layers.N.input_layernorm.weight      | blk.N.attn_norm.weight    |
/// | model.layers.N.post_attention_layernorm.*  | blk.N.ffn_norm.weight     |
pub fn gguf_name(hf: &str) -> Option<String> {
    match hf {
        "model.embed_tokens.weight" => return Some("token_embd.weight".into()),
        "model.norm.weight" => return Some("output_norm.weight".into()),
        "lm_head.weight" => return Some("output.weight".into()),
        _ => {}
    }
    let rest = hf.strip_prefix("model.layers.")?;
    let (layer, rest) = rest.split_once('.')?;
    let (module, suffix) = rest.rsplit_once('.')?;
    let short = match module {
        "self_attn.q_proj" => "attn_q",
        "self_attn.k_proj" => "attn_k",
        "self_attn.v_proj" => "attn_v",
        "self_attn.o_proj" => "attn_output",
        "mlp.gate_proj" => "ffn_gate",
        "mlp.up_proj" => "ffn_up",
        "mlp.down_proj" => "ffn_down",
        "input_layernorm" => "attn_norm",
        "post_attention_layernorm" => "ffn_norm",
        _ => return None,
    };
    Some(format!("blk.{layer}.{short}.{suffix}"))
}
