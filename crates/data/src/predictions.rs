//! Predictions files in LLaMA-Factory's `generated_predictions.jsonl` shape, one JSON object
//! a line with `prompt`, `label` (the gold answer) and `predict` (the generation), and their
//! scoring with the label rules.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};

use formats::atomic::AtomicFile;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};
use crate::labels::{Dataset, match_label, parse_gold_label, parse_label};
use crate::metrics::{ClassificationMetrics, classification_metrics};

/// One generated answer beside its gold answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PredictionRow {
    /// The prompt the model saw. Older LLaMA-Factory versions omit it.
    #[serde(default)]
    pub prompt: String,
    /// The gold answer.
    pub label: String,
    /// The model's answer.
    pub predict: String,
}

/// The longest line [`read_predictions`] reads: a generation of a few thousand tokens is
/// tens of KiB; a line beyond this is a wrong file, refused before it is held in memory.
pub const MAX_LINE_BYTES: usize = 8 << 20;

/// Reads a predictions JSONL file; blank lines are skipped, other fields ignored.
pub fn read_predictions(path: &Path) -> Result<Vec<PredictionRow>> {
    let file = File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut reader = BufReader::new(file);
    let mut rows = Vec::new();
    let mut buf = Vec::new();
    for i in 0.. {
        buf.clear();
        let n = reader
            .by_ref()
            .take(MAX_LINE_BYTES as u64 + 1)
            .read_until(b'\n', &mut buf)
            .map_err(|e| DataError::io(path, e))?;
        if n == 0 {
            break;
        }
        let json_err = |reason: String| DataError::Json {
            path: path.to_path_buf(),
            line: i as u64 + 1,
            reason,
        };
        if buf.len() > MAX_LINE_BYTES {
            return Err(json_err(format!(
                "the line is longer than {} MiB; is this a predictions file?",
                MAX_LINE_BYTES >> 20
            )));
        }
        let line = std::str::from_utf8(&buf).map_err(|e| json_err(format!("not UTF-8: {e}")))?;
        if line.trim().is_empty() {
            continue;
        }
        let row = serde_json::from_str(line).map_err(|e| json_err(e.to_string()))?;
        rows.push(row);
    }
    Ok(rows)
}

/// Writes rows as JSONL (creating parent folders).
pub fn write_predictions(path: &Path, rows: &[PredictionRow]) -> Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| DataError::write(parent, e))?;
    }
    let mut out = AtomicFile::create(path).map_err(|e| DataError::write(path, e))?;
    for row in rows {
        // Serialising plain strings cannot fail; only the write can.
        let json = serde_json::to_string(row).map_err(|e| DataError::Invalid(e.to_string()))?;
        writeln!(out, "{json}").map_err(|e| DataError::write(path, e))?;
    }
    out.commit().map_err(|e| DataError::write(path, e))
}

/// Labels and metrics of a set of predictions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScoredPredictions {
    pub dataset: Dataset,
    /// Gold labels of the scored rows.
    pub y_true: Vec<usize>,
    /// Predicted labels of the scored rows.
    pub y_pred: Vec<usize>,
    /// Indices (0-based, into the input rows) of the scored rows.
    pub kept: Vec<usize>,
    /// Indices of rows left out because their gold answer matched no rule (t-sid, swmh).
    pub dropped: Vec<usize>,
    /// How many scored predictions matched no rule and took the fallback label.
    pub unmatched_predictions: usize,
    pub metrics: ClassificationMetrics,
}

/// Scores gold and predicted answers with one parser (PAPER.md, "Scoring"): each side is
/// cut before "Reasoning:", lowercased and matched in the dataset's rule order. Metrics use
/// scikit-learn's default labels (the sorted union of gold and predicted labels).
pub fn score_answers<G: AsRef<str>, P: AsRef<str>>(
    dataset: Dataset,
    gold: &[G],
    predicted: &[P],
) -> Result<ScoredPredictions> {
    if gold.len() != predicted.len() {
        return Err(DataError::LengthMismatch {
            what: "scoring",
            left_name: "gold answers",
            left: gold.len(),
            right_name: "predictions",
            right: predicted.len(),
        });
    }
    let (mut y_true, mut y_pred, mut kept, mut dropped) = (vec![], vec![], vec![], vec![]);
    let mut unmatched_predictions = 0;
    for (i, (g, p)) in gold.iter().zip(predicted).enumerate() {
        let Some(t) = parse_gold_label(dataset, g.as_ref()) else {
            dropped.push(i);
            continue;
        };
        unmatched_predictions += usize::from(match_label(dataset, p.as_ref()).is_none());
        y_true.push(t);
        y_pred.push(parse_label(dataset, p.as_ref()));
        kept.push(i);
    }
    let metrics = classification_metrics(&y_true, &y_pred, None)?;
    Ok(ScoredPredictions {
        dataset,
        y_true,
        y_pred,
        kept,
        dropped,
        unmatched_predictions,
        metrics,
    })
}

/// [`score_answers`] over predictions rows (`label` = gold, `predict` = model).
pub fn score_predictions(dataset: Dataset, rows: &[PredictionRow]) -> Result<ScoredPredictions> {
    let gold: Vec<&str> = rows.iter().map(|r| r.label.as_str()).collect();
    let predicted: Vec<&str> = rows.iter().map(|r| r.predict.as_str()).collect();
    score_answers(dataset, &gold, &predicted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(label: &str, predict: &str) -> PredictionRow {
        PredictionRow {
            prompt: String::new(),
            label: label.into(),
            predict: predict.into(),
        }
    }

    #[test]
    fn a_100_mb_line_is_refused_by_size() {
        let dir = std::env::temp_dir().join(format!("mentalqlm-bigline-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("huge.jsonl");
        let first = "{\"label\": \"yes\", \"predict\": \"no\"}\n";
        std::fs::write(&path, first).unwrap();
        // A sparse 100 MB second line: no newline in it, and no disk used.
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len(first.len() as u64 + 100_000_000).unwrap();
        let err = read_predictions(&path).unwrap_err().to_string();
        assert!(
            err.contains("huge.jsonl:2:") && err.contains("longer than 8 MiB"),
            "{err}"
        );
        // A line just under the limit is read (and fails as JSON, naming its line).
        std::fs::write(
            &path,
            format!("{first}{}\n", "x".repeat(MAX_LINE_BYTES - 1)),
        )
        .unwrap();
        let err = read_predictions(&path).unwrap_err().to_string();
        assert!(
            err.contains("huge.jsonl:2:") && !err.contains("longer than"),
            "{err}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn tricky_reasoning_does_not_leak() {
        let rows = [
            row(
                "Yes, the poster suffers from depression. Reasoning: x",
                "No. Reasoning: yes yes",
            ),
            row("No, the poster does not. Reasoning: yes", "Yes, clearly."),
            row("No, ...", "Unclear."),
        ];
        let s = score_predictions(Dataset::Dr, &rows).unwrap();
        assert_eq!(s.y_true, vec![1, 0, 0]);
        assert_eq!(s.y_pred, vec![0, 1, 0]);
        assert_eq!(s.unmatched_predictions, 1);
    }

    #[test]
    fn unmatched_gold_drops_for_swmh() {
        let rows = [
            row("This shows anxiety.", "anxiety"),
            row("This shows nothing.", "anxiety"),
        ];
        let s = score_predictions(Dataset::Swmh, &rows).unwrap();
        assert_eq!((s.kept.clone(), s.dropped.clone()), (vec![0], vec![1]));
    }
}
