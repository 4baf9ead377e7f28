//! BART (`BartForConditionalGeneration`, as MentalBART), with HF names: learned positions
//! offset by 2, post-layer-norm blocks behind `layernorm_embedding`, GELU MLPs,
//! cross-attention, and the tied head plus `final_logits_bias`.

use burn::module::{Module, Param};
use burn::tensor::{Tensor, TensorData};
use serde::Deserialize;

use super::Activation;
use super::layers::{
    Attention, DecoderState, Encoded, LayerNorm, causal_mask, flat_ids, pad_right,
};
use crate::ModelError;
use crate::linear::Linear;
use crate::load::WeightReader;
use crate::vocab::VocabTable;

/// `config.json` of a BART model; field names are HF's keys.
#[derive(Debug, Clone, Deserialize)]
pub struct BartConfig {
    pub vocab_size: usize,
    pub d_model: usize,
    pub encoder_layers: usize,
    pub decoder_layers: usize,
    pub encoder_attention_heads: usize,
    pub decoder_attention_heads: usize,
    pub encoder_ffn_dim: usize,
    pub decoder_ffn_dim: usize,
    pub max_position_embeddings: usize,
    #[serde(default = "gelu")]
    pub activation_function: String,
    #[serde(default)]
    pub scale_embedding: bool,
    #[serde(default)]
    pub bos_token_id: u32,
    #[serde(default = "one")]
    pub pad_token_id: u32,
    #[serde(default = "two")]
    pub eos_token_id: u32,
    #[serde(default = "two")]
    pub decoder_start_token_id: u32,
    /// mBART's pre-layer-norm blocks: refused (BART is post-norm).
    #[serde(default)]
    pub normalize_before: bool,
    #[serde(default)]
    pub add_final_layer_norm: bool,
}

fn gelu() -> String {
    "gelu".into()
}
fn one() -> u32 {
    1
}
fn two() -> u32 {
    2
}

/// BART's learned positions start at index 2 of the table (fairseq's padding offset).
const POSITION_OFFSET: usize = 2;
/// `nn.LayerNorm`'s default, which BART keeps.
const LN_EPS: f64 = 1e-5;

impl BartConfig {
    pub fn validate(&self) -> Result<(), String> {
        for (value, key) in [
            (self.vocab_size, "vocab_size"),
            (self.d_model, "d_model"),
            (self.encoder_ffn_dim, "encoder_ffn_dim"),
            (self.decoder_ffn_dim, "decoder_ffn_dim"),
            (self.max_position_embeddings, "max_position_embeddings"),
        ] {
            if value == 0 {
                return Err(format!("{key} must be positive"));
            }
        }
        if self.normalize_before || self.add_final_layer_norm {
            return Err(
                "normalize_before / add_final_layer_norm (mBART's pre-norm layout) \
                        are not supported: BART blocks are post-norm"
                    .into(),
            );
        }
        for (heads, key) in [
            (self.encoder_attention_heads, "encoder_attention_heads"),
            (self.decoder_attention_heads, "decoder_attention_heads"),
        ] {
            if heads == 0 || !self.d_model.is_multiple_of(heads) {
                return Err(format!(
                    "d_model ({}) is not divisible by {key} ({heads})",
                    self.d_model
                ));
            }
        }
        Activation::parse(&self.activation_function).map(|_| ())
    }
}

#[derive(Module, Debug)]
pub struct BartEncoderLayer {
    pub self_attn: Attention,
    pub self_attn_layer_norm: LayerNorm,
    pub fc1: Linear,
    pub fc2: Linear,
    pub final_layer_norm: LayerNorm,
}

#[derive(Module, Debug)]
pub struct BartDecoderLayer {
    pub self_attn: Attention,
    pub self_attn_layer_norm: LayerNorm,
    pub encoder_attn: Attention,
    pub encoder_attn_layer_norm: LayerNorm,
    pub fc1: Linear,
    pub fc2: Linear,
    pub final_layer_norm: LayerNorm,
}

/// The token-independent part of a stack: positions and the embedding norm.
#[derive(Module, Debug)]
pub struct BartEmbeddings {
    /// `[max_position_embeddings + 2, d_model]`
    pub embed_positions: Param<Tensor<2>>,
    pub layernorm_embedding: LayerNorm,
}

#[derive(Module, Debug)]
pub struct Bart {
    /// `model.shared`: the token embedding of both stacks.
    pub shared: VocabTable,
    pub encoder: BartEmbeddings,
    pub encoder_layers: Vec<BartEncoderLayer>,
    pub decoder: BartEmbeddings,
    pub decoder_layers: Vec<BartDecoderLayer>,
    /// The shared embedding unless the weights hold their own `lm_head`.
    pub lm_head: VocabTable,
    /// `[vocab]`
    pub final_logits_bias: Param<Tensor<1>>,
    #[module(skip)]
    pub act: Activation,
    #[module(skip)]
    pub config: BartConfig,
}

impl Bart {
    /// Token embeddings (scaled by √d_model when `scale_embedding`) plus the positions from
    /// `past`, through `layernorm_embedding`.
    fn embed(
        &self,
        stack: &BartEmbeddings,
        ids: &[Vec<u32>],
        past: usize,
    ) -> Result<Tensor<3>, ModelError> {
        let (b, s) = (ids.len(), ids.first().map_or(0, Vec::len));
        let max = self.config.max_position_embeddings;
        if past + s > max {
            return Err(ModelError::Input(format!(
                "{} positions are more than BART's max_position_embeddings ({max})",
                past + s
            )));
        }
        let d = self.config.d_model;
        let mut x = self.shared.lookup(flat_ids(ids)).reshape([b, s, d]);
        if self.config.scale_embedding {
            x = x * (d as f64).sqrt();
        }
        let device = x.device();
        let rows: Vec<i64> = (past..past + s)
            .map(|p| (p + POSITION_OFFSET) as i64)
            .collect();
        let rows = Tensor::from_data(TensorData::new(rows, [s]), &device);
        let positions = stack.embed_positions.val().select(0, rows);
        Ok(stack
            .layernorm_embedding
            .forward(x + positions.unsqueeze::<3>()))
    }

    fn mlp(&self, fc1: &Linear, fc2: &Linear, x: Tensor<3>) -> Tensor<3> {
        fc2.forward(self.act.apply(fc1.forward(x)))
    }

    pub fn encode(&self, ids: &[Vec<u32>]) -> Result<Encoded, ModelError> {
        let device = self.shared.device();
        let (padded, mask) = pad_right(ids, self.config.pad_token_id, &device);
        let mut x = self.embed(&self.encoder, &padded, 0)?;
        for layer in &self.encoder_layers {
            let (k, v) = layer.self_attn.keys_values(x.clone());
            let h = layer.self_attn.attend(x.clone(), k, v, mask.clone());
            x = layer.self_attn_layer_norm.forward(x + h);
            let h = self.mlp(&layer.fc1, &layer.fc2, x.clone());
            x = layer.final_layer_norm.forward(x + h);
        }
        Ok(Encoded { hidden: x, mask })
    }

    pub fn start(&self, encoded: Encoded) -> DecoderState {
        let cross_kv = self
            .decoder_layers
            .iter()
            .map(|l| l.encoder_attn.keys_values(encoded.hidden.clone()))
            .collect();
        DecoderState::new(encoded, cross_kv)
    }

    /// Logits `[batch, seq, vocab]` of the new decoder tokens `ids` (one length per row).
    pub fn decode(
        &self,
        state: &mut DecoderState,
        ids: &[Vec<u32>],
    ) -> Result<Tensor<3>, ModelError> {
        let past = state.len;
        let mut x = self.embed(&self.decoder, ids, past)?;
        let s = x.dims()[1];
        let causal = causal_mask(past, s, &x.device());
        for (i, layer) in self.decoder_layers.iter().enumerate() {
            let (k, v) = layer.self_attn.keys_values(x.clone());
            let (k, v) = state.append(i, k, v);
            let h = layer.self_attn.attend(x.clone(), k, v, causal.clone());
            x = layer.self_attn_layer_norm.forward(x + h);
            let (k, v) = state.cross_kv[i].clone();
            let h = layer
                .encoder_attn
                .attend(x.clone(), k, v, state.encoded.mask.clone());
            x = layer.encoder_attn_layer_norm.forward(x + h);
            let h = self.mlp(&layer.fc1, &layer.fc2, x.clone());
            x = layer.final_layer_norm.forward(x + h);
        }
        state.len += s;
        Ok(self.lm_head.logits(x) + self.final_logits_bias.val().unsqueeze::<3>())
    }
}

/// Reads a BART model by its HF tensor names.
pub fn build(config: &BartConfig, w: &WeightReader<'_>) -> Result<Bart, ModelError> {
    let d = config.d_model;
    let vocab = config.vocab_size;
    // Tied checkpoints keep one copy of the embedding, under whichever name was saved.
    let shared_name = [
        "model.shared.weight",
        "model.encoder.embed_tokens.weight",
        "model.decoder.embed_tokens.weight",
        "lm_head.weight",
    ]
    .into_iter()
    .find(|n| w.has(n))
    .unwrap_or("model.shared.weight");
    let shared = w.read_table(shared_name, [vocab, d])?;
    let lm_head = if w.has("lm_head.weight") && shared_name != "lm_head.weight" {
        w.read_table("lm_head.weight", [vocab, d])?
    } else {
        shared.clone()
    };
    let final_logits_bias = if w.has("final_logits_bias") {
        w.read::<2>("final_logits_bias", [1, vocab])?
            .reshape([vocab])
    } else {
        Tensor::zeros([vocab], &shared.device())
    };
    let attention = |p: &str, heads: usize| -> Result<Attention, ModelError> {
        Ok(Attention {
            q_proj: w.linear(&format!("{p}.q_proj"), d, d, true)?,
            k_proj: w.linear(&format!("{p}.k_proj"), d, d, true)?,
            v_proj: w.linear(&format!("{p}.v_proj"), d, d, true)?,
            out_proj: w.linear(&format!("{p}.out_proj"), d, d, true)?,
            num_heads: heads,
            head_dim: d / heads,
            scale: ((d / heads) as f64).powf(-0.5),
        })
    };
    let norm = |p: &str| -> Result<LayerNorm, ModelError> {
        Ok(LayerNorm::new(
            w.read(&format!("{p}.weight"), [d])?,
            w.read(&format!("{p}.bias"), [d])?,
            LN_EPS,
        ))
    };
    let embeddings = |p: &str| -> Result<BartEmbeddings, ModelError> {
        Ok(BartEmbeddings {
            embed_positions: Param::from_tensor(w.read(
                &format!("{p}.embed_positions.weight"),
                [config.max_position_embeddings + POSITION_OFFSET, d],
            )?),
            layernorm_embedding: norm(&format!("{p}.layernorm_embedding"))?,
        })
    };
    super::check_layers(w, config.encoder_layers, "encoder_layers", |i| {
        format!("model.encoder.layers.{i}.fc1.weight")
    })?;
    super::check_layers(w, config.decoder_layers, "decoder_layers", |i| {
        format!("model.decoder.layers.{i}.fc1.weight")
    })?;
    // The progress steps: the tables, each layer, and the rest.
    let steps = config.encoder_layers + config.decoder_layers + 2;
    w.built(1, steps);
    let mut encoder_layers = Vec::new();
    for i in 0..config.encoder_layers {
        let p = format!("model.encoder.layers.{i}");
        encoder_layers.push(BartEncoderLayer {
            self_attn: attention(&format!("{p}.self_attn"), config.encoder_attention_heads)?,
            self_attn_layer_norm: norm(&format!("{p}.self_attn_layer_norm"))?,
            fc1: w.linear(&format!("{p}.fc1"), d, config.encoder_ffn_dim, true)?,
            fc2: w.linear(&format!("{p}.fc2"), config.encoder_ffn_dim, d, true)?,
            final_layer_norm: norm(&format!("{p}.final_layer_norm"))?,
        });
        w.built(2 + i, steps);
    }
    let mut decoder_layers = Vec::new();
    for i in 0..config.decoder_layers {
        let p = format!("model.decoder.layers.{i}");
        let heads = config.decoder_attention_heads;
        decoder_layers.push(BartDecoderLayer {
            self_attn: attention(&format!("{p}.self_attn"), heads)?,
            self_attn_layer_norm: norm(&format!("{p}.self_attn_layer_norm"))?,
            encoder_attn: attention(&format!("{p}.encoder_attn"), heads)?,
            encoder_attn_layer_norm: norm(&format!("{p}.encoder_attn_layer_norm"))?,
            fc1: w.linear(&format!("{p}.fc1"), d, config.decoder_ffn_dim, true)?,
            fc2: w.linear(&format!("{p}.fc2"), config.decoder_ffn_dim, d, true)?,
            final_layer_norm: norm(&format!("{p}.final_layer_norm"))?,
        });
        w.built(2 + config.encoder_layers + i, steps);
    }
    let (encoder, decoder) = (embeddings("model.encoder")?, embeddings("model.decoder")?);
    w.built(steps, steps);
    Ok(Bart {
        shared,
        encoder,
        encoder_layers,
        decoder,
        decoder_layers,
        lm_head,
        final_logits_bias: Param::from_tensor(final_logits_bias),
        act: Activation::parse(&config.activation_function)
            .map_err(|reason| ModelError::Input(reason))?,
        config: config.clone(),
    })
}
