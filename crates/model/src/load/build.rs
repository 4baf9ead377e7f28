//! Assembling the network from a [`WeightReader`]: every tensor read by its HF name.

use super::WeightReader;
use crate::ModelError;
use crate::attention::Attention;
use crate::block::Block;
use crate::config::ModelConfig;
use crate::decoder::Decoder;
use crate::heads::lm::CausalLm;
use crate::mlp::Mlp;

/// Builds the model, reading each tensor by its HF name. The layer count is checked against
/// the weights before anything is allocated; every tensor's shape as it is read.
pub fn build(config: &ModelConfig, w: &WeightReader<'_>) -> Result<CausalLm, ModelError> {
    let present = w.layers_present();
    if present != config.num_hidden_layers {
        return Err(ModelError::Config {
            path: w.origin().into(),
            reason: format!(
                "num_hidden_layers (config.json; GGUF: block_count) is {}, but the weights hold {present} \
                 layers (model.layers.0 to model.layers.{})",
                config.num_hidden_layers,
                present as i64 - 1
            ),
        });
    }
    let h = config.hidden_size;
    let (nh, nkv, hd) = (
        config.num_attention_heads,
        config.kv_heads(),
        config.head_dim(),
    );
    let inter = config.intermediate_size;
    let eps = config.rms_norm_eps;
    let steps = config.num_hidden_layers + 2;
    let embed = w.read_table("model.embed_tokens.weight", [config.vocab_size, h])?;
    w.built(1, steps);
    let mut layers = Vec::with_capacity(config.num_hidden_layers);
    for i in 0..config.num_hidden_layers {
        let p = format!("model.layers.{i}");
        layers.push(Block {
            self_attn: Attention {
                q_proj: w.linear(
                    &format!("{p}.self_attn.q_proj"),
                    h,
                    nh * hd,
                    config.qkv_bias(),
                )?,
                k_proj: w.linear(
                    &format!("{p}.self_attn.k_proj"),
                    h,
                    nkv * hd,
                    config.qkv_bias(),
                )?,
                v_proj: w.linear(
                    &format!("{p}.self_attn.v_proj"),
                    h,
                    nkv * hd,
                    config.qkv_bias(),
                )?,
                o_proj: w.linear(
                    &format!("{p}.self_attn.o_proj"),
                    nh * hd,
                    h,
                    config.o_bias(),
                )?,
                num_heads: nh,
                num_kv_heads: nkv,
                head_dim: hd,
            },
            mlp: Mlp {
                gate_proj: w.linear(&format!("{p}.mlp.gate_proj"), h, inter, false)?,
                up_proj: w.linear(&format!("{p}.mlp.up_proj"), h, inter, false)?,
                down_proj: w.linear(&format!("{p}.mlp.down_proj"), inter, h, false)?,
            },
            input_layernorm: w.norm(&format!("{p}.input_layernorm.weight"), h, eps)?,
            post_attention_layernorm: w.norm(
                &format!("{p}.post_attention_layernorm.weight"),
                h,
                eps,
            )?,
        });
        w.built(i + 2, steps);
    }
    let norm = w.norm("model.norm.weight", h, eps)?;
    // Tied embeddings share the embedding tensor (no copy). An untied model must ship its head.
    let head = if config.tie_word_embeddings && !w.has("lm_head.weight") {
        embed.clone()
    } else {
        w.read_table("lm_head.weight", [config.vocab_size, h])?
    };
    w.built(steps, steps);
    Ok(CausalLm {
        model: Decoder {
            embed_tokens: embed,
            layers,
            norm,
        },
        lm_head: head,
        config: config.clone(),
    })
}
