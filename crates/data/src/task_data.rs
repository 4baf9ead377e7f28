//! Each task's training, validation and test examples for a classifier, as texts with a
//! question and a label, and which file each came from. Test files are read only for the
//! test part; nothing of them enters training or the choice of a recipe.
//! - DR, dreaddit, SAD: `train.csv` trains, `val.csv` validates, `test/<set>.csv` tests.
//! - Irf, MultiWD: IMHI publishes no training file, so `val.csv` is split by post (seeded,
//!   [`VAL_FRACTION`] of the posts validate; a post's questions stay on one side).
//! - DEP-SEVERITY: the paper's seeded, stratified 80/10/10 split of one language file.

use std::collections::HashMap;
use std::path::Path;

use serde::Serialize;

use crate::error::{DataError, Result};
use crate::imhi::{self, Split};
use crate::labels::Dataset;
use crate::split::SplitMix64;
use crate::{dep_severity, tasks};

/// The part of Irf's and MultiWD's posts held out of `val.csv` for validation.
pub const VAL_FRACTION: f64 = 0.2;

/// One example: a text, the question asked about it (a task's default question where it
/// asks one), its label and the gold answer as written in its file.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub text: String,
    pub question: String,
    pub label: usize,
    pub gold: String,
    /// `file:line` of the record.
    pub at: String,
}

/// The three parts and where they came from.
#[derive(Debug, Clone)]
pub struct TaskSets {
    pub train: Vec<Item>,
    pub val: Vec<Item>,
    pub test: Vec<Item>,
    pub files: Files,
}

/// Which file trained, validated and tested, in words.
#[derive(Debug, Clone, Serialize)]
pub struct Files {
    pub train: String,
    pub val: String,
    pub test: String,
}

/// Where the data lives.
pub struct Sources<'a> {
    /// The IMHI folder (`test/`, `train/<set>/`).
    pub imhi: Option<&'a Path>,
    /// A DEP-SEVERITY language file.
    pub dep_severity: Option<&'a Path>,
}

fn imhi_items(dataset: Dataset, examples: Vec<imhi::Example>) -> Result<Vec<Item>> {
    let known = tasks::questions(dataset);
    let mut out = Vec::with_capacity(examples.len());
    for e in examples {
        let Some(label) = e.label else { continue };
        if !known.is_empty()
            && !known
                .iter()
                .any(|q| q.eq_ignore_ascii_case(e.question.trim()))
        {
            return Err(DataError::BadRecord {
                at: e.at.clone(),
                reason: format!(
                    "{} asks one of {known:?}, not `{}`",
                    dataset.name(),
                    e.question
                ),
            });
        }
        out.push(Item {
            text: e.post,
            question: e.question.trim().to_string(),
            label,
            gold: e.answer,
            at: e.at.to_string(),
        });
    }
    Ok(out)
}

/// Splits items by text: a seeded [`VAL_FRACTION`] of the distinct texts (at least one)
/// validates, the rest trains.
pub fn split_by_text(items: Vec<Item>, seed: u64) -> (Vec<Item>, Vec<Item>) {
    let mut texts: Vec<&str> = Vec::new();
    let mut seen: HashMap<&str, ()> = HashMap::new();
    for it in &items {
        if seen.insert(it.text.as_str(), ()).is_none() {
            texts.push(it.text.as_str());
        }
    }
    let mut order: Vec<usize> = (0..texts.len()).collect();
    SplitMix64::new(seed).shuffle(&mut order);
    let n_val = ((texts.len() as f64 * VAL_FRACTION).round() as usize).clamp(1, texts.len());
    let held: std::collections::HashSet<String> = order[..n_val]
        .iter()
        .map(|&i| texts[i].to_string())
        .collect();
    items.into_iter().partition(|it| !held.contains(&it.text))
}

/// The training, validation and test parts of `dataset`.
pub fn load_task(dataset: Dataset, sources: &Sources<'_>, seed: u64) -> Result<TaskSets> {
    if dataset == Dataset::DepSeverity {
        let path = sources.dep_severity.ok_or_else(|| {
            DataError::Invalid(
                "DEP-SEVERITY needs its language file (--dep-severity FILE.csv)".into(),
            )
        })?;
        let rows = dep_severity::load(path)?;
        let parts = dep_severity::split(&rows, dep_severity::PAPER_SEED)?;
        let question = tasks::default_question(dataset).to_string();
        let sentences = tasks::answer_sentences(dataset);
        let pick = |idx: &[usize]| -> Vec<Item> {
            idx.iter()
                .map(|&i| Item {
                    text: rows[i].text.clone(),
                    question: question.clone(),
                    label: rows[i].label,
                    gold: sentences[rows[i].label].clone(),
                    at: rows[i].at.to_string(),
                })
                .collect()
        };
        let name = path.display();
        let seed = dep_severity::PAPER_SEED;
        return Ok(TaskSets {
            train: pick(&parts.train),
            val: pick(&parts.val),
            test: pick(&parts.test),
            files: Files {
                train: format!(
                    "{name}: the 80% training part of the stratified split, seed {seed}"
                ),
                val: format!("{name}: its 10% validation part"),
                test: format!("{name}: its 10% test part"),
            },
        });
    }
    let dir = sources.imhi.ok_or_else(|| {
        DataError::Invalid(format!(
            "{} needs the IMHI folder (--data DIR)",
            dataset.name()
        ))
    })?;
    let test_path = imhi::split_path(dir, dataset, Split::Test)?;
    let test = imhi_items(dataset, imhi::load_csv(&test_path, dataset)?)?;
    let val_path = imhi::split_path(dir, dataset, Split::Val)?;
    let val_items = imhi_items(dataset, imhi::load_csv(&val_path, dataset)?)?;
    let (train, val, files) = match dataset {
        Dataset::Irf | Dataset::MultiWd => {
            let (train, val) = split_by_text(val_items, seed);
            let v = val_path.display();
            let pct = (VAL_FRACTION * 100.0).round();
            (
                train,
                val,
                (
                    format!("{v}: the posts left after the validation slice"),
                    format!("{v}: a seeded {pct}% of its posts (seed {seed}), all their questions"),
                ),
            )
        }
        _ => {
            let train_path = imhi::split_path(dir, dataset, Split::Train)?;
            let train = imhi_items(dataset, imhi::load_csv(&train_path, dataset)?)?;
            (
                train,
                val_items,
                (
                    train_path.display().to_string(),
                    val_path.display().to_string(),
                ),
            )
        }
    };
    Ok(TaskSets {
        train,
        val,
        test,
        files: Files {
            train: files.0,
            val: files.1,
            test: test_path.display().to_string(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(text: &str, q: &str) -> Item {
        Item {
            text: text.into(),
            question: q.into(),
            label: 0,
            gold: String::new(),
            at: String::new(),
        }
    }

    #[test]
    fn split_by_text_keeps_a_posts_questions_together() {
        let mut items = Vec::new();
        for t in 0..20 {
            for q in ["a", "b", "c"] {
                items.push(item(&format!("post {t}"), q));
            }
        }
        let (train, val) = split_by_text(items.clone(), 5);
        assert_eq!(val.len(), 4 * 3, "20% of 20 posts, three questions each");
        assert_eq!(train.len() + val.len(), items.len());
        for v in &val {
            assert!(
                train.iter().all(|t| t.text != v.text),
                "{} is on both sides",
                v.text
            );
        }
        let (_, again) = split_by_text(items.clone(), 5);
        assert_eq!(val, again, "seeded");
        let (_, other) = split_by_text(items, 6);
        assert_ne!(val, other);
    }
}
