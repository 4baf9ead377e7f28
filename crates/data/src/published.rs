//! The published figures we compare against, kept in one data file (`published.json`,
//! transcribed from PAPER.md) and compiled in.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::labels::Dataset;

const PUBLISHED_JSON: &str = include_str!("../published.json");

/// All published figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Published {
    pub source: String,
    pub metric: String,
    /// The IMHI sets of the comparison table, in column order.
    pub datasets: Vec<String>,
    pub systems: Vec<PublishedSystem>,
    pub classifier: PublishedAblation,
}

/// One row of the IMHI comparison table (weighted F1 ×100).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PublishedSystem {
    pub name: String,
    /// Per-set figures by IMHI set name; empty where only the average was published.
    pub scores: BTreeMap<String, f64>,
    /// The five-set average as published.
    pub avg: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The stage-2 classifier's oversampling ablation (weighted F1 ×100).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PublishedAblation {
    pub source: String,
    pub metric: String,
    pub rows: Vec<AblationRow>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AblationRow {
    pub set: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    pub without_oversampling: f64,
    pub with_oversampling: f64,
}

/// The compiled-in figures. `published.json` is part of the source, not user input; the
/// test `published_figures_parse_and_add_up` guarantees it parses.
pub fn published() -> &'static Published {
    static CELL: OnceLock<Published> = OnceLock::new();
    CELL.get_or_init(|| {
        serde_json::from_str(PUBLISHED_JSON)
            .expect("crates/data/published.json is valid (checked by a unit test)")
    })
}

impl Published {
    pub fn system(&self, name: &str) -> Option<&PublishedSystem> {
        self.systems
            .iter()
            .find(|s| s.name.eq_ignore_ascii_case(name))
    }

    /// A system's published weighted F1 (×100) on a set, if there is one.
    pub fn score(&self, system: &str, dataset: Dataset) -> Option<f64> {
        self.system(system)?.scores.get(dataset.name()).copied()
    }

    /// The classifier ablation row of a set (and language, for DEP-SEVERITY).
    pub fn ablation(&self, dataset: Dataset, language: Option<&str>) -> Option<&AblationRow> {
        self.classifier.rows.iter().find(|r| {
            r.set == dataset.name()
                && match (&r.language, language) {
                    (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
                    (None, _) => true,
                    (Some(_), None) => false,
                }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_figures_parse_and_add_up() {
        let p: Published = serde_json::from_str(PUBLISHED_JSON).unwrap();
        assert_eq!(p.datasets, Dataset::PAPER_FIVE.map(|d| d.name()).to_vec());
        for s in &p.systems {
            if s.scores.len() == 5 {
                let mean = s.scores.values().sum::<f64>() / 5.0;
                let avg = s.avg.unwrap();
                assert!(
                    (mean - avg).abs() < 0.006,
                    "{}: mean {mean} vs published {avg}",
                    s.name
                );
            }
        }
        assert_eq!(
            published().score("MentaLLaMA-chat-13B", Dataset::Sad),
            Some(63.62)
        );
        assert_eq!(
            published().system("MentalQLM (0.5B)").and_then(|s| s.avg),
            Some(77.8)
        );
        let row = published()
            .ablation(Dataset::DepSeverity, Some("Portuguese"))
            .unwrap();
        assert_eq!(row.with_oversampling, 42.84);
    }
}
