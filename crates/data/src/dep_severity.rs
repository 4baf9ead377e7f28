//! DEP-SEVERITY: Reddit posts labelled minimum / mild / moderate / severe, in English and
//! six machine translations with the same rows, order and labels (`text,label` CSVs).

use std::path::Path;

use serde::Serialize;

use crate::csv_table::read_columns;
use crate::error::{DataError, Locus, Result};
use crate::split::{SplitIndices, stratified_split};

/// Severity names by label index.
pub const SEVERITY_LABELS: [&str; 4] = ["minimum", "mild", "moderate", "severe"];

/// The paper's seed for the DEP-SEVERITY classifier (PAPER.md, stage-2 table).
pub const PAPER_SEED: u64 = 2;

/// One DEP-SEVERITY row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeverityExample {
    pub text: String,
    /// 0 minimum, 1 mild, 2 moderate, 3 severe.
    pub label: usize,
    pub at: Locus,
}

/// The label index of a severity name (case and surrounding spaces ignored).
pub fn severity_label(name: &str) -> Option<usize> {
    let name = name.trim().to_lowercase();
    SEVERITY_LABELS.iter().position(|s| *s == name)
}

/// Reads a DEP-SEVERITY CSV file of any language.
pub fn load(path: &Path) -> Result<Vec<SeverityExample>> {
    let rows = read_columns(path, &[&["text"], &["label"]])?;
    rows.into_iter()
        .map(|row| {
            let [text, label]: [String; 2] = row.values.try_into().unwrap_or_default();
            if text.trim().is_empty() {
                return Err(DataError::EmptyPost { at: row.at });
            }
            match severity_label(&label) {
                Some(label) => Ok(SeverityExample {
                    text,
                    label,
                    at: row.at,
                }),
                None => Err(DataError::BadSeverityLabel { at: row.at, label }),
            }
        })
        .collect()
}

/// The paper's stratified 80/10/10 split of loaded rows (see [`crate::split`] for the
/// rounding: 3553 rows → 2842/355/356).
pub fn split(examples: &[SeverityExample], seed: u64) -> Result<SplitIndices> {
    let labels: Vec<usize> = examples.iter().map(|e| e.label).collect();
    stratified_split(&labels, seed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::Dataset;

    #[test]
    fn severity_names() {
        assert_eq!(severity_label(" Moderate "), Some(2));
        assert_eq!(severity_label("minimal"), None);
        assert_eq!(Dataset::DepSeverity.label_names(), SEVERITY_LABELS);
    }
}
