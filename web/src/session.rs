//! A loaded model ready to classify, independent of JavaScript: the wasm exports in `lib.rs`
//! wrap it, and native tests drive it directly. Every read of a device tensor is
//! asynchronous, because a browser cannot block on a WebGPU buffer.

use anyhow::{Context, Result, bail};
use burn::tensor::Device;
use classify::{
    Classification, LoadedProbe, Pipeline, Prompter, Scorer, Seq2SeqPipeline, StageTwo,
};
use data::Dataset;
use formats::Folder;
use model::LoadedModel;
use model::heads::classifier::HeadConfig;
use model::load::{BuildProgress, LoadOptions, gguf_file_name, load_folder};
use serde::Serialize;

/// The CLI's defaults (`mentalqlm classify`), so the page and the CLI give the same numbers.
pub const MAX_PROMPT_TOKENS: usize = 512;

/// The files the user picked: the model (one `.gguf`, or a HF folder's `config.json`,
/// safetensors and `tokenizer.json`), and optionally a PEFT adapter and a stage-2 head.
pub struct Picked {
    pub model: Folder,
    pub adapter: Option<Folder>,
    pub head: Option<Folder>,
    /// Trained head-only classifiers (`classifiers/<task>/` of the repository), one folder
    /// each; each must have been trained on this model (its sha256 is checked).
    pub classifiers: Vec<Folder>,
    /// The shipped explainer (`classifiers/explainer/`), used for explanations when it was
    /// trained on this model.
    pub explainer: Option<Folder>,
}

/// The loaded model and classifier; every classification goes through the `classify`
/// crate's [`Pipeline`] (or [`Seq2SeqPipeline`] for BART and T5), as the CLI's does.
pub struct Session {
    engine: Engine,
    pub info: ModelInfo,
}

enum Engine {
    DecoderOnly {
        pipeline: Pipeline,
        /// The model with the shipped explainer's adapter (sharing the model's weights),
        /// when one fits: explanations come from it, labels never do.
        explainer: Option<Pipeline>,
        head: Option<StageTwo>,
        probes: Vec<(Dataset, LoadedProbe)>,
    },
    /// MentalBART / MentalT5: labels by the likelihood of each label's completion answer,
    /// explanations by the model's own generation.
    EncoderDecoder(Box<Seq2SeqPipeline>),
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
    /// One line per trained classifier given: what it is and its test F1, or why it was
    /// passed over.
    pub classifiers: Vec<String>,
    /// What writes explanations: the shipped explainer, or why the model as it is does.
    pub explainer: String,
}

impl Session {
    /// Builds the picked model on `device`. `max_buffer` is WebGPU's largest buffer: the
    /// embedding table and LM head are held in row blocks that each fit one.
    /// `progress` hears each step of the model's build.
    pub fn load(
        picked: &Picked,
        device: &Device,
        max_buffer: Option<u64>,
        progress: Option<BuildProgress<'_>>,
    ) -> Result<Self> {
        if model::seq2seq::is_seq2seq_folder(&picked.model) {
            return Self::load_seq2seq(picked, device, max_buffer, progress);
        }
        let LoadedModel {
            model: mut lm,
            tokenizer,
            ..
        } = load_picked_model(&picked.model, device, max_buffer, progress)?;
        let tokenizer = tokenizer.with_context(|| {
            format!(
                "{}: the model has no tokenizer (add its tokenizer.json)",
                picked.model.root().display()
            )
        })?;
        let mut info = ModelInfo {
            model: gguf_file_name(&picked.model)
                .unwrap_or_else(|| picked.model.root().display().to_string()),
            format: if gguf_file_name(&picked.model).is_some() {
                "gguf"
            } else {
                "hf"
            },
            layers: lm.model.layers.len(),
            hidden_size: lm.model.hidden_size(),
            vocab_size: lm.config.vocab_size,
            adapter: None,
            head: None,
            classifiers: Vec::new(),
            explainer: "the model as it is (untuned): no trained explainer was given".into(),
        };
        if let Some(adapter) = &picked.adapter {
            model::lora::peft_io::load_adapter(&mut lm, adapter)
                .with_context(|| format!("loading the adapter {}", adapter.root().display()))?;
            info.adapter = Some(adapter.root().display().to_string());
        }
        let head = match &picked.head {
            None => None,
            Some(dir) => {
                // As `classify --head`: the stage-1 adapter is merged under the head's own.
                let head = StageTwo::assemble(&lm, dir, device)
                    .with_context(|| format!("loading the classifier {}", dir.root().display()))?;
                info.head = Some(head.config.clone());
                Some(head)
            }
        };
        // The model's sha256 binds classifiers and explainer to it; computed once, and only
        // when there is one to check.
        let sha = if picked.classifiers.is_empty() && picked.explainer.is_none() {
            String::new()
        } else {
            formats::fingerprint::folder_sha256(&picked.model)?
        };
        let (probes, notes) = load_probes(&sha, &picked.classifiers, &lm)?;
        info.classifiers = notes;
        let (format, _) = classify::chat_format(lm.config.model_type, &tokenizer);
        let prompter =
            Prompter::new(data::prompt::DEFAULT_SYSTEM, MAX_PROMPT_TOKENS).with_format(format);
        let mut explainer = None;
        if picked.adapter.is_some() {
            info.explainer = "the model with the adapter given".into();
        } else if let Some(folder) = &picked.explainer {
            match classify::explainer::attach(&lm, folder, &sha)
                .with_context(|| format!("loading the explainer {}", folder.root().display()))?
            {
                Ok((tuned, described)) => {
                    info.explainer = described.describe(&folder.root().display().to_string());
                    explainer = Some(Pipeline {
                        lm: tuned,
                        tokenizer: tokenizer.clone(),
                        prompter: prompter.clone(),
                        batch_size: 1,
                    });
                }
                Err(why) => info.explainer = format!("the model as it is (untuned): {why}"),
            }
        }
        Ok(Self {
            engine: Engine::DecoderOnly {
                probes,
                pipeline: Pipeline {
                    lm,
                    tokenizer,
                    prompter,
                    batch_size: 1,
                },
                explainer,
                head,
            },
            info,
        })
    }

    /// A BART or T5 folder. Adapters and stage-2 heads are for decoder-only models and are
    /// refused; trained classifiers and the explainer are passed over with a note.
    fn load_seq2seq(
        picked: &Picked,
        device: &Device,
        max_buffer: Option<u64>,
        progress: Option<BuildProgress<'_>>,
    ) -> Result<Self> {
        let root = picked.model.root().display().to_string();
        if picked.adapter.is_some() || picked.head.is_some() {
            bail!(
                "{root} is an encoder-decoder model (BART or T5): LoRA adapters and stage-2 \
                 heads apply to decoder-only models"
            );
        }
        let options = LoadOptions {
            max_tensor_bytes: max_buffer,
            progress,
            ..LoadOptions::default()
        };
        let loaded = model::seq2seq::load_seq2seq(&picked.model, device, options)?;
        let model = &loaded.model;
        // Trained classifiers are made for decoder-only models: one note for all of them.
        let classifiers = if picked.classifiers.is_empty() {
            Vec::new()
        } else {
            vec![format!(
                "{} given, not used (trained for a decoder-only model); every task is scored \
                 by its completion answers",
                picked.classifiers.len()
            )]
        };
        let info = ModelInfo {
            model: root,
            format: "hf",
            layers: model.layers(),
            hidden_size: model.hidden_size(),
            vocab_size: model.vocab_size(),
            adapter: None,
            head: None,
            classifiers,
            explainer: format!(
                "the model's own generation ({}, encoder-decoder)",
                model.model_type()
            ),
        };
        let pipeline = Seq2SeqPipeline::new(loaded, MAX_PROMPT_TOKENS)?;
        Ok(Self {
            engine: Engine::EncoderDecoder(Box::new(pipeline)),
            info,
        })
    }

    /// The classifier for `dataset`: the loaded head when it is that task's, else its
    /// trained head-only classifier, else the answer sentences' likelihood (untuned).
    fn scorer<'a>(
        head: &'a Option<StageTwo>,
        probes: &'a [(Dataset, LoadedProbe)],
        dataset: Dataset,
    ) -> Scorer<'a> {
        if let Some(head) = head
            && head.dataset == dataset
        {
            return Scorer::Head(head);
        }
        match probes.iter().find(|(d, _)| *d == dataset) {
            Some((_, probe)) => Scorer::Probe(probe),
            None => Scorer::Choice,
        }
    }

    pub async fn classify(&self, task: &str, text: &str) -> Result<Classification> {
        let dataset = Dataset::from_name(task)?;
        if text.trim().is_empty() {
            bail!("the text is empty: type or paste a post to classify");
        }
        let mut out = match &self.engine {
            Engine::DecoderOnly {
                pipeline,
                head,
                probes,
                ..
            } => {
                let scorer = Self::scorer(head, probes, dataset);
                pipeline.classify(scorer, dataset, &[(text, None)]).await?
            }
            Engine::EncoderDecoder(p) => p.classify(dataset, &[(text, None)]).await?,
        };
        out.pop().context("the pipeline returned no classification")
    }

    /// The model's greedy answer ("<label>. Reasoning: ..."), streamed through `on_text`
    /// with the text so far after every token. With `label` (the index the classifier
    /// chose), the answer starts with that label's sentence and the model gives its reasoning.
    /// An encoder-decoder model writes its own answer (by its generation settings); where
    /// it states another label than `label`, a note at its end says so.
    pub async fn explain(
        &self,
        task: &str,
        text: &str,
        label: Option<usize>,
        max_new_tokens: usize,
        mut on_text: impl FnMut(&str),
    ) -> Result<String> {
        let dataset = Dataset::from_name(task)?;
        if text.trim().is_empty() {
            bail!("the text is empty: type or paste a post to classify");
        }
        let mut stream = |_: usize, so_far: &str| on_text(so_far);
        let mut out = match &self.engine {
            Engine::DecoderOnly {
                pipeline,
                explainer,
                ..
            } => {
                explainer
                    .as_ref()
                    .unwrap_or(pipeline)
                    .explain(
                        dataset,
                        &[(text, None)],
                        label.as_ref().map(std::slice::from_ref),
                        max_new_tokens,
                        Some(&mut stream),
                    )
                    .await?
            }
            Engine::EncoderDecoder(p) => {
                let mut out = p
                    .explain(dataset, &[(text, None)], max_new_tokens, Some(&mut stream))
                    .await?;
                if let (Some(answer), Some(chosen)) = (out.first_mut(), label) {
                    let names = dataset.label_names();
                    let stated = data::labels::match_label(dataset, answer);
                    if stated != Some(chosen) {
                        let said = stated.map_or("no label the rules recognise", |s| names[s]);
                        answer.push_str(&format!(
                            "\n\nNote: this answer states {said}; the label above ({}) is \
                             the likeliest completion answer.",
                            names.get(chosen).copied().unwrap_or("?")
                        ));
                    }
                }
                out
            }
        };
        out.pop().context("the pipeline returned no answer")
    }
}

/// The head-only classifiers in `folders` that fit the model (its sha256 and width), and one line about each: what it is, or
/// why it was passed over (as the CLI passes over a shipped classifier made for another
/// model, and scores that task untuned).
fn load_probes(
    sha: &str,
    folders: &[Folder],
    lm: &model::CausalLm,
) -> Result<(Vec<(Dataset, LoadedProbe)>, Vec<String>)> {
    let (mut probes, mut notes) = (Vec::new(), Vec::new());
    for folder in folders {
        match load_probe(folder, sha, lm.model.hidden_size()) {
            Ok((dataset, probe)) => {
                notes.push(probe.describe());
                probes.push((dataset, probe));
            }
            Err(e) => notes.push(format!(
                "{} not used ({e:#}); that task is scored untuned",
                folder.root().display()
            )),
        }
    }
    Ok((probes, notes))
}

fn load_probe(folder: &Folder, sha: &str, hidden: usize) -> Result<(Dataset, LoadedProbe)> {
    let file = folder.path("classifier.json");
    let config: serde_json::Value = serde_json::from_str(&folder.read_string("classifier.json")?)
        .with_context(|| format!("{}: not JSON", file.display()))?;
    let name = config
        .get("dataset")
        .and_then(|d| d.as_str())
        .with_context(|| format!("{}: no \"dataset\"", file.display()))?;
    let dataset = Dataset::from_name(name)?;
    Ok((dataset, LoadedProbe::load(folder, sha, hidden, dataset)?))
}

/// The picked model: a GGUF file, or a HF folder's files. The embedding table and LM head
/// (the largest tensors, 520 MiB for a Qwen 0.5B in f32) are held in row blocks that each
/// fit one WebGPU buffer.
fn load_picked_model(
    folder: &Folder,
    device: &Device,
    max_buffer: Option<u64>,
    progress: Option<BuildProgress<'_>>,
) -> Result<LoadedModel> {
    let options = LoadOptions {
        max_tensor_bytes: max_buffer,
        progress,
        ..LoadOptions::default()
    };
    Ok(load_folder(folder, device, options)?)
}
