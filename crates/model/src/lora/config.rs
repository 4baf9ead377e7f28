//! `adapter_config.json`, with PEFT's keys.

use serde::{Deserialize, Serialize};

/// The projections of a decoder layer, by their HF names (PEFT's `target_modules`).
pub const ALL_LINEAR: [&str; 7] = [
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoraConfig {
    #[serde(default = "lora_type")]
    pub peft_type: String,
    pub r: usize,
    pub lora_alpha: f64,
    #[serde(default)]
    pub lora_dropout: f64,
    /// Module names (`q_proj`, ...) or PEFT's `"all-linear"`.
    pub target_modules: TargetModules,
    #[serde(default)]
    pub use_rslora: bool,
    #[serde(default)]
    pub fan_in_fan_out: bool,
    #[serde(default = "bias_none")]
    pub bias: String,
    #[serde(default)]
    pub task_type: Option<String>,
    #[serde(default)]
    pub base_model_name_or_path: Option<String>,
    /// Per-module ranks and alphas (PEFT); only empty maps are supported.
    #[serde(default)]
    pub rank_pattern: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    pub alpha_pattern: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    pub modules_to_save: Option<Vec<String>>,
    #[serde(default)]
    pub use_dora: bool,
    #[serde(default)]
    pub layers_to_transform: Option<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TargetModules {
    List(Vec<String>),
    One(String),
}

fn lora_type() -> String {
    "LORA".into()
}
fn bias_none() -> String {
    "none".into()
}

impl LoraConfig {
    /// A config for `targets` (`all` or a list of module names).
    pub fn new(r: usize, alpha: f64, dropout: f64, targets: &[&str]) -> Self {
        let list = if targets == ["all"] {
            ALL_LINEAR.to_vec()
        } else {
            targets.to_vec()
        };
        Self {
            peft_type: lora_type(),
            r,
            lora_alpha: alpha,
            lora_dropout: dropout,
            target_modules: TargetModules::List(list.iter().map(|s| s.to_string()).collect()),
            use_rslora: false,
            fan_in_fan_out: false,
            bias: bias_none(),
            task_type: Some("CAUSAL_LM".into()),
            base_model_name_or_path: None,
            rank_pattern: Default::default(),
            alpha_pattern: Default::default(),
            modules_to_save: None,
            use_dora: false,
            layers_to_transform: None,
        }
    }

    /// `alpha / r`, or `alpha / sqrt(r)` with rsLoRA, as PEFT.
    pub fn scaling(&self) -> f64 {
        if self.use_rslora {
            self.lora_alpha / (self.r as f64).sqrt()
        } else {
            self.lora_alpha / self.r as f64
        }
    }

    /// Whether the layer's projection `name` (`q_proj`, ...) gets an adapter.
    pub fn targets(&self, name: &str) -> bool {
        match &self.target_modules {
            TargetModules::List(list) => list
                .iter()
                .any(|t| t == name || name.ends_with(&format!(".{t}"))),
            TargetModules::One(s) if s == "all-linear" => ALL_LINEAR.contains(&name),
            TargetModules::One(s) => s == name,
        }
    }

    /// PEFT's `layers_to_transform`: `None` (every layer), one index or a list.
    pub fn layers(&self) -> Result<Option<Vec<usize>>, String> {
        let bad =
            || "layers_to_transform must be null, a layer index or a list of them".to_string();
        match &self.layers_to_transform {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::Number(n)) => {
                Ok(Some(vec![n.as_u64().ok_or_else(bad)? as usize]))
            }
            Some(serde_json::Value::Array(list)) => list
                .iter()
                .map(|v| v.as_u64().map(|n| n as usize).ok_or_else(bad))
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(_) => Err(bad()),
        }
    }

    /// Only layers `layers` get adapters (PEFT's `layers_to_transform`).
    pub fn with_layers(mut self, layers: &[usize]) -> Self {
        self.layers_to_transform = Some(serde_json::json!(layers));
        self
    }

    /// Whether projection `name` of layer `layer` gets an adapter.
    pub fn applies(&self, layer: usize, name: &str) -> bool {
        self.targets(name)
            && self
                .layers()
                .ok()
                .flatten()
                .is_none_or(|list| list.contains(&layer))
    }

    /// What this runtime cannot honour, as a reason.
    pub fn validate(&self) -> Result<(), String> {
        if self.peft_type != "LORA" {
            return Err(format!("peft_type `{}` is not LORA", self.peft_type));
        }
        if self.r == 0 {
            return Err("r must be at least 1".into());
        }
        if self.fan_in_fan_out {
            return Err("fan_in_fan_out adapters (GPT-2 Conv1D) are not supported".into());
        }
        if self.bias != "none" {
            return Err(format!(
                "bias `{}` is not supported (only `none`)",
                self.bias
            ));
        }
        if self.use_dora {
            return Err("DoRA adapters (use_dora) are not supported".into());
        }
        self.layers()?;
        if !self.rank_pattern.is_empty() || !self.alpha_pattern.is_empty() {
            return Err("rank_pattern / alpha_pattern are not supported".into());
        }
        if !(0.0..1.0).contains(&self.lora_dropout) {
            return Err(format!(
                "lora_dropout {} must be in [0, 1)",
                self.lora_dropout
            ));
        }
        Ok(())
    }
}
