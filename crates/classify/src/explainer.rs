//! The shipped explainer (`classifiers/explainer/`): a stage-1 LoRA adapter in PEFT's format
//! and f16, made by `train sft --ship`, with `explainer.json` saying which base model (its
//! sha256) it was trained on, how, and its validation answer loss. The CLI and the page put
//! it on a copy of the model (sharing its weights) for explanations only, when it fits.

use formats::Folder;
use model::CausalLm;
use serde::{Deserialize, Serialize};

use crate::ClassifyError;

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
    /// Training wall time, every invocation of a resumed run included; `null` when the
    /// checkpoint it resumed from did not record its time.
    pub seconds: Option<f64>,
    pub device: String,
    pub date: String,
}

impl ExplainerInfo {
    /// Reads `explainer.json` of `folder`, naming the file in any error.
    pub fn read(folder: &Folder) -> Result<Self, ClassifyError> {
        let path = folder.path("explainer.json");
        let bad = |reason: String| ClassifyError::Classifier {
            path: path.clone(),
            reason,
        };
        let text = folder.read_string("explainer.json")?;
        let info: Self = serde_json::from_str(&text)
            .map_err(|e| bad(format!("not an explainer description: {e}")))?;
        if info.kind != "explainer" {
            return Err(bad(format!(
                "\"kind\" is {:?}, not \"explainer\"",
                info.kind
            )));
        }
        Ok(info)
    }

    /// One line for people: where it is and what it achieved.
    pub fn describe(&self, source: &str) -> String {
        let loss = match (self.val_answer_loss_before, self.val_answer_loss) {
            (Some(a), Some(b)) => format!(", validation answer loss {a:.3} → {b:.3}"),
            (None, Some(b)) => format!(", validation answer loss {b:.3}"),
            _ => String::new(),
        };
        format!(
            "{source} (stage-1 LoRA trained on {} examples, {} updates{loss})",
            self.train_examples, self.steps
        )
    }
}

/// The explainer in `folder` for the model `lm` whose sha256 is `model_sha`: a copy of `lm`
/// (sharing its weights) with the explainer's adapter, or, when it was made for another
/// model, why it was passed over. A broken folder is an error.
pub fn attach(
    lm: &CausalLm,
    folder: &Folder,
    model_sha: &str,
) -> Result<Result<(CausalLm, ExplainerInfo), String>, ClassifyError> {
    let info = ExplainerInfo::read(folder)?;
    if info.model_sha256 != model_sha {
        return Ok(Err(format!(
            "{} was trained on another base model ({}), not this one",
            folder.root().display(),
            info.model
        )));
    }
    let mut tuned = lm.clone();
    model::lora::peft_io::load_adapter(&mut tuned, folder)?;
    Ok(Ok((tuned, info)))
}
