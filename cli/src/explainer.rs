//! The shipped explainer (`classifiers/explainer/`): a stage-1 LoRA adapter, in PEFT's format
//! and f16, made by `train sft --ship`, with `explainer.json` saying which base model (its
//! sha256) it was trained on, how, and its validation answer loss. `classify --explain` and
//! `eval --mode generate` use it when it fits the model and no `--adapter` is given.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// Its folder under the shipped classifiers.
pub const FOLDER: &str = "explainer";

/// `explainer.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExplainerInfo {
    /// Always "explainer".
    pub kind: String,
    /// sha256 of the base model it was trained on (`formats::fingerprint`).
    pub model_sha256: String,
    /// The base model's file or folder name, for people.
    pub model: String,
    /// The command that made it.
    pub command: String,
    /// The training data: the folder, the sets and their example counts, and the selection
    /// report when the folder is a `select` output.
    pub data: serde_json::Value,
    /// Mean answer-token loss (nats) on the validation examples after the last update.
    pub val_answer_loss: Option<f64>,
    /// The same before training (the base model's).
    pub val_answer_loss_before: Option<f64>,
    pub train_examples: usize,
    pub val_examples: usize,
    pub steps: usize,
    /// LoRA on the top k layers (0: every layer).
    pub top_k: usize,
    pub seconds: f64,
    pub device: String,
    pub date: String,
}

impl ExplainerInfo {
    /// One line for people: where it is and what it achieved.
    pub fn describe(&self, dir: &Path) -> String {
        let loss = match (self.val_answer_loss_before, self.val_answer_loss) {
            (Some(a), Some(b)) => format!(", validation answer loss {a:.3} → {b:.3}"),
            (None, Some(b)) => format!(", validation answer loss {b:.3}"),
            _ => String::new(),
        };
        format!(
            "{} (stage-1 LoRA trained on {} examples, {} updates{loss})",
            dir.display(),
            self.train_examples,
            self.steps
        )
    }
}

/// Reads `dir/explainer.json`, naming the file in any error.
pub fn read_info(dir: &Path) -> Result<ExplainerInfo> {
    let path = dir.join("explainer.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let info: ExplainerInfo = serde_json::from_str(&text)
        .with_context(|| format!("{}: not an explainer description", path.display()))?;
    if info.kind != "explainer" {
        anyhow::bail!(
            "{}: \"kind\" is {:?}, not \"explainer\"",
            path.display(),
            info.kind
        );
    }
    Ok(info)
}

/// What to explain with, when no `--adapter` was given.
pub enum Choice {
    /// The shipped explainer fits the model.
    Shipped(PathBuf, ExplainerInfo),
    /// None applies; the reason, for people.
    Untuned(String),
}

/// The shipped explainer under `root` (the shipped classifiers' folder) if it was made for
/// the model whose sha256 is `model_sha`.
pub fn choose(root: Option<&Path>, model_sha: impl FnOnce() -> Result<String>) -> Result<Choice> {
    let Some(dir) = root
        .map(|r| r.join(FOLDER))
        .filter(|d| d.join("explainer.json").is_file())
    else {
        return Ok(Choice::Untuned(
            "no trained explainer is shipped here".into(),
        ));
    };
    let info = read_info(&dir)?;
    let sha = model_sha()?;
    if info.model_sha256 != sha {
        return Ok(Choice::Untuned(format!(
            "{} was trained on another base model ({}), not this one",
            dir.display(),
            info.model
        )));
    }
    Ok(Choice::Shipped(dir, info))
}

/// Puts the explainer's adapter on `lm` (unmerged).
pub fn attach(lm: &mut model::CausalLm, dir: &Path) -> Result<()> {
    model::lora::peft_io::load_adapter(lm, &formats::Folder::disk(dir))
        .with_context(|| format!("loading the explainer in {}", dir.display()))?;
    Ok(())
}
