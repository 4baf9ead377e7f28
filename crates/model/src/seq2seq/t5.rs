//! T5 (`T5ForConditionalGeneration`, as MentalT5), v1.0 and v1.1, with HF names: relative
//! position buckets computed in each stack's first block and shared by the rest
//! (bidirectional in the encoder, causal in the decoder), RMS-style `T5LayerNorm` without
//! bias, unscaled attention scores, ReLU or gated-GELU feed-forward, and a tied head
//! rescaled by `d_model^-0.5` or an untied one.

use burn::module::{Module, Param};
use burn::tensor::{Device, Tensor, TensorData};
use serde::Deserialize;

use super::Activation;
use super::layers::{Attention, DecoderState, Encoded, causal_mask, flat_ids, pad_right};
use crate::ModelError;
use crate::linear::Linear;
use crate::load::WeightReader;
use crate::norm::RmsNorm;
use crate::vocab::VocabTable;

/// `config.json` of a T5 model; field names are HF's keys.
#[derive(Debug, Clone, Deserialize)]
pub struct T5Config {
    pub vocab_size: usize,
    pub d_model: usize,
    pub d_kv: usize,
    pub d_ff: usize,
    pub num_layers: usize,
    /// Absent: as many as the encoder.
    #[serde(default)]
    pub num_decoder_layers: Option<usize>,
    pub num_heads: usize,
    #[serde(default = "buckets")]
    pub relative_attention_num_buckets: usize,
    #[serde(default = "max_distance")]
    pub relative_attention_max_distance: usize,
    #[serde(default = "eps")]
    pub layer_norm_epsilon: f64,
    /// `relu` (v1.0), `gated-gelu` (v1.1, tanh GELU), or `[gated-]{relu,gelu,silu}`.
    #[serde(default = "relu")]
    pub feed_forward_proj: String,
    #[serde(default = "yes")]
    pub tie_word_embeddings: bool,
    #[serde(default)]
    pub pad_token_id: u32,
    #[serde(default = "one")]
    pub eos_token_id: u32,
    /// Absent: the pad token, as T5 starts decoding.
    #[serde(default)]
    pub decoder_start_token_id: Option<u32>,
}

fn buckets() -> usize {
    32
}
fn max_distance() -> usize {
    128
}
fn eps() -> f64 {
    1e-6
}
fn relu() -> String {
    "relu".into()
}
fn yes() -> bool {
    true
}
fn one() -> u32 {
    1
}

impl T5Config {
    pub fn decoder_layers(&self) -> usize {
        self.num_decoder_layers.unwrap_or(self.num_layers)
    }

    /// The activation and whether the feed-forward is gated, as `T5Config` derives them
    /// (`gated-gelu` means the tanh approximation, `gelu_new`).
    pub fn feed_forward(&self) -> Result<(Activation, bool), String> {
        let proj = self.feed_forward_proj.as_str();
        let (gated, act) = match proj.strip_prefix("gated-") {
            Some(act) => (true, act),
            None => (false, proj),
        };
        let act = if proj == "gated-gelu" {
            "gelu_new"
        } else {
            act
        };
        if proj.split('-').count() > 2 || act.is_empty() {
            return Err(format!(
                "feed_forward_proj `{proj}` is not `ACT` or `gated-ACT`"
            ));
        }
        Ok((Activation::parse(act)?, gated))
    }

    pub fn validate(&self) -> Result<(), String> {
        for (value, key) in [
            (self.vocab_size, "vocab_size"),
            (self.d_model, "d_model"),
            (self.d_kv, "d_kv"),
            (self.d_ff, "d_ff"),
            (self.num_heads, "num_heads"),
        ] {
            if value == 0 {
                return Err(format!("{key} must be positive"));
            }
        }
        if self.relative_attention_num_buckets < 4 {
            return Err(format!(
                "relative_attention_num_buckets ({}) must be at least 4",
                self.relative_attention_num_buckets
            ));
        }
        self.feed_forward().map(|_| ())
    }
}

/// `DenseReluDense`: `wo(act(wi(x)))`, or `wo(act(wi_0(x)) * wi_1(x))` when gated.
#[derive(Module, Debug)]
pub enum FeedForward {
    Plain(PlainFf),
    Gated(GatedFf),
}

#[derive(Module, Debug)]
pub struct PlainFf {
    pub wi: Linear,
    pub wo: Linear,
}

#[derive(Module, Debug)]
pub struct GatedFf {
    pub wi_0: Linear,
    pub wi_1: Linear,
    pub wo: Linear,
}

impl FeedForward {
    fn forward(&self, x: Tensor<3>, act: Activation) -> Tensor<3> {
        match self {
            FeedForward::Plain(f) => f.wo.forward(act.apply(f.wi.forward(x))),
            FeedForward::Gated(f) => {
                f.wo.forward(act.apply(f.wi_0.forward(x.clone())) * f.wi_1.forward(x))
            }
        }
    }
}

/// One block: `layer.0` self-attention, (decoder) `layer.1` cross-attention, and the
/// feed-forward, each behind its own pre-norm and added back.
#[derive(Module, Debug)]
pub struct T5Block {
    pub self_attention: Attention,
    pub self_attention_norm: RmsNorm,
    pub cross_attention: Option<CrossAttention>,
    pub ff: FeedForward,
    pub ff_norm: RmsNorm,
}

/// `layer.1` of a decoder block: `EncDecAttention` behind its norm.
#[derive(Module, Debug)]
pub struct CrossAttention {
    pub attention: Attention,
    pub layer_norm: RmsNorm,
}

/// A stack: its blocks, the first block's relative-position table and the final norm.
#[derive(Module, Debug)]
pub struct T5Stack {
    pub block: Vec<T5Block>,
    /// `[num_buckets, num_heads]`: `block.0.layer.0.SelfAttention.relative_attention_bias`.
    pub relative_attention_bias: Param<Tensor<2>>,
    pub final_layer_norm: RmsNorm,
}

#[derive(Module, Debug)]
pub struct T5 {
    pub shared: VocabTable,
    pub encoder: T5Stack,
    pub decoder: T5Stack,
    pub lm_head: VocabTable,
    #[module(skip)]
    pub act: Activation,
    #[module(skip)]
    pub config: T5Config,
}

/// T5's bucket of a relative position (`key - query`), as `_relative_position_bucket`
/// computes it, in f32 as torch does.
pub fn relative_bucket(
    relative: i64,
    bidirectional: bool,
    num_buckets: usize,
    max_distance: usize,
) -> usize {
    let mut buckets = num_buckets as i64;
    let mut bucket = 0i64;
    let distance = if bidirectional {
        buckets /= 2;
        if relative > 0 {
            bucket += buckets;
        }
        relative.abs()
    } else {
        (-relative).max(0)
    };
    let max_exact = buckets / 2;
    if distance < max_exact {
        return (bucket + distance) as usize;
    }
    let divisor = ((max_distance as f64) / (max_exact as f64)).ln() as f32;
    let scaled =
        ((distance as f32) / (max_exact as f32)).ln() / divisor * ((buckets - max_exact) as f32);
    let large = (max_exact + scaled as i64).min(buckets - 1);
    (bucket + large) as usize
}

impl T5 {
    /// `[1, heads, seq, total]` position bias for queries at `past..past + seq` over keys
    /// `0..total`.
    fn position_bias(
        &self,
        stack: &T5Stack,
        past: usize,
        seq: usize,
        total: usize,
        bidirectional: bool,
        device: &Device,
    ) -> Tensor<4> {
        let c = &self.config;
        let mut rows = Vec::with_capacity(seq * total);
        for q in past..past + seq {
            for k in 0..total {
                rows.push(relative_bucket(
                    k as i64 - q as i64,
                    bidirectional,
                    c.relative_attention_num_buckets,
                    c.relative_attention_max_distance,
                ) as i64);
            }
        }
        let rows = Tensor::from_data(TensorData::new(rows, [seq * total]), device);
        let heads = c.num_heads;
        stack
            .relative_attention_bias
            .val()
            .select(0, rows)
            .reshape([seq, total, heads])
            .permute([2, 0, 1])
            .unsqueeze::<4>()
    }

    fn embed(&self, ids: &[Vec<u32>]) -> Tensor<3> {
        let (b, s) = (ids.len(), ids.first().map_or(0, Vec::len));
        self.shared
            .lookup(flat_ids(ids))
            .reshape([b, s, self.config.d_model])
    }

    pub fn encode(&self, ids: &[Vec<u32>]) -> Result<Encoded, ModelError> {
        let device = self.shared.device();
        let (padded, mask) = pad_right(ids, self.config.pad_token_id, &device);
        let s = padded.first().map_or(0, Vec::len);
        let mut x = self.embed(&padded);
        let bias = self.position_bias(&self.encoder, 0, s, s, true, &device) + mask.clone();
        for block in &self.encoder.block {
            let h = block.self_attention_norm.forward(x.clone());
            let (k, v) = block.self_attention.keys_values(h.clone());
            x = x + block.self_attention.attend(h, k, v, bias.clone());
            let h = block.ff_norm.forward(x.clone());
            x = x + block.ff.forward(h, self.act);
        }
        Ok(Encoded {
            hidden: self.encoder.final_layer_norm.forward(x),
            mask,
        })
    }

    pub fn start(&self, encoded: Encoded) -> DecoderState {
        let cross_kv = self
            .decoder
            .block
            .iter()
            .filter_map(|b| b.cross_attention.as_ref())
            .map(|c| c.attention.keys_values(encoded.hidden.clone()))
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
        let mut x = self.embed(ids);
        let s = x.dims()[1];
        let device = x.device();
        let bias = self.position_bias(&self.decoder, past, s, past + s, false, &device)
            + causal_mask(past, s, &device);
        for (i, block) in self.decoder.block.iter().enumerate() {
            let h = block.self_attention_norm.forward(x.clone());
            let (k, v) = block.self_attention.keys_values(h.clone());
            let (k, v) = state.append(i, k, v);
            x = x + block.self_attention.attend(h, k, v, bias.clone());
            if let Some(cross) = &block.cross_attention {
                let h = cross.layer_norm.forward(x.clone());
                let (k, v) = state.cross_kv[i].clone();
                x = x + cross.attention.attend(h, k, v, state.encoded.mask.clone());
            }
            let h = block.ff_norm.forward(x.clone());
            x = x + block.ff.forward(h, self.act);
        }
        state.len += s;
        let mut x = self.decoder.final_layer_norm.forward(x);
        if self.config.tie_word_embeddings {
            // The tied head sees the output rescaled, as T5's Mesh TensorFlow code did.
            x = x * (self.config.d_model as f64).powf(-0.5);
        }
        Ok(self.lm_head.logits(x))
    }
}

/// Reads a T5 model by its HF tensor names.
pub fn build(config: &T5Config, w: &WeightReader<'_>) -> Result<T5, ModelError> {
    let (d, inner) = (config.d_model, config.num_heads * config.d_kv);
    let eps = config.layer_norm_epsilon;
    let (act, gated) = config.feed_forward().map_err(ModelError::Input)?;
    let shared_name = ["shared.weight", "encoder.embed_tokens.weight"]
        .into_iter()
        .find(|n| w.has(n))
        .unwrap_or("shared.weight");
    let shared = w.read_table(shared_name, [config.vocab_size, d])?;
    let lm_head = if config.tie_word_embeddings {
        shared.clone()
    } else {
        w.read_table("lm_head.weight", [config.vocab_size, d])?
    };
    let attention = |p: &str| -> Result<Attention, ModelError> {
        Ok(Attention {
            q_proj: w.linear(&format!("{p}.q"), d, inner, false)?,
            k_proj: w.linear(&format!("{p}.k"), d, inner, false)?,
            v_proj: w.linear(&format!("{p}.v"), d, inner, false)?,
            out_proj: w.linear(&format!("{p}.o"), inner, d, false)?,
            num_heads: config.num_heads,
            head_dim: config.d_kv,
            scale: 1.0,
        })
    };
    let ff = |p: &str| -> Result<FeedForward, ModelError> {
        let p = format!("{p}.DenseReluDense");
        Ok(if gated {
            FeedForward::Gated(GatedFf {
                wi_0: w.linear(&format!("{p}.wi_0"), d, config.d_ff, false)?,
                wi_1: w.linear(&format!("{p}.wi_1"), d, config.d_ff, false)?,
                wo: w.linear(&format!("{p}.wo"), config.d_ff, d, false)?,
            })
        } else {
            FeedForward::Plain(PlainFf {
                wi: w.linear(&format!("{p}.wi"), d, config.d_ff, false)?,
                wo: w.linear(&format!("{p}.wo"), config.d_ff, d, false)?,
            })
        })
    };
    super::check_layers(w, config.num_layers, "num_layers", |i| {
        format!("encoder.block.{i}.layer.0.layer_norm.weight")
    })?;
    super::check_layers(w, config.decoder_layers(), "num_decoder_layers", |i| {
        format!("decoder.block.{i}.layer.0.layer_norm.weight")
    })?;
    // The progress steps: the tables, each layer of both stacks, and the rest.
    let steps = config.num_layers + config.decoder_layers() + 2;
    w.built(1, steps);
    let stack = |name: &str, layers: usize, decoder: bool| -> Result<T5Stack, ModelError> {
        // The layers built before this stack's.
        let before = if decoder { config.num_layers } else { 0 };
        let mut block = Vec::new();
        for i in 0..layers {
            let p = format!("{name}.block.{i}.layer");
            let ff_layer = if decoder { 2 } else { 1 };
            block.push(T5Block {
                self_attention: attention(&format!("{p}.0.SelfAttention"))?,
                self_attention_norm: w.norm(&format!("{p}.0.layer_norm.weight"), d, eps)?,
                cross_attention: if decoder {
                    Some(CrossAttention {
                        attention: attention(&format!("{p}.1.EncDecAttention"))?,
                        layer_norm: w.norm(&format!("{p}.1.layer_norm.weight"), d, eps)?,
                    })
                } else {
                    None
                },
                ff: ff(&format!("{p}.{ff_layer}"))?,
                ff_norm: w.norm(&format!("{p}.{ff_layer}.layer_norm.weight"), d, eps)?,
            });
            w.built(2 + before + i, steps);
        }
        let table = format!("{name}.block.0.layer.0.SelfAttention.relative_attention_bias.weight");
        Ok(T5Stack {
            block,
            relative_attention_bias: Param::from_tensor(w.read(
                &table,
                [config.relative_attention_num_buckets, config.num_heads],
            )?),
            final_layer_norm: w.norm(&format!("{name}.final_layer_norm.weight"), d, eps)?,
        })
    };
    let (encoder, decoder) = (
        stack("encoder", config.num_layers, false)?,
        stack("decoder", config.decoder_layers(), true)?,
    );
    w.built(steps, steps);
    Ok(T5 {
        encoder,
        decoder,
        shared,
        lm_head,
        act,
        config: config.clone(),
    })
}
