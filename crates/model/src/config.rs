//! The model configuration, with HF `config.json` keys as field names.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::ModelError;

/// Which family of decoder: they differ only in the q/k/v biases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelType {
    /// Qwen1.5, Qwen2, Qwen2.5 (`Qwen2ForCausalLM`): q/k/v biases.
    Qwen2,
    /// Llama, SmolLM2: no biases unless `attention_bias`.
    Llama,
}

/// `eos_token_id` is an integer or a list in HF configs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TokenIds {
    One(u32),
    Many(Vec<u32>),
}

impl TokenIds {
    pub fn to_vec(&self) -> Vec<u32> {
        match self {
            Self::One(id) => vec![*id],
            Self::Many(ids) => ids.clone(),
        }
    }
}

/// transformers 5 writes `rope_parameters` instead of a top-level `rope_theta`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RopeParameters {
    #[serde(default)]
    pub rope_theta: Option<f64>,
    #[serde(default)]
    pub rope_type: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    pub model_type: ModelType,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    /// Absent means no grouped-query attention (Qwen1.5).
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    /// Absent means `hidden_size / num_attention_heads`.
    #[serde(default)]
    pub head_dim: Option<usize>,
    #[serde(default = "default_eps")]
    pub rms_norm_eps: f64,
    #[serde(default)]
    pub rope_theta: Option<f64>,
    #[serde(default)]
    pub rope_parameters: Option<RopeParameters>,
    #[serde(default)]
    pub rope_scaling: Option<serde_json::Value>,
    #[serde(default = "default_max_pos")]
    pub max_position_embeddings: usize,
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// Llama's switch for q/k/v/o biases; Qwen2 always has q/k/v biases.
    #[serde(default)]
    pub attention_bias: bool,
    #[serde(default = "default_act")]
    pub hidden_act: String,
    #[serde(default)]
    pub bos_token_id: Option<u32>,
    #[serde(default)]
    pub eos_token_id: Option<TokenIds>,
}

fn default_eps() -> f64 {
    1e-6
}
fn default_max_pos() -> usize {
    32768
}
fn default_act() -> String {
    "silu".into()
}

impl ModelConfig {
    /// Reads and checks `config.json` (a folder or the file itself).
    pub fn from_file(path: &Path) -> Result<Self, ModelError> {
        let file = if path.is_dir() {
            path.join("config.json")
        } else {
            path.to_path_buf()
        };
        let text = std::fs::read_to_string(&file)
            .map_err(|e| ModelError::Format(formats::FormatError::io(&file, e)))?;
        Self::from_json(&text, file)
    }

    /// `config.json` of a folder on disk or in memory.
    pub fn from_folder(folder: &formats::Folder) -> Result<Self, ModelError> {
        let text = folder.read_string("config.json")?;
        Self::from_json(&text, folder.path("config.json"))
    }

    /// Parses and checks the text of a `config.json`; `file` names it in messages.
    pub fn from_json(text: &str, file: std::path::PathBuf) -> Result<Self, ModelError> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| ModelError::Config {
                path: file.clone(),
                reason: e.to_string(),
            })?;
        let model_type = value
            .get("model_type")
            .and_then(|v| v.as_str())
            .unwrap_or("<missing>");
        if !matches!(model_type, "qwen2" | "llama") {
            return Err(ModelError::UnknownModelType {
                path: file,
                model_type: model_type.to_string(),
            });
        }
        let config: Self = serde_json::from_value(value).map_err(|e| ModelError::Config {
            path: file.clone(),
            reason: e.to_string(),
        })?;
        config
            .validate()
            .map_err(|reason| ModelError::Config { path: file, reason })?;
        Ok(config)
    }

    /// Internal consistency; the reason names the offending keys.
    pub fn validate(&self) -> Result<(), String> {
        let kv = self.kv_heads();
        if self.num_attention_heads == 0 || kv == 0 || !self.num_attention_heads.is_multiple_of(kv)
        {
            return Err(format!(
                "num_attention_heads ({}) must be a positive multiple of num_key_value_heads ({kv})",
                self.num_attention_heads
            ));
        }
        if self.head_dim.is_none() && !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return Err(format!(
                "hidden_size ({}) is not divisible by num_attention_heads ({})",
                self.hidden_size, self.num_attention_heads
            ));
        }
        if !self.head_dim().is_multiple_of(2) {
            return Err(format!(
                "head_dim ({}) must be even for rotary embeddings",
                self.head_dim()
            ));
        }
        if self.hidden_act != "silu" {
            return Err(format!(
                "hidden_act `{}` is not supported (only silu)",
                self.hidden_act
            ));
        }
        if let Some(scaling) = &self.rope_scaling
            && !scaling.is_null()
        {
            let kind = scaling
                .get("rope_type")
                .or_else(|| scaling.get("type"))
                .and_then(|v| v.as_str());
            if kind != Some("default") {
                return Err(format!("rope_scaling {scaling} is not supported"));
            }
        }
        if let Some(p) = &self.rope_parameters
            && p.rope_type.as_deref().is_some_and(|t| t != "default")
        {
            return Err(format!("rope type {:?} is not supported", p.rope_type));
        }
        Ok(())
    }

    pub fn kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    pub fn head_dim(&self) -> usize {
        self.head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads.max(1))
    }

    pub fn rope_theta(&self) -> f64 {
        self.rope_theta
            .or_else(|| self.rope_parameters.as_ref().and_then(|p| p.rope_theta))
            .unwrap_or(10000.0)
    }

    /// Whether q/k/v carry biases: always for Qwen2, by `attention_bias` for Llama.
    pub fn qkv_bias(&self) -> bool {
        self.model_type == ModelType::Qwen2 || self.attention_bias
    }

    /// Llama puts a bias on o_proj too when `attention_bias` is set; Qwen2 never does.
    pub fn o_bias(&self) -> bool {
        self.model_type == ModelType::Llama && self.attention_bias
    }

    pub fn eos_ids(&self) -> Vec<u32> {
        self.eos_token_id
            .as_ref()
            .map(TokenIds::to_vec)
            .unwrap_or_default()
    }
}
