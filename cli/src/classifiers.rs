//! Trained head-only classifiers ("probes", `model::heads::probe`): where the shipped ones
//! live, loading one for the loaded base model, and classifying texts with it. `classify`,
//! `eval --mode head` and `train classifier --mode head` all go through here, so a text is
//! tokenized, cut and pooled the same way in training and in use.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use data::Dataset;
use formats::Folder;
use formats::tokenizer::TextTokenizer;
use model::CausalLm;
use model::heads::probe::{self, Probe, ProbeConfig, ProbeExpect};
use train::features::{FeatureSpec, Progress, extract};

/// The shipped classifiers, one folder per task, beside the default model.
pub const SHIPPED: &str = "classifiers";

/// The folder of shipped classifiers: `--classifiers DIR`, else `classifiers/` in the
/// working directory, else the one in the source tree this binary was built from.
pub fn shipped_root(flag: Option<&Path>) -> Option<PathBuf> {
    if let Some(dir) = flag {
        return Some(dir.to_path_buf());
    }
    [
        PathBuf::from(SHIPPED),
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(SHIPPED),
    ]
    .into_iter()
    .find(|c| c.is_dir())
}

/// `<root>/<task>`, e.g. `classifiers/DR`.
pub fn task_dir(root: &Path, dataset: Dataset) -> PathBuf {
    root.join(dataset.name())
}

/// The default cache of pooled features: `~/.cache/mentalqlm/features`.
pub fn default_cache() -> Option<PathBuf> {
    user_cache("features")
}

/// `~/.cache/mentalqlm/<kind>`: caches live in the user's cache folder, never in a checkout.
pub fn user_cache(kind: &str) -> Option<PathBuf> {
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/mentalqlm").join(kind))
}

/// The base model's fingerprint, as shipped classifiers record it.
pub fn model_sha256(path: &Path) -> Result<String> {
    formats::fingerprint::model_sha256(path)
        .with_context(|| format!("computing the sha256 of {}", path.display()))
}

/// A probe loaded for one task and one base model.
pub struct Loaded {
    pub probe: Probe,
    pub config: ProbeConfig,
    pub dir: PathBuf,
}

impl Loaded {
    /// One line for the user: which classifier, and how well it did on its test set.
    pub fn describe(&self) -> String {
        let test = self
            .config
            .metrics
            .get("test_weighted_f1")
            .and_then(|v| v.as_f64())
            .map(|f| format!(", test weighted F1 {:.2}", 100.0 * f))
            .unwrap_or_default();
        let depths: Vec<String> = self.config.depths.iter().map(|d| d.to_string()).collect();
        format!(
            "{} (trained head over layers {} of the first {} tokens{test})",
            self.dir.display(),
            depths.join(","),
            self.config.max_length
        )
    }
}

/// Whether `dir` holds a probe (its `classifier.json` says `"kind": "probe"`).
pub fn is_probe(dir: &Path) -> Result<bool> {
    Ok(probe::is_probe(&Folder::disk(dir))?)
}

/// Loads the probe in `dir`, refusing one made for another model, task or label count.
pub fn load(dir: &Path, model_sha: &str, hidden: usize, dataset: Dataset) -> Result<Loaded> {
    let expect = ProbeExpect {
        model_sha256: model_sha,
        hidden_size: hidden,
        dataset: dataset.name(),
        classes: dataset.num_classes(),
    };
    let (probe, config) = probe::load_probe(&Folder::disk(dir), &expect)
        .with_context(|| format!("loading the classifier in {}", dir.display()))?;
    Ok(Loaded {
        probe,
        config,
        dir: dir.to_path_buf(),
    })
}

/// A text's token ids as a classifier sees them: its first `max_length` tokens (one pad
/// token for a text with none).
pub fn encode(tokenizer: &TextTokenizer, text: &str, max_length: usize) -> Result<Vec<u32>> {
    let mut ids = tokenizer.encode(text)?;
    ids.truncate(max_length);
    if ids.is_empty() {
        ids.push(tokenizer.pad_id);
    }
    Ok(ids)
}

/// Distinct texts of a list and, for each entry, the index of its text.
pub fn distinct<'a>(texts: impl IntoIterator<Item = &'a str>) -> (Vec<&'a str>, Vec<usize>) {
    let mut index: HashMap<&str, usize> = HashMap::new();
    let mut unique = Vec::new();
    let mut of = Vec::new();
    for t in texts {
        let i = *index.entry(t).or_insert_with(|| {
            unique.push(t);
            unique.len() - 1
        });
        of.push(i);
    }
    (unique, of)
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
        .collect::<Result<Vec<_>>>()?;
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

/// The linear layer of `question` (the task's default question when `None`), or an error
/// listing the questions the classifier knows.
pub fn group_of(config: &ProbeConfig, dataset: Dataset, question: Option<&str>) -> Result<usize> {
    let q = question.unwrap_or_else(|| data::tasks::default_question(dataset));
    match config.group_of(q) {
        Some(g) => Ok(g),
        None => bail!(
            "the {} classifier answers only these questions: {}; not `{q}`",
            config.dataset,
            config.questions.join(" | ")
        ),
    }
}

/// Class probabilities of `(text, question)` pairs with a loaded probe (features at its
/// depths, cached under `cache` when given).
#[allow(clippy::too_many_arguments)]
pub fn classify(
    lm: &CausalLm,
    tokenizer: &TextTokenizer,
    loaded: &Loaded,
    dataset: Dataset,
    items: &[(&str, Option<&str>)],
    batch_size: usize,
    cache: Option<PathBuf>,
    on_progress: impl FnMut(Progress),
) -> Result<Vec<Vec<f64>>> {
    let groups = items
        .iter()
        .map(|(_, q)| group_of(&loaded.config, dataset, *q))
        .collect::<Result<Vec<_>>>()?;
    let (unique, of) = distinct(items.iter().map(|(t, _)| *t));
    let settings = Extraction {
        model_sha: &loaded.config.base_model_sha256,
        depths: &loaded.config.depths,
        max_lengths: &[loaded.config.max_length],
        batch_size,
        cache,
    };
    let feats = features(lm, tokenizer, &unique, &settings, on_progress)?;
    Ok(of
        .iter()
        .zip(&groups)
        .map(|(&i, &g)| loaded.probe.probabilities(&feats[i], g))
        .collect())
}
