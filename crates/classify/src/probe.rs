//! Trained head-only classifiers ("probes", [`model::heads::probe`]): loading one for a base
//! model and a task, where the shipped ones live, and their probabilities. Training
//! (`train::probe`) pools its features with the same [`encode`] and
//! [`model::heads::probe::pooled_features`], so a text is cut and pooled alike in both.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use data::Dataset;
use formats::Folder;
use formats::tokenizer::TextTokenizer;
use model::CausalLm;
use model::heads::probe::{self, Probe, ProbeConfig, ProbeExpect, pooled_features_async};

use crate::ClassifyError;

/// A probe loaded for one task and one base model.
pub struct LoadedProbe {
    pub probe: Probe,
    pub config: ProbeConfig,
    /// The folder it came from, for messages and reports.
    pub source: PathBuf,
}

/// `<root>/<task>`: where the classifier of a task is in a folder of classifiers (the
/// repository's `classifiers/`).
pub fn task_dir(root: &Path, dataset: Dataset) -> PathBuf {
    root.join(dataset.name())
}

/// Whether `folder` holds a probe (its `classifier.json` says `"kind": "probe"`), not a
/// stage-2 head.
pub fn is_probe(folder: &Folder) -> Result<bool, ClassifyError> {
    Ok(probe::is_probe(folder)?)
}

impl LoadedProbe {
    /// Loads the probe in `folder`, refusing one made for another base model (by sha256),
    /// model width, task or label count.
    pub fn load(
        folder: &Folder,
        model_sha256: &str,
        hidden_size: usize,
        dataset: Dataset,
    ) -> Result<Self, ClassifyError> {
        let expect = ProbeExpect {
            model_sha256,
            hidden_size,
            dataset: dataset.name(),
            classes: dataset.num_classes(),
        };
        let (probe, config) = probe::load_probe(folder, &expect)?;
        Ok(Self {
            probe,
            config,
            source: folder.root().to_path_buf(),
        })
    }

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
            self.source.display(),
            depths.join(","),
            self.config.max_length
        )
    }

    /// The linear layer of `question` (the task's default question when `None`), or an
    /// error listing the questions the classifier knows.
    pub fn group_of(
        &self,
        dataset: Dataset,
        question: Option<&str>,
    ) -> Result<usize, ClassifyError> {
        let q = question.unwrap_or_else(|| data::tasks::default_question(dataset));
        self.config.group_of(q).ok_or_else(|| {
            ClassifyError::Input(format!(
                "the {} classifier answers only these questions: {}; not `{q}`",
                self.config.dataset,
                self.config.questions.join(" | ")
            ))
        })
    }

    /// Class probabilities of items whose pooled features are `features[of[i]]`, each
    /// asked the question of `groups[i]`.
    pub fn from_features(
        &self,
        features: &[Vec<f32>],
        of: &[usize],
        groups: &[usize],
    ) -> Vec<Vec<f64>> {
        of.iter()
            .zip(groups)
            .map(|(&i, &g)| self.probe.probabilities(&features[i], g))
            .collect()
    }

    /// Class probabilities of `(text, question)` pairs, and whether each text was cut to the
    /// classifier's length: each distinct text is run once, in batches of `batch_size`.
    pub async fn probabilities(
        &self,
        lm: &CausalLm,
        tokenizer: &TextTokenizer,
        dataset: Dataset,
        items: &[(&str, Option<&str>)],
        batch_size: usize,
    ) -> Result<Vec<(Vec<f64>, bool)>, ClassifyError> {
        let groups = items
            .iter()
            .map(|(_, q)| self.group_of(dataset, *q))
            .collect::<Result<Vec<_>, _>>()?;
        let (unique, of) = distinct(items.iter().map(|(t, _)| *t));
        let (rows, cut): (Vec<Vec<u32>>, Vec<bool>) = unique
            .iter()
            .map(|t| encode_cut(tokenizer, t, self.config.max_length))
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .unzip();
        let mut features = Vec::with_capacity(rows.len());
        for batch in rows.chunks(batch_size.max(1)) {
            let cuts = [self.config.max_length];
            features.extend(
                pooled_features_async(lm, batch, &self.config.depths, &cuts, tokenizer.pad_id)
                    .await?,
            );
        }
        let probs = self.from_features(&features, &of, &groups);
        Ok(probs.into_iter().zip(of.iter().map(|&i| cut[i])).collect())
    }
}

/// A text's token ids as a classifier sees them: its first `max_length` tokens (one pad
/// token for a text with none).
pub fn encode(
    tokenizer: &TextTokenizer,
    text: &str,
    max_length: usize,
) -> Result<Vec<u32>, ClassifyError> {
    Ok(encode_cut(tokenizer, text, max_length)?.0)
}

/// [`encode`], and whether the text had more than `max_length` tokens.
pub fn encode_cut(
    tokenizer: &TextTokenizer,
    text: &str,
    max_length: usize,
) -> Result<(Vec<u32>, bool), ClassifyError> {
    let mut ids = tokenizer.encode(text)?;
    let cut = ids.len() > max_length;
    ids.truncate(max_length);
    if ids.is_empty() {
        ids.push(tokenizer.pad_id);
    }
    Ok((ids, cut))
}

/// The distinct texts of a list and, for each entry, the index of its text.
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

#[cfg(test)]
mod tests {
    use super::distinct;

    #[test]
    fn distinct_texts_are_run_once_and_mapped_back() {
        let (unique, of) = distinct(["a", "b", "a", "c", "b"]);
        assert_eq!(unique, ["a", "b", "c"]);
        assert_eq!(of, [0, 1, 0, 2, 1]);
    }
}
