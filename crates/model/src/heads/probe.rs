//! The head-only classifier ("probe"): the frozen base model's hidden states at a few depths,
//! each mean-pooled over the text's tokens and concatenated, standardized, then one linear
//! softmax layer per question. The base model is never changed, so the features of a text
//! can be computed once and cached, and training is a convex fit that takes seconds on a
//! CPU (`train::probe`).
//!
//! Files: `classifier.json` ([`ProbeConfig`]) and `probe.safetensors` (f16):
//! - `feature_mean` `[features]` and `feature_scale` `[features]` (1/std, from training);
//! - `classifier.weight` `[questions·classes, features]` and `classifier.bias`
//!   `[questions·classes]`: the rows of question q are `q·classes .. (q+1)·classes`.

use std::path::Path;

use burn::tensor::{Tensor, TensorData};
use formats::Folder;
use serde::{Deserialize, Serialize};

use crate::ModelError;
use crate::cache::KvCache;
use crate::decoder::TokenBatch;
use crate::heads::lm::CausalLm;

pub const PROBE_KIND: &str = "probe";
pub const PROBE_FILE: &str = "probe.safetensors";
pub const CONFIG_FILE: &str = "classifier.json";

/// `classifier.json` of a probe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeConfig {
    /// Always [`PROBE_KIND`]; a stage-2 head's file has no `kind`.
    pub kind: String,
    pub dataset: String,
    pub labels: Vec<String>,
    /// Irf and MultiWD ask one of several questions about a post: one linear layer each,
    /// in this order. Empty for tasks with one question.
    #[serde(default)]
    pub questions: Vec<String>,
    /// Depths whose hidden states are pooled (HF's `hidden_states` numbering: the full depth
    /// is after the final norm).
    pub depths: Vec<usize>,
    pub hidden_size: usize,
    /// Tokens of the text kept (its start).
    pub max_length: usize,
    /// The base model's sha256 ([`formats::fingerprint::model_sha256`]).
    pub base_model_sha256: String,
    #[serde(default)]
    pub base_model: String,
    /// Validation and test figures, written by training (not read back).
    #[serde(default)]
    pub metrics: serde_json::Value,
    /// How it was made: command, commit, machine, data files, time.
    #[serde(default)]
    pub provenance: serde_json::Value,
}

impl ProbeConfig {
    pub fn features(&self) -> usize {
        self.depths.len() * self.hidden_size
    }

    pub fn groups(&self) -> usize {
        self.questions.len().max(1)
    }

    /// The linear layer for `question`: 0 for a one-question task, else the question's index
    /// (compared without case or surrounding space). `None` when the probe was not trained
    /// for that question.
    pub fn group_of(&self, question: &str) -> Option<usize> {
        if self.questions.is_empty() {
            return Some(0);
        }
        let norm = |s: &str| s.trim().to_lowercase();
        let q = norm(question);
        self.questions.iter().position(|k| norm(k) == q)
    }
}

/// A probe's weights on the host, in f32.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    pub mean: Vec<f32>,
    pub scale: Vec<f32>,
    /// `[groups·classes, features]`, row-major.
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
    pub classes: usize,
}

impl Probe {
    pub fn features(&self) -> usize {
        self.mean.len()
    }

    /// Class probabilities of one feature vector under linear layer `group`.
    pub fn probabilities(&self, features: &[f32], group: usize) -> Vec<f64> {
        let d = self.features();
        let z: Vec<f64> = features
            .iter()
            .zip(&self.mean)
            .zip(&self.scale)
            .map(|((&x, &m), &s)| ((x - m) * s) as f64)
            .collect();
        let logits: Vec<f64> = (0..self.classes)
            .map(|c| {
                let row = group * self.classes + c;
                let w = &self.weight[row * d..(row + 1) * d];
                self.bias[row] as f64 + w.iter().zip(&z).map(|(&w, z)| w as f64 * z).sum::<f64>()
            })
            .collect();
        crate::score::normalise(&logits)
    }
}

/// Mean-pooled hidden states of token rows at `depths`, for each cut in `cuts`: one row of
/// `cuts.len()·depths.len()·hidden` values per input row, cut-major (every depth of the
/// first cut, then of the next). The mean of cut `c` counts the row's first `min(c, len)`
/// tokens only. The model is causal, so those tokens' states are the ones the row cut to `c`
/// would give: one pass at the longest cut yields the features of every shorter cut.
/// `&[usize::MAX]` pools whole rows. The rows are left-padded into one batch.
pub fn pooled_features(
    lm: &CausalLm,
    rows: &[Vec<u32>],
    depths: &[usize],
    cuts: &[usize],
    pad_id: u32,
) -> Result<Vec<Vec<f32>>, ModelError> {
    let (pooled, width) = pooled_tensor(lm, rows, depths, cuts, pad_id)?;
    Ok(split_rows(&crate::io::values(pooled)?, width))
}

/// [`pooled_features`] with an asynchronous readback, for the browser (where a blocking
/// read of a WebGPU buffer is impossible).
pub async fn pooled_features_async(
    lm: &CausalLm,
    rows: &[Vec<u32>],
    depths: &[usize],
    cuts: &[usize],
    pad_id: u32,
) -> Result<Vec<Vec<f32>>, ModelError> {
    let (pooled, width) = pooled_tensor(lm, rows, depths, cuts, pad_id)?;
    Ok(split_rows(&crate::io::values_async(pooled).await?, width))
}

fn split_rows(flat: &[f32], width: usize) -> Vec<Vec<f32>> {
    flat.chunks(width.max(1)).map(<[f32]>::to_vec).collect()
}

/// The features of [`pooled_features`] as a `[rows, width]` tensor still on the device, and
/// the width.
fn pooled_tensor(
    lm: &CausalLm,
    rows: &[Vec<u32>],
    depths: &[usize],
    cuts: &[usize],
    pad_id: u32,
) -> Result<(Tensor<2>, usize), ModelError> {
    if let Some(i) = rows.iter().position(Vec::is_empty) {
        return Err(ModelError::Input(format!("row {i} has no tokens")));
    }
    if cuts.is_empty() || cuts.contains(&0) {
        return Err(ModelError::Input(format!(
            "pooling needs cuts of at least one token, got {cuts:?}"
        )));
    }
    let b = rows.len();
    let c = cuts.len();
    let (states, valid) = states_at_depths(lm, rows, depths, pad_id)?;
    let n = valid.first().map_or(0, Vec::len);
    // weights[row][cut][position]: 1/count over the row's first `cut` real tokens.
    let mut weights = Vec::with_capacity(b * c * n);
    for row in &valid {
        let real = row.iter().filter(|&&v| v).count();
        for &cut in cuts {
            let take = real.min(cut).max(1);
            let mut seen = 0;
            for &v in row {
                let w = if v && seen < take {
                    1.0 / take as f32
                } else {
                    0.0
                };
                seen += usize::from(v);
                weights.push(w);
            }
        }
    }
    let device = lm.model.embed_tokens.device();
    let weights = Tensor::<3>::from_data(TensorData::new(weights, [b, c, n]), &device);
    let h = lm.model.hidden_size();
    // [b, cuts, n] x [b, n, h] per depth, side by side: [b, cuts, depths·h].
    let pooled: Vec<Tensor<3>> = states
        .into_iter()
        .map(|s| weights.clone().matmul(s))
        .collect();
    let width = c * depths.len() * h;
    Ok((Tensor::cat(pooled, 2).reshape([b, width]), width))
}

/// The hidden states of token rows, left-padded into one batch, after the first `depth`
/// layers for each of `depths` (`[batch, longest, hidden]` each), and the padding mask.
pub fn states_at_depths(
    lm: &CausalLm,
    rows: &[Vec<u32>],
    depths: &[usize],
    pad_id: u32,
) -> Result<(Vec<Tensor<3>>, Vec<Vec<bool>>), ModelError> {
    let (ids, valid) = crate::generate::left_pad(rows, pad_id);
    let n = ids.first().map_or(0, Vec::len);
    let rope = lm.rope(n);
    let mut cache = KvCache::new(lm.model.layers.len());
    let states = lm.model.forward_depths(
        TokenBatch {
            ids: &ids,
            valid: &valid,
        },
        &rope,
        &mut cache,
        depths,
    )?;
    Ok((states, valid))
}

/// Writes `probe.safetensors` (f16) and `classifier.json` into `dir`, each atomically.
pub fn save_probe(probe: &Probe, config: &ProbeConfig, dir: &Path) -> Result<(), ModelError> {
    std::fs::create_dir_all(dir).map_err(|e| crate::io::io_err(dir, e))?;
    let d = probe.features();
    let rows = probe.bias.len();
    let tensors = [
        (
            "classifier.bias".to_string(),
            vec![rows],
            probe.bias.clone(),
        ),
        (
            "classifier.weight".to_string(),
            vec![rows, d],
            probe.weight.clone(),
        ),
        ("feature_mean".to_string(), vec![d], probe.mean.clone()),
        ("feature_scale".to_string(), vec![d], probe.scale.clone()),
    ];
    crate::io::write_safetensors_f16(&dir.join(PROBE_FILE), &tensors)?;
    let path = dir.join(CONFIG_FILE);
    let text = serde_json::to_string_pretty(config).map_err(|e| ModelError::Config {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    crate::io::write_atomic(&path, format!("{text}\n").as_bytes())
}

/// Whether `classifier.json` in `dir` describes a probe (rather than a stage-2 head).
pub fn is_probe(dir: &Folder) -> Result<bool, ModelError> {
    let path = dir.path(CONFIG_FILE);
    let text = dir.read_string(CONFIG_FILE)?;
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| ModelError::Config {
        path,
        reason: format!("not JSON: {e}"),
    })?;
    Ok(value.get("kind").and_then(|k| k.as_str()) == Some(PROBE_KIND))
}

/// What a loaded probe must fit: the base model's sha256 and width, and the task's labels.
pub struct ProbeExpect<'a> {
    pub model_sha256: &'a str,
    pub hidden_size: usize,
    pub dataset: &'a str,
    pub classes: usize,
}

/// Reads a probe saved by [`save_probe`], refusing one made for another base model, another
/// task or label count, or whose tensors disagree with its `classifier.json`.
pub fn load_probe(
    dir: &Folder,
    expect: &ProbeExpect<'_>,
) -> Result<(Probe, ProbeConfig), ModelError> {
    let cfg_path = dir.path(CONFIG_FILE);
    let bad = |reason: String| ModelError::Config {
        path: cfg_path.clone(),
        reason,
    };
    let text = dir.read_string(CONFIG_FILE)?;
    let config: ProbeConfig = serde_json::from_str(&text)
        .map_err(|e| bad(format!("not a probe's classifier.json: {e}")))?;
    if config.kind != PROBE_KIND {
        return Err(bad(format!(
            "kind is `{}`, expected `{PROBE_KIND}`",
            config.kind
        )));
    }
    if !config.dataset.eq_ignore_ascii_case(expect.dataset) {
        return Err(bad(format!(
            "this classifier is for {}, not {}",
            config.dataset, expect.dataset
        )));
    }
    if config.labels.len() != expect.classes {
        return Err(bad(format!(
            "lists {} labels, but {} has {}",
            config.labels.len(),
            expect.dataset,
            expect.classes
        )));
    }
    if config.base_model_sha256 != expect.model_sha256 {
        return Err(bad(format!(
            "trained on the base model with sha256 {}, but the loaded model's sha256 is {}",
            config.base_model_sha256, expect.model_sha256
        )));
    }
    if config.hidden_size != expect.hidden_size
        || config.depths.is_empty()
        || config.max_length == 0
    {
        return Err(bad(format!(
            "hidden size {}, {} depths, max length {}: the model's hidden size is {}",
            config.hidden_size,
            config.depths.len(),
            config.max_length,
            expect.hidden_size
        )));
    }
    let file = dir.path(PROBE_FILE);
    let source = formats::safetensors::SafetensorsSource::open_file(dir, PROBE_FILE)?;
    let read = |name: &str, shape: Vec<usize>| -> Result<Vec<f32>, ModelError> {
        let values = crate::io::read_shaped(&source, &file, name, shape)?;
        if values.iter().any(|v| !v.is_finite()) {
            return Err(ModelError::Config {
                path: file.clone(),
                reason: format!("tensor `{name}` holds a non-finite value"),
            });
        }
        Ok(values)
    };
    let d = config.features();
    let rows = config.groups() * expect.classes;
    let probe = Probe {
        mean: read("feature_mean", vec![d])?,
        scale: read("feature_scale", vec![d])?,
        weight: read("classifier.weight", vec![rows, d])?,
        bias: read("classifier.bias", vec![rows])?,
        classes: expect.classes,
    };
    Ok((probe, config))
}
