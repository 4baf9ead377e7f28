//! Evaluation reports: per-set metrics as Markdown and JSON beside the published figures,
//! and a confusion-matrix SVG per set.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::confusion_svg::confusion_svg;
use crate::error::{DataError, Result};
use crate::labels::Dataset;
use crate::metrics::{ClassificationMetrics, classification_metrics, confusion_matrix};
use crate::predictions::ScoredPredictions;
use crate::published::published;

/// How the labels were produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Generated answers parsed by the label rules (stage 1).
    Generation,
    /// The likeliest label answer sentence (`eval --mode choice`), parsed by the same rules.
    Choice,
    /// A classification head's argmax (stage 2).
    Classifier,
}

/// The result on one set.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DatasetResult {
    pub dataset: Dataset,
    pub method: Method,
    /// A tag that tells results on the same set apart, such as a DEP-SEVERITY language.
    pub variant: Option<String>,
    /// `test`, `val`, ...
    pub split: String,
    /// Rows read, including dropped ones.
    pub rows: usize,
    /// Rows left out of scoring (unmatched t-sid / swmh gold answers).
    pub dropped: usize,
    /// Scored predictions that matched no rule and took the fallback label.
    pub unmatched_predictions: usize,
    /// Metrics over scikit-learn's default labels (the union seen in gold and predictions).
    pub metrics: ClassificationMetrics,
    /// The confusion matrix over every class of the set, for the picture.
    pub confusion_all_classes: Vec<Vec<usize>>,
    /// ROUGE-L and BLEU-4 of generated reasoning against the gold reasoning, when the
    /// answers were generated.
    pub explanations: Option<TextScores>,
}

/// Mean ROUGE-L F and BLEU-4 of explanations (the text after "Reasoning:"), and the share
/// of answers in the trained form.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TextScores {
    pub rouge_l: f64,
    pub bleu4: f64,
    /// Share of answers of the form `"<label sentence>. Reasoning: <text>"`: a label the
    /// rules recognise before a "Reasoning:" mark ([`follows_answer_form`]).
    pub answer_form: f64,
}

/// Whether `answer` has the trained form `"<label>. Reasoning: <explanation>"`: the text
/// before the first "Reasoning:" (any case) names a label of `dataset` by MentaLLaMA's
/// rules, and some explanation follows the mark.
pub fn follows_answer_form(dataset: crate::Dataset, answer: &str) -> bool {
    let Some(at) = crate::labels::reasoning_mark(answer) else {
        return false;
    };
    let (head, rest) = (
        &answer[..at],
        &answer[at + crate::labels::REASONING_MARK.len()..],
    );
    !rest.trim().is_empty() && crate::labels::match_label(dataset, head).is_some()
}

impl DatasetResult {
    /// From gold and predicted label indices (a classifier head's output; the stage-2
    /// ablation figures are shown beside these only).
    pub fn from_labels(
        dataset: Dataset,
        split: &str,
        y_true: &[usize],
        y_pred: &[usize],
    ) -> Result<Self> {
        let metrics = classification_metrics(y_true, y_pred, None)?;
        let mut result = Self::build(dataset, split, y_true, y_pred, metrics, y_true.len(), 0, 0)?;
        result.method = Method::Classifier;
        Ok(result)
    }

    /// From scored generations.
    pub fn from_scored(scored: &ScoredPredictions, split: &str) -> Result<Self> {
        let rows = scored.kept.len() + scored.dropped.len();
        Self::build(
            scored.dataset,
            split,
            &scored.y_true,
            &scored.y_pred,
            scored.metrics.clone(),
            rows,
            scored.dropped.len(),
            scored.unmatched_predictions,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn build(
        dataset: Dataset,
        split: &str,
        y_true: &[usize],
        y_pred: &[usize],
        metrics: ClassificationMetrics,
        rows: usize,
        dropped: usize,
        unmatched_predictions: usize,
    ) -> Result<Self> {
        let all: Vec<usize> = (0..dataset.num_classes()).collect();
        Ok(Self {
            dataset,
            method: Method::Generation,
            variant: None,
            split: split.to_string(),
            rows,
            dropped,
            unmatched_predictions,
            confusion_all_classes: confusion_matrix(y_true, y_pred, Some(&all))?,
            metrics,
            explanations: None,
        })
    }

    pub fn with_method(mut self, method: Method) -> Self {
        self.method = method;
        self
    }

    pub fn with_explanations(mut self, scores: TextScores) -> Self {
        self.explanations = Some(scores);
        self
    }

    pub fn with_variant(mut self, variant: impl Into<String>) -> Self {
        self.variant = Some(variant.into());
        self
    }

    /// `DR`, or `DEP-SEVERITY (portuguese)`.
    pub fn title(&self) -> String {
        match &self.variant {
            Some(v) => format!("{} ({v})", self.dataset),
            None => self.dataset.to_string(),
        }
    }

    /// The picture's file name: `confusion_<set>[-<variant>].svg`, safe characters only.
    pub fn svg_file_name(&self) -> String {
        let mut stem = self.dataset.name().to_string();
        if let Some(v) = &self.variant {
            stem.push('-');
            stem.push_str(v);
        }
        let safe: String = stem
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        format!("confusion_{safe}.svg")
    }

    pub fn confusion_svg(&self) -> String {
        let title = format!(
            "{}: {} split, n = {}",
            self.title(),
            self.split,
            self.metrics.n
        );
        confusion_svg(
            &self.confusion_all_classes,
            self.dataset.label_names(),
            &title,
        )
    }
}

/// A whole evaluation: one model on one or more sets.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvalReport {
    pub model: String,
    pub notes: Vec<String>,
    pub results: Vec<DatasetResult>,
}

fn pct(x: f64) -> String {
    format!("{:.2}", 100.0 * x)
}

fn opt(x: Option<f64>) -> String {
    x.map(|v| format!("{v:.2}"))
        .unwrap_or_else(|| "–".to_string())
}

impl EvalReport {
    pub fn new(model: impl Into<String>) -> Self {
        Self {
            model: model.into(),
            notes: Vec::new(),
            results: Vec::new(),
        }
    }

    pub fn push(&mut self, result: DatasetResult) {
        self.results.push(result);
    }

    /// Our weighted F1 (×100) on a set: its first result without a variant, else the first.
    pub fn weighted_f1(&self, dataset: Dataset) -> Option<f64> {
        let of_set = || self.results.iter().filter(|r| r.dataset == dataset);
        let r = of_set()
            .find(|r| r.variant.is_none())
            .or_else(|| of_set().next())?;
        Some(100.0 * r.metrics.weighted_f1)
    }

    /// The paper's headline number: the mean weighted F1 (×100) over DR, dreaddit, Irf,
    /// MultiWD and SAD; `None` unless all five are present.
    pub fn paper_five_average(&self) -> Option<f64> {
        let scores: Option<Vec<f64>> = Dataset::PAPER_FIVE
            .iter()
            .map(|&d| self.weighted_f1(d))
            .collect();
        scores.map(|s| s.iter().sum::<f64>() / s.len() as f64)
    }

    pub fn to_markdown(&self) -> String {
        let mut md = String::new();
        let _ = writeln!(md, "# Evaluation of {}\n", self.model);
        md.push_str("> For research and screening support only. A label is not a diagnosis.\n\n");
        for note in &self.notes {
            let _ = writeln!(md, "- {note}");
        }
        if !self.notes.is_empty() {
            md.push('\n');
        }
        self.comparison_table(&mut md);
        md.push_str("## All results\n\n");
        md.push_str(
            "| set | method | split | rows | scored | dropped | unmatched predictions | accuracy \
             | weighted F1 | macro F1 | micro F1 |\n",
        );
        md.push_str("|---|---|---|---|---|---|---|---|---|---|---|\n");
        for r in &self.results {
            let m = &r.metrics;
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                r.title(),
                match r.method {
                    Method::Generation => "generation",
                    Method::Choice => "choice",
                    Method::Classifier => "classifier",
                },
                r.split,
                r.rows,
                m.n,
                r.dropped,
                r.unmatched_predictions,
                pct(m.accuracy),
                pct(m.weighted_f1),
                pct(m.macro_f1),
                pct(m.micro_f1)
            );
        }
        md.push('\n');
        self.ablation_table(&mut md);
        for r in &self.results {
            self.per_class(&mut md, r);
        }
        md
    }

    fn comparison_table(&self, md: &mut String) {
        let p = published();
        md.push_str("## Weighted F1 (×100) beside the published figures\n\n");
        md.push_str("| system | DR | dreaddit | Irf | MultiWD | SAD | avg |\n|---|---|---|---|---|---|---|\n");
        let ours: Vec<String> = Dataset::PAPER_FIVE
            .iter()
            .map(|&d| opt(self.weighted_f1(d)))
            .collect();
        let present = Dataset::PAPER_FIVE
            .iter()
            .filter(|&&d| self.weighted_f1(d).is_some())
            .count();
        let avg = match self.paper_five_average() {
            Some(a) => format!("**{a:.2}**"),
            None => format!("– ({present}/5 sets)"),
        };
        let _ = writeln!(
            md,
            "| **{} (ours)** | {} | {avg} |",
            self.model,
            ours.join(" | ")
        );
        for s in &p.systems {
            let cells: Vec<String> = Dataset::PAPER_FIVE
                .iter()
                .map(|d| opt(s.scores.get(d.name()).copied()))
                .collect();
            let _ = writeln!(
                md,
                "| {} | {} | {} |",
                s.name,
                cells.join(" | "),
                opt(s.avg)
            );
        }
        let _ = writeln!(md, "\nPublished figures: {}.\n", p.source);
    }

    fn ablation_table(&self, md: &mut String) {
        let p = published();
        let rows: Vec<_> = self
            .results
            .iter()
            .filter(|r| r.method == Method::Classifier)
            .filter_map(|r| p.ablation(r.dataset, r.variant.as_deref()).map(|a| (r, a)))
            .collect();
        if rows.is_empty() {
            return;
        }
        md.push_str("## Stage-2 classifier figures beside the published ablation\n\n");
        md.push_str("| set | ours | published without oversampling | published with oversampling |\n|---|---|---|---|\n");
        for (r, a) in rows {
            let _ = writeln!(
                md,
                "| {} | {} | {:.2} | {:.2} |",
                r.title(),
                pct(r.metrics.weighted_f1),
                a.without_oversampling,
                a.with_oversampling
            );
        }
        let _ = writeln!(md, "\n{} ({}).\n", p.classifier.source, p.classifier.metric);
    }

    fn per_class(&self, md: &mut String, r: &DatasetResult) {
        let names = r.dataset.label_names();
        let _ = writeln!(md, "## {} ({} split)\n", r.title(), r.split);
        md.push_str("| class | precision | recall | F1 | support |\n|---|---|---|---|---|\n");
        for c in &r.metrics.per_class {
            let name = names.get(c.label).copied().unwrap_or("?");
            let _ = writeln!(
                md,
                "| {} {name} | {} | {} | {} | {} |",
                c.label,
                pct(c.precision),
                pct(c.recall),
                pct(c.f1),
                c.support
            );
        }
        if let Some(t) = r.explanations {
            let _ = writeln!(
                md,
                "\nGenerated reasoning against the gold reasoning: ROUGE-L F {} · BLEU-4 {} · \
                 answers in the form \"<label>. Reasoning: ...\": {}%",
                pct(t.rouge_l),
                pct(t.bleu4),
                pct(t.answer_form)
            );
        }
        let _ = writeln!(
            md,
            "\n![confusion matrix of {}]({})\n",
            r.title(),
            r.svg_file_name()
        );
    }

    /// The report as JSON, with the published figures it is compared against.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "model": self.model,
            "notes": self.notes,
            "paper_five_average_weighted_f1": self.paper_five_average(),
            "results": self.results,
            "published": published(),
        })
    }

    /// Writes `report.md`, `report.json` and one `confusion_*.svg` per result into `dir`
    /// (created if missing); returns the written paths.
    pub fn write(&self, dir: &Path) -> Result<Vec<PathBuf>> {
        std::fs::create_dir_all(dir).map_err(|e| DataError::write(dir, e))?;
        let mut written = Vec::new();
        let mut put = |name: &str, text: &str| -> Result<()> {
            let path = dir.join(name);
            formats::atomic::write_atomic(&path, text.as_bytes())
                .map_err(|e| DataError::write(&path, e))?;
            written.push(path);
            Ok(())
        };
        put("report.md", &self.to_markdown())?;
        let json = serde_json::to_string_pretty(&self.to_json())
            .map_err(|e| DataError::Invalid(e.to_string()))?;
        put("report.json", &json)?;
        for r in &self.results {
            put(&r.svg_file_name(), &r.confusion_svg())?;
        }
        Ok(written)
    }
}
