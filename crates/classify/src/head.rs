//! A stage-2 classifier: the model (with any stage-1 adapter merged into it), the stage-2
//! LoRA adapter of the head's folder, and its dense head over the pooled last hidden state.

use std::path::PathBuf;

use burn::tensor::Device;
use burn::tensor::activation::softmax;
use data::Dataset;
use formats::Folder;
use formats::tokenizer::TextTokenizer;
use model::CausalLm;
use model::decoder::TokenBatch;
use model::heads::classifier::{HeadConfig, SequenceClassifier, load_head};
use model::lora::peft_io;

use crate::ClassifyError;

pub struct StageTwo {
    pub classifier: SequenceClassifier,
    pub config: HeadConfig,
    pub dataset: Dataset,
    /// The folder it came from.
    pub source: PathBuf,
}

impl StageTwo {
    /// Builds the classifier of `folder` (`classifier.json`, `classifier_head.safetensors`
    /// and, when present, `adapter_config.json` with its weights) over a copy of `base`:
    /// the base's own adapter is merged first, as in stage-2 training.
    pub fn assemble(
        base: &CausalLm,
        folder: &Folder,
        device: &Device,
    ) -> Result<Self, ClassifyError> {
        let mut lm = base.clone();
        peft_io::merge(&mut lm);
        if folder.has("adapter_config.json") {
            peft_io::load_adapter(&mut lm, folder)?;
        }
        let (head, config) = load_head(folder, lm.model.hidden_size(), device)?;
        let dataset =
            Dataset::from_name(&config.dataset).map_err(|e| ClassifyError::Classifier {
                path: folder.path("classifier.json"),
                reason: e.to_string(),
            })?;
        if config.labels.len() != dataset.num_classes() {
            return Err(ClassifyError::Classifier {
                path: folder.path("classifier.json"),
                reason: format!(
                    "lists {} labels, but {} has {}",
                    config.labels.len(),
                    dataset.name(),
                    dataset.num_classes()
                ),
            });
        }
        let pool_include_padding = config.pool_include_padding;
        Ok(Self {
            classifier: SequenceClassifier {
                lm,
                head,
                pool_include_padding,
            },
            config,
            dataset,
            source: folder.root().to_path_buf(),
        })
    }

    /// Class probabilities of each text (its first `max_length` tokens), and whether it was
    /// cut.
    pub async fn probabilities(
        &self,
        tokenizer: &TextTokenizer,
        texts: &[&str],
    ) -> Result<Vec<(Vec<f64>, bool)>, ClassifyError> {
        let max_length = self.config.max_length;
        let mut rows = Vec::with_capacity(texts.len());
        let mut cut = Vec::with_capacity(texts.len());
        for t in texts {
            let (ids, was_cut) = crate::probe::encode_cut(tokenizer, t, max_length)?;
            rows.push(ids);
            cut.push(was_cut);
        }
        let (ids, valid) = self.classifier.batch(&rows, tokenizer.pad_id, max_length);
        let logits = self.classifier.forward(TokenBatch {
            ids: &ids,
            valid: &valid,
        })?;
        let flat = model::io::values_async(softmax(logits, 1)).await?;
        let classes = self.config.labels.len().max(1);
        Ok(flat
            .chunks(classes)
            .map(|p| p.iter().map(|&v| f64::from(v)).collect())
            .zip(cut)
            .collect())
    }
}
