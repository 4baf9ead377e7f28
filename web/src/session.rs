//! A loaded model ready to classify, independent of JavaScript: the wasm exports in `lib.rs`
//! wrap it, and native tests drive it directly. Every read of a device tensor is
//! asynchronous, because a browser cannot block on a WebGPU buffer.

use anyhow::{Context, Result, bail};
use burn::tensor::Device;
use burn::tensor::activation::softmax;
use data::{ChatTemplate, Dataset, fit_query, tasks};
use formats::Folder;
use formats::gguf::GgufFile;
use formats::tokenizer::TextTokenizer;
use model::decoder::TokenBatch;
use model::generate::{GenerateConfig, Sampling, generate_async};
use model::heads::classifier::{HeadConfig, SequenceClassifier, load_head};
use model::load::{LoadOptions, load_gguf_file, load_hf};
use model::score::{continuation_logprobs_async, normalise};
use model::{CausalLm, LoadedModel};
use serde::Serialize;

/// The CLI's defaults (`mentalqlm classify`), so the page and the CLI give the same numbers.
pub const MAX_PROMPT_TOKENS: usize = 512;

/// The files the user picked: the model (one `.gguf`, or a HF folder's `config.json`,
/// safetensors and `tokenizer.json`), and optionally a PEFT adapter and a stage-2 head.
pub struct Picked {
    pub model: Folder,
    pub adapter: Option<Folder>,
    pub head: Option<Folder>,
}

pub struct Session {
    lm: CausalLm,
    tokenizer: TextTokenizer,
    template: ChatTemplate,
    classifier: Option<(SequenceClassifier, HeadConfig)>,
    pub info: ModelInfo,
}

/// What the page shows about the loaded model.
#[derive(Debug, Clone, Serialize)]
pub struct ModelInfo {
    pub model: String,
    pub format: &'static str,
    pub layers: usize,
    pub hidden_size: usize,
    pub vocab_size: usize,
    pub adapter: Option<String>,
    /// The dataset and labels of a stage-2 head, when one is loaded.
    pub head: Option<HeadConfig>,
}

/// One classification: the label, every label's probability (dataset order), and how.
#[derive(Debug, Clone, Serialize)]
pub struct Classification {
    pub task: String,
    pub label: String,
    pub label_index: usize,
    pub labels: Vec<String>,
    pub probabilities: Vec<f64>,
    pub truncated: bool,
    /// "choice" (answer sentences scored by the LM) or "head" (a stage-2 dense head).
    pub method: &'static str,
}

impl Session {
    /// Builds the picked model on `device`. `max_buffer` is WebGPU's largest buffer: the
    /// embedding table and LM head are held in row blocks that each fit one.
    pub fn load(picked: &Picked, device: &Device, max_buffer: Option<u64>) -> Result<Self> {
        let LoadedModel {
            model: mut lm,
            tokenizer,
            ..
        } = load_picked_model(&picked.model, device, max_buffer)?;
        let tokenizer = tokenizer.with_context(|| {
            format!(
                "{}: the model has no tokenizer (add its tokenizer.json)",
                picked.model.root().display()
            )
        })?;
        let mut info = ModelInfo {
            model: gguf_name(&picked.model)
                .unwrap_or_else(|| picked.model.root().display().to_string()),
            format: if gguf_name(&picked.model).is_some() {
                "gguf"
            } else {
                "hf"
            },
            layers: lm.model.layers.len(),
            hidden_size: lm.model.hidden_size(),
            vocab_size: lm.config.vocab_size,
            adapter: None,
            head: None,
        };
        if let Some(adapter) = &picked.adapter {
            model::lora::peft_io::load_adapter(&mut lm, adapter)
                .with_context(|| format!("loading the adapter {}", adapter.root().display()))?;
            info.adapter = Some(adapter.root().display().to_string());
        }
        let classifier = match &picked.head {
            None => None,
            Some(dir) => {
                // As `classify --head`: the stage-1 adapter is merged under the head's own.
                let mut base = lm.clone();
                model::lora::peft_io::merge(&mut base);
                if dir.has("adapter_config.json") {
                    model::lora::peft_io::load_adapter(&mut base, dir).with_context(|| {
                        format!("loading the head's adapter {}", dir.root().display())
                    })?;
                }
                let (head, config) = load_head(dir, lm.model.hidden_size(), device)?;
                Dataset::from_name(&config.dataset)
                    .with_context(|| format!("{}: classifier.json", dir.root().display()))?;
                info.head = Some(config.clone());
                let pool_include_padding = config.pool_include_padding;
                Some((
                    SequenceClassifier {
                        lm: base,
                        head,
                        pool_include_padding,
                    },
                    config,
                ))
            }
        };
        Ok(Self {
            lm,
            tokenizer,
            template: ChatTemplate::new(data::prompt::DEFAULT_SYSTEM),
            classifier,
            info,
        })
    }

    /// The ChatML prompt for `text` under `dataset`'s question, fitted to the budget.
    fn prompt(&self, dataset: Dataset, text: &str) -> Result<(Vec<u32>, bool)> {
        let query = tasks::query_for_text(dataset, text, None);
        let count = |t: &str| self.tokenizer.encode(t).map_or(usize::MAX, |ids| ids.len());
        let fitted = fit_query(&self.template, &query, MAX_PROMPT_TOKENS, &count);
        Ok((self.tokenizer.encode(&fitted.prompt)?, fitted.truncated))
    }

    pub async fn classify(&self, task: &str, text: &str) -> Result<Classification> {
        let dataset = Dataset::from_name(task)?;
        if text.trim().is_empty() {
            bail!("the text is empty: type or paste a post to classify");
        }
        if let Some((classifier, config)) = &self.classifier
            && Dataset::from_name(&config.dataset)? == dataset
        {
            return self
                .classify_with_head(classifier, config, dataset, text)
                .await;
        }
        let (ids, truncated) = self.prompt(dataset, text)?;
        let candidates = tasks::answer_sentences(dataset)
            .iter()
            .map(|s| self.tokenizer.encode(s))
            .collect::<Result<Vec<_>, _>>()?;
        let logprobs =
            continuation_logprobs_async(&self.lm, &[ids], &candidates, self.tokenizer.pad_id)
                .await?;
        let probabilities = normalise(&logprobs[0]);
        Ok(result(
            dataset,
            dataset
                .label_names()
                .iter()
                .map(|s| s.to_string())
                .collect(),
            probabilities,
            truncated,
            "choice",
        ))
    }

    async fn classify_with_head(
        &self,
        classifier: &SequenceClassifier,
        config: &HeadConfig,
        dataset: Dataset,
        text: &str,
    ) -> Result<Classification> {
        let mut ids = self.tokenizer.encode(text)?;
        let truncated = ids.len() > config.max_length;
        ids.truncate(config.max_length);
        let (ids, valid) = classifier.batch(&[ids], self.tokenizer.pad_id, config.max_length);
        let logits = classifier.forward(TokenBatch {
            ids: &ids,
            valid: &valid,
        })?;
        let probabilities: Vec<f64> = model::io::values_async(softmax(logits, 1))
            .await
            .context("reading the head's probabilities")?
            .into_iter()
            .map(f64::from)
            .collect();
        Ok(result(
            dataset,
            config.labels.clone(),
            probabilities,
            truncated,
            "head",
        ))
    }

    /// The model's greedy answer ("<label>. Reasoning: ..."), streamed through `on_text`
    /// with the text so far after every token.
    pub async fn explain(
        &self,
        task: &str,
        text: &str,
        max_new_tokens: usize,
        mut on_text: impl FnMut(&str),
    ) -> Result<String> {
        let dataset = Dataset::from_name(task)?;
        if text.trim().is_empty() {
            bail!("the text is empty: type or paste a post to classify");
        }
        let (ids, _) = self.prompt(dataset, text)?;
        let config = GenerateConfig {
            max_new_tokens,
            sampling: Sampling::Greedy,
            seed: 0,
            stop_ids: self.tokenizer.stop_ids.clone(),
            pad_id: self.tokenizer.pad_id,
        };
        let mut so_far: Vec<u32> = Vec::new();
        let tokenizer = &self.tokenizer;
        let out = generate_async(&self.lm, &[ids], &config, |_, id| {
            so_far.push(id);
            if let Ok(text) = tokenizer.decode(&so_far) {
                on_text(&text);
            }
        })
        .await?;
        Ok(self.tokenizer.decode(&out[0])?)
    }
}

fn result(
    dataset: Dataset,
    labels: Vec<String>,
    probabilities: Vec<f64>,
    truncated: bool,
    method: &'static str,
) -> Classification {
    let label_index =
        probabilities.iter().enumerate().fold(
            0,
            |best, (i, v)| if *v > probabilities[best] { i } else { best },
        );
    Classification {
        task: dataset.name().to_string(),
        label: labels.get(label_index).cloned().unwrap_or_default(),
        label_index,
        labels,
        probabilities,
        truncated,
        method,
    }
}

/// The `.gguf` file among the picked model files, if any.
fn gguf_name(folder: &Folder) -> Option<String> {
    folder
        .names()
        .into_iter()
        .find(|n| n.to_ascii_lowercase().ends_with(".gguf"))
}

/// A GGUF file, or a HF folder's files.
fn load_picked_model(
    folder: &Folder,
    device: &Device,
    max_buffer: Option<u64>,
) -> Result<LoadedModel> {
    // The embedding table and LM head (the largest tensors, 520 MiB for a Qwen 0.5B in f32)
    // are held in row blocks that each fit one WebGPU buffer.
    let options = LoadOptions {
        max_tensor_bytes: max_buffer,
        ..LoadOptions::default()
    };
    if let Some(name) = gguf_name(folder) {
        let gguf = GgufFile::open_in(folder, &name)?;
        return Ok(load_gguf_file(&gguf, device, options)?);
    }
    if !folder.has("config.json") {
        bail!(
            "{}: pick a .gguf file, or a HF model folder's config.json, model.safetensors and tokenizer.json (found: {})",
            folder.root().display(),
            folder.names().join(", ")
        );
    }
    Ok(load_hf(folder, device, options)?)
}
