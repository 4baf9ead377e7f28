//! A loaded model ready to classify: texts in, [`Classification`]s out, by the scorer the
//! caller picked; and the model's own answer with its reasoning.

use data::Dataset;
use formats::tokenizer::TextTokenizer;
use model::CausalLm;
use serde::Serialize;

use crate::{ClassifyError, LoadedProbe, Prompter, StageTwo};

/// Shown beside every label.
pub const NOTE: &str = "For research and screening support only; not a diagnosis.";

/// Where the probabilities come from.
#[derive(Clone, Copy)]
pub enum Scorer<'a> {
    /// The likelihood of each label's answer sentence (no trained classifier).
    Choice,
    /// A trained head-only classifier.
    Probe(&'a LoadedProbe),
    /// A stage-2 adapter and dense head.
    Head(&'a StageTwo),
}

impl Scorer<'_> {
    /// "choice", "probe" or "head".
    pub fn method(&self) -> &'static str {
        match self {
            Scorer::Choice => "choice",
            Scorer::Probe(_) => "probe",
            Scorer::Head(_) => "head",
        }
    }

    /// The trained classifier's weighted F1 on its task's test set (0 to 1), as its file
    /// records it; `None` for choice scoring and for a classifier that records none.
    pub fn test_weighted_f1(&self) -> Option<f64> {
        match self {
            Scorer::Probe(p) => p.config.metrics.get("test_weighted_f1")?.as_f64(),
            Scorer::Choice | Scorer::Head(_) => None,
        }
    }

    /// The classifier's folder, when a trained one scores.
    pub fn source(&self) -> Option<String> {
        match self {
            Scorer::Choice => None,
            Scorer::Probe(p) => Some(p.source.display().to_string()),
            Scorer::Head(h) => Some(h.source.display().to_string()),
        }
    }
}

/// One classification: the label, every label's probability (dataset order), and how.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Classification {
    pub task: String,
    pub label: String,
    pub label_index: usize,
    pub labels: Vec<String>,
    pub probabilities: Vec<f64>,
    /// Whether the text was cut to the prompt budget or the classifier's length.
    pub truncated: bool,
    /// See [`Scorer::method`].
    pub method: &'static str,
    /// The trained classifier's folder; `None` for choice scoring.
    pub classifier: Option<String>,
    /// See [`Scorer::test_weighted_f1`].
    pub classifier_test_f1: Option<f64>,
}

/// The model, its tokenizer and how prompts are built.
pub struct Pipeline {
    pub lm: CausalLm,
    pub tokenizer: TextTokenizer,
    pub prompter: Prompter,
    /// Texts per forward pass.
    pub batch_size: usize,
}

/// The index of the largest value (the first of ties).
pub fn argmax(p: &[f64]) -> usize {
    p.iter()
        .enumerate()
        .fold(0, |best, (i, v)| if *v > p[best] { i } else { best })
}

/// Refuses an empty list or an empty text, naming it (1-based).
pub(crate) fn check_texts(items: &[(&str, Option<&str>)]) -> Result<(), ClassifyError> {
    if items.is_empty() {
        return Err(ClassifyError::Input("no text to classify".into()));
    }
    match items.iter().position(|(t, _)| t.trim().is_empty()) {
        Some(i) => Err(ClassifyError::Input(format!("text {} is empty", i + 1))),
        None => Ok(()),
    }
}

impl Pipeline {
    /// Classifies `(text, question)` pairs (the task's default question when `None`).
    pub async fn classify(
        &self,
        scorer: Scorer<'_>,
        dataset: Dataset,
        items: &[(&str, Option<&str>)],
    ) -> Result<Vec<Classification>, ClassifyError> {
        check_texts(items)?;
        let mut out = Vec::with_capacity(items.len());
        for chunk in items.chunks(self.batch_size.max(1)) {
            let scored = self.score(scorer, dataset, chunk).await?;
            out.extend(
                scored
                    .into_iter()
                    .map(|(p, cut)| classification(scorer, dataset, p, cut)),
            );
        }
        Ok(out)
    }

    /// Probabilities and "was cut" of one batch.
    async fn score(
        &self,
        scorer: Scorer<'_>,
        dataset: Dataset,
        items: &[(&str, Option<&str>)],
    ) -> Result<Vec<(Vec<f64>, bool)>, ClassifyError> {
        match scorer {
            Scorer::Choice => {
                let prompts = items
                    .iter()
                    .map(|(t, q)| self.prompter.for_text(&self.tokenizer, dataset, t, *q))
                    .collect::<Result<Vec<_>, _>>()?;
                let probs =
                    crate::choice::probabilities(&self.lm, &self.tokenizer, dataset, &prompts)
                        .await?;
                Ok(probs
                    .into_iter()
                    .zip(prompts.iter().map(|p| p.truncated))
                    .collect())
            }
            Scorer::Probe(probe) => {
                probe
                    .probabilities(&self.lm, &self.tokenizer, dataset, items, self.batch_size)
                    .await
            }
            Scorer::Head(head) => {
                if head.dataset != dataset {
                    return Err(ClassifyError::Classifier {
                        path: head.source.clone(),
                        reason: format!(
                            "holds a {} head, not {}",
                            head.dataset.name(),
                            dataset.name()
                        ),
                    });
                }
                if items.iter().any(|(_, q)| q.is_some()) {
                    return Err(ClassifyError::Input(
                        "a stage-2 head answers its task's question only; drop the question".into(),
                    ));
                }
                let texts: Vec<&str> = items.iter().map(|(t, _)| *t).collect();
                head.probabilities(&self.tokenizer, &texts).await
            }
        }
    }

    /// The model's greedy answers ("<label>. Reasoning: ..."), at most `max_new_tokens`
    /// tokens each. With `labels` (one per item, e.g. the trained classifier's), each answer
    /// is made to start with that label's answer sentence and " Reasoning:", and the model
    /// writes the reasoning for it: the explanation cannot contradict the label shown.
    /// `on_text(item, text_so_far)` is called after every token when given (for streaming;
    /// it costs a decode per token).
    pub async fn explain(
        &self,
        dataset: Dataset,
        items: &[(&str, Option<&str>)],
        labels: Option<&[usize]>,
        max_new_tokens: usize,
        mut on_text: Option<&mut dyn FnMut(usize, &str)>,
    ) -> Result<Vec<String>, ClassifyError> {
        check_texts(items)?;
        let sentences = data::tasks::answer_sentences(dataset);
        let heads: Vec<String> = match labels {
            None => vec![String::new(); items.len()],
            Some(labels) => {
                if labels.len() != items.len() {
                    return Err(ClassifyError::Input(format!(
                        "{} labels for {} texts",
                        labels.len(),
                        items.len()
                    )));
                }
                labels
                    .iter()
                    .map(|&l| {
                        sentences
                            .get(l)
                            .map(|s| format!("{s} Reasoning:"))
                            .ok_or_else(|| {
                                ClassifyError::Input(format!(
                                    "label {l} is outside {}'s {} labels",
                                    dataset.name(),
                                    sentences.len()
                                ))
                            })
                    })
                    .collect::<Result<_, _>>()?
            }
        };
        let batch = self.batch_size.max(1);
        let streaming = on_text.is_some();
        let mut answers = Vec::with_capacity(items.len());
        for (c, chunk) in items.chunks(batch).enumerate() {
            let chunk_heads = &heads[c * batch..c * batch + chunk.len()];
            let mut prompts = chunk
                .iter()
                .map(|(t, q)| self.prompter.for_text(&self.tokenizer, dataset, t, *q))
                .collect::<Result<Vec<_>, _>>()?;
            for (p, head) in prompts.iter_mut().zip(chunk_heads) {
                if !head.is_empty() {
                    // Tokenised apart from the prompt, as the training answers were.
                    p.ids.extend(self.tokenizer.encode(head)?);
                }
            }
            let mut shifted = |i: usize, text: &str| {
                if let Some(f) = on_text.as_deref_mut() {
                    f(c * batch + i, &format!("{}{text}", chunk_heads[i]));
                }
            };
            let texts = crate::explain::answers(
                &self.lm,
                &self.tokenizer,
                &prompts,
                max_new_tokens,
                streaming.then_some(&mut shifted as &mut dyn FnMut(usize, &str)),
            )
            .await?;
            answers.extend(
                texts
                    .into_iter()
                    .zip(chunk_heads)
                    .map(|(t, head)| format!("{head}{t}")),
            );
        }
        Ok(answers)
    }
}

pub(crate) fn classification(
    scorer: Scorer<'_>,
    dataset: Dataset,
    probabilities: Vec<f64>,
    truncated: bool,
) -> Classification {
    let labels: Vec<String> = match scorer {
        Scorer::Head(h) => h.config.labels.clone(),
        _ => dataset
            .label_names()
            .iter()
            .map(|s| s.to_string())
            .collect(),
    };
    let label_index = argmax(&probabilities);
    Classification {
        task: dataset.name().to_string(),
        label: labels.get(label_index).cloned().unwrap_or_default(),
        label_index,
        labels,
        probabilities,
        truncated,
        method: scorer.method(),
        classifier: scorer.source(),
        classifier_test_f1: scorer.test_weighted_f1(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_input_is_refused_naming_the_text() {
        let err = check_texts(&[]).unwrap_err().to_string();
        assert!(err.contains("no text"), "{err}");
        let err = check_texts(&[("a post", None), ("  \n", None)])
            .unwrap_err()
            .to_string();
        assert_eq!(err, "text 2 is empty");
        assert!(check_texts(&[("a post", Some("Why?"))]).is_ok());
    }

    #[test]
    fn argmax_takes_the_first_of_ties() {
        assert_eq!(argmax(&[0.2, 0.5, 0.3]), 1);
        assert_eq!(argmax(&[0.4, 0.4, 0.2]), 0);
    }

    #[test]
    fn a_classification_names_its_label_and_method() {
        let c = classification(Scorer::Choice, Dataset::Dr, vec![0.3, 0.7], true);
        assert_eq!(c.labels, ["no", "yes"]);
        assert_eq!((c.label.as_str(), c.label_index), ("yes", 1));
        assert_eq!(
            (c.method, c.classifier, c.truncated),
            ("choice", None, true)
        );
    }
}
