//! IMHI instruction data (MentaLLaMA): CSV files with `query` and `gpt-3.5-turbo` columns,
//! or JSON lists of `{"instruct": ..., "output": ...}` objects.
//!
//! The query is `Consider this post: "<post>" Question: <question>` and the gold answer is
//! `<label sentence>. Reasoning: <explanation>` (PAPER.md, "Prompt format").

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::csv_table::read_columns;
use crate::error::{DataError, Locus, Result};
use crate::labels::{Dataset, parse_gold_label};

/// The query's opening words in IMHI.
pub const QUERY_PREFIX: &str = "Consider this post: ";

/// Header names accepted for the query and the gold answer (first = IMHI's own).
const QUERY_COLUMNS: &[&str] = &["query", "instruct", "instruction"];
const ANSWER_COLUMNS: &[&str] = &["gpt-3.5-turbo", "output", "answer"];

/// A split of the IMHI release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    Test,
    Train,
    Val,
}

impl Split {
    pub fn name(self) -> &'static str {
        match self {
            Split::Test => "test",
            Split::Train => "train",
            Split::Val => "val",
        }
    }
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Split {
    type Err = DataError;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_lowercase().as_str() {
            "test" => Ok(Split::Test),
            "train" => Ok(Split::Train),
            "val" | "valid" | "validation" | "dev" => Ok(Split::Val),
            _ => Err(DataError::UnknownSplit {
                name: s.to_string(),
            }),
        }
    }
}

/// One IMHI example.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Example {
    pub dataset: Dataset,
    /// The whole query, as the model sees it.
    pub query: String,
    /// The post between the first and last `"` of the query.
    pub post: String,
    /// The question after the post, without the `Question:` marker.
    pub question: String,
    /// The gold answer (`<label sentence>. Reasoning: ...`).
    pub answer: String,
    /// The gold label, by the same rules as predictions; `None` when the example leaves
    /// scoring (an unmatched t-sid or swmh gold answer, PAPER.md).
    pub label: Option<usize>,
    /// The file and the 1-based line (CSV) or record number (JSON) it came from.
    pub at: Locus,
}

/// The post of an IMHI query: the text between its first and last `"`, as MentalQLM's
/// stage-2 code cuts it (PAPER.md, "text" row of the classifier table). `None` when the
/// query has fewer than two quotes.
pub fn post_text(query: &str) -> Option<&str> {
    let first = query.find('"')?;
    let last = query.rfind('"')?;
    (last > first).then(|| &query[first + 1..last])
}

/// The question of an IMHI query: what follows the last `"`, with a leading `Question:`
/// removed and spaces trimmed. `None` when the query has no `"`.
pub fn question_text(query: &str) -> Option<&str> {
    let last = query.rfind('"')?;
    let tail = query[last + 1..].trim_start();
    Some(tail.strip_prefix("Question:").unwrap_or(tail).trim())
}

/// Builds an IMHI query from a post and a question (the inverse of the two functions above).
pub fn build_query(post: &str, question: &str) -> String {
    format!("{QUERY_PREFIX}\"{post}\" Question: {question}")
}

/// Checks a query and gold answer and makes the example.
pub fn make_example(dataset: Dataset, query: String, answer: String, at: Locus) -> Result<Example> {
    if query.trim().is_empty() {
        return Err(DataError::EmptyField { at, field: "query" });
    }
    if answer.trim().is_empty() {
        return Err(DataError::EmptyField {
            at,
            field: "gold answer",
        });
    }
    let Some(post) = post_text(&query) else {
        let reason = "it has no post in double quotes".to_string();
        return Err(DataError::BadQuery { at, reason });
    };
    if post.trim().is_empty() {
        return Err(DataError::EmptyPost { at });
    }
    let post = post.to_string();
    let question = question_text(&query).unwrap_or("").to_string();
    let label = parse_gold_label(dataset, &answer);
    Ok(Example {
        dataset,
        query,
        post,
        question,
        answer,
        label,
        at,
    })
}

/// Reads an IMHI CSV file (`query`, `gpt-3.5-turbo`).
pub fn load_csv(path: &Path, dataset: Dataset) -> Result<Vec<Example>> {
    let rows = read_columns(path, &[QUERY_COLUMNS, ANSWER_COLUMNS])?;
    rows.into_iter()
        .map(|row| {
            let mut values = row.values.into_iter();
            let query = values.next().unwrap_or_default();
            let answer = values.next().unwrap_or_default();
            make_example(dataset, query, answer, row.at)
        })
        .collect()
}

/// Reads an IMHI-style JSON list of `{"instruct": ..., "output": ...}` objects (also
/// accepting `instruction`/`query` and `answer`/`gpt-3.5-turbo` as keys).
pub fn load_json(path: &Path, dataset: Dataset) -> Result<Vec<Example>> {
    let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
    let values: Vec<serde_json::Value> =
        serde_json::from_str(&text).map_err(|e| DataError::Json {
            path: path.to_path_buf(),
            line: e.line() as u64,
            reason: e.to_string(),
        })?;
    values
        .into_iter()
        .enumerate()
        .map(|(i, value)| {
            let at = Locus {
                path: path.to_path_buf(),
                line: None,
                record: i + 1,
            };
            let query = string_field(&value, &["instruct", "instruction", "query"], &at)?;
            let answer = string_field(&value, &["output", "gpt-3.5-turbo", "answer"], &at)?;
            make_example(dataset, query, answer, at)
        })
        .collect()
}

fn string_field(value: &serde_json::Value, keys: &[&str], at: &Locus) -> Result<String> {
    let Some(object) = value.as_object() else {
        return Err(DataError::BadRecord {
            at: at.clone(),
            reason: "not a JSON object".into(),
        });
    };
    for key in keys {
        match object.get(*key) {
            Some(serde_json::Value::String(s)) => return Ok(s.clone()),
            Some(_) => {
                let reason = format!("field `{key}` is not a string");
                return Err(DataError::BadRecord {
                    at: at.clone(),
                    reason,
                });
            }
            None => {}
        }
    }
    let reason = format!("missing field `{}`", keys.join("` or `"));
    Err(DataError::BadRecord {
        at: at.clone(),
        reason,
    })
}

/// Reads an IMHI file of either kind: `.json` as a JSON list, anything else as CSV. When
/// `dataset` is `None` it comes from the file stem (`test/SAD.csv`) or, for the
/// `train/<set>/train.csv` layout, the parent folder.
pub fn load_file(path: &Path, dataset: Option<Dataset>) -> Result<Vec<Example>> {
    let dataset = match dataset {
        Some(d) => d,
        None => dataset_of_path(path)?,
    };
    let is_json = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    if is_json {
        load_json(path, dataset)
    } else {
        load_csv(path, dataset)
    }
}

/// The dataset a file belongs to, from its stem or else its parent folder's name.
pub fn dataset_of_path(path: &Path) -> Result<Dataset> {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    Dataset::from_name(&stem).or_else(|err| {
        let parent = path
            .parent()
            .and_then(|p| p.file_name())
            .map(|s| s.to_string_lossy());
        parent.and_then(|p| Dataset::from_name(&p).ok()).ok_or(err)
    })
}

/// Where a split lives in an IMHI folder: `<dir>/test/<set>.csv`,
/// `<dir>/train/<set>/train.csv`, `<dir>/train/<set>/val.csv` (names matched ignoring case).
/// The public release has no Irf or MultiWD training file; asking for one says to use `val`.
pub fn split_path(dir: &Path, dataset: Dataset, split: Split) -> Result<PathBuf> {
    let name = dataset.name();
    let found = match split {
        Split::Test => find_ignoring_case(&dir.join("test"), &format!("{name}.csv")),
        Split::Train | Split::Val => find_ignoring_case(&dir.join("train"), name)
            .and_then(|d| find_ignoring_case(&d, &format!("{}.csv", split.name()))),
    };
    found.ok_or_else(|| {
        let expected = match split {
            Split::Test => dir.join("test").join(format!("{name}.csv")),
            _ => dir
                .join("train")
                .join(name)
                .join(format!("{}.csv", split.name())),
        };
        let hint = match (split, dataset) {
            (Split::Train, Dataset::Irf | Dataset::MultiWd) => format!(
                "; the public IMHI release has no {name} training file: train on the `val` split \
                 and keep `test` for testing"
            ),
            _ => String::new(),
        };
        DataError::MissingSplit {
            dataset: name.to_string(),
            split: split.name().to_string(),
            path: expected,
            hint,
        }
    })
}

/// The training file of a set: train.csv, or val.csv where IMHI publishes no training file
/// (Irf, MultiWD), as the paper trains on those.
pub fn training_file(dir: &Path, dataset: Dataset) -> Result<(PathBuf, Split)> {
    match split_path(dir, dataset, Split::Train) {
        Ok(p) if p.is_file() => Ok((p, Split::Train)),
        _ => Ok((split_path(dir, dataset, Split::Val)?, Split::Val)),
    }
}

/// Reads one split of one dataset from an IMHI folder.
pub fn load_split(dir: &Path, dataset: Dataset, split: Split) -> Result<Vec<Example>> {
    load_csv(&split_path(dir, dataset, split)?, dataset)
}

/// `dir/name` if it exists, else the one entry of `dir` whose name equals `name` ignoring case.
fn find_ignoring_case(dir: &Path, name: &str) -> Option<PathBuf> {
    let exact = dir.join(name);
    if exact.exists() {
        return Some(exact);
    }
    let entries = std::fs::read_dir(dir).ok()?;
    entries
        .filter_map(|e| e.ok())
        .find(|e| e.file_name().to_string_lossy().eq_ignore_ascii_case(name))
        .map(|e| e.path())
}

/// Writes examples in the format their path names: `.json` as a list of
/// `{"instruct", "output"}` objects, anything else as IMHI CSV (`query`, `gpt-3.5-turbo`),
/// so a selected subset reads back like the original.
pub fn write_examples(path: &Path, examples: &[Example]) -> Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| DataError::write(parent, e))?;
    }
    let is_json = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    if is_json {
        let list: Vec<serde_json::Value> = examples
            .iter()
            .map(|e| serde_json::json!({ "instruct": e.query, "output": e.answer }))
            .collect();
        let text =
            serde_json::to_string_pretty(&list).map_err(|e| DataError::Invalid(e.to_string()))?;
        return formats::atomic::write_atomic(path, text.as_bytes())
            .map_err(|e| DataError::write(path, e));
    }
    let file = formats::atomic::AtomicFile::create(path).map_err(|e| DataError::write(path, e))?;
    let mut writer = csv::Writer::from_writer(file);
    let io = |e: csv::Error| DataError::write(path, std::io::Error::other(e));
    writer
        .write_record(["query", "gpt-3.5-turbo"])
        .map_err(io)?;
    for e in examples {
        writer
            .write_record([e.query.as_str(), e.answer.as_str()])
            .map_err(io)?;
    }
    let file = writer
        .into_inner()
        .map_err(|e| DataError::write(path, std::io::Error::other(e.to_string())))?;
    file.commit().map_err(|e| DataError::write(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn post_and_question_of_a_query() {
        let q = r#"Consider this post: "He said "hi" to me" Question: Does the poster suffer from stress?"#;
        assert_eq!(post_text(q), Some(r#"He said "hi" to me"#));
        assert_eq!(
            question_text(q),
            Some("Does the poster suffer from stress?")
        );
        assert_eq!(post_text("no quotes"), None);
        assert_eq!(post_text(r#"one " quote"#), None);
        let built = build_query("a post", "Is it?");
        assert_eq!(post_text(&built), Some("a post"));
        assert_eq!(question_text(&built), Some("Is it?"));
    }

    #[test]
    fn splits_parse() {
        assert_eq!("VALID".parse::<Split>().ok(), Some(Split::Val));
        assert!("holdout".parse::<Split>().is_err());
    }
}
