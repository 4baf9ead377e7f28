//! Trained head-only classifiers ("probes", `model::heads::probe`) from the CLI: loading one
//! from disk for the loaded base model, and the cached feature extraction that `eval --mode
//! head` and `train classifier --mode head` share (the pooling itself is `classify::probe`'s
//! and the model crate's, as in `classify`). Where they live: `paths.rs`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use classify::LoadedProbe;
pub use classify::probe::{distinct, encode, task_dir};
use data::Dataset;
use formats::Folder;
use formats::tokenizer::TextTokenizer;
use model::CausalLm;
use train::features::{FeatureSpec, Progress, extract};

/// The base model's fingerprint, as shipped classifiers record it.
pub fn model_sha256(path: &Path) -> Result<String> {
    formats::fingerprint::model_sha256(path)
        .with_context(|| format!("computing the sha256 of {}", path.display()))
}

/// Loads the probe in `dir` for the model of `model_sha` and `hidden` width, refusing one
/// made for another model, task or label count.
pub fn load(dir: &Path, model_sha: &str, hidden: usize, dataset: Dataset) -> Result<LoadedProbe> {
    LoadedProbe::load(&Folder::disk(dir), model_sha, hidden, dataset)
        .with_context(|| format!("loading the classifier in {}", dir.display()))
}

/// Whether `dir` holds a probe (its `classifier.json` says `"kind": "probe"`).
pub fn is_probe(dir: &Path) -> Result<bool> {
    Ok(classify::probe::is_probe(&Folder::disk(dir))?)
}

/// Settings of one feature extraction.
pub struct Extraction<'a> {
    pub model_sha: &'a str,
    pub depths: &'a [usize],
    /// The cuts pooled (tokens per text), each giving every depth, cut-major; the text is
    /// run once, cut to the longest.
    pub max_lengths: &'a [usize],
    pub batch_size: usize,
    pub cache: Option<PathBuf>,
}

/// Pooled features of each text (distinct texts run once).
pub fn features(
    lm: &CausalLm,
    tokenizer: &TextTokenizer,
    texts: &[&str],
    settings: &Extraction<'_>,
    on_progress: impl FnMut(Progress),
) -> Result<Vec<Vec<f32>>> {
    // `extract` refuses an empty or zero cut.
    let longest = settings.max_lengths.iter().copied().max().unwrap_or(0);
    let rows = texts
        .iter()
        .map(|t| encode(tokenizer, t, longest))
        .collect::<Result<Vec<_>, _>>()?;
    let spec = FeatureSpec {
        model_sha256: settings.model_sha.to_string(),
        depths: settings.depths.to_vec(),
        cuts: settings.max_lengths.to_vec(),
        hidden_size: lm.model.hidden_size(),
        pad_id: tokenizer.pad_id,
        batch_size: settings.batch_size,
        cache: settings.cache.clone(),
    };
    Ok(extract(lm, &rows, &spec, on_progress)?)
}

/// Class probabilities of `(text, question)` pairs with a loaded probe, from features
/// cached under `cache` when given (`eval --mode head`; `classify` computes them directly).
#[allow(clippy::too_many_arguments)]
pub fn classify_cached(
    lm: &CausalLm,
    tokenizer: &TextTokenizer,
    loaded: &LoadedProbe,
    dataset: Dataset,
    items: &[(&str, Option<&str>)],
    batch_size: usize,
    cache: Option<PathBuf>,
    on_progress: impl FnMut(Progress),
) -> Result<Vec<Vec<f64>>> {
    let groups = items
        .iter()
        .map(|(_, q)| loaded.group_of(dataset, *q))
        .collect::<Result<Vec<_>, _>>()?;
    let (unique, of) = distinct(items.iter().map(|(t, _)| *t));
    let settings = Extraction {
        model_sha: &loaded.config.base_model_sha256,
        depths: &loaded.config.depths,
        max_lengths: &[loaded.config.max_length],
        batch_size,
        cache,
    };
    let feats = features(lm, tokenizer, &unique, &settings, on_progress)?;
    Ok(loaded.from_features(&feats, &of, &groups))
}
