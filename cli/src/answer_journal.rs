//! The answers `eval` has already computed for one set, kept as they come, so that a killed
//! or interrupted run continues where it stopped instead of starting the set again.
//!
//! The file is JSONL: a header `{"journal": KEY, "n": N}`, then one `{"i": I, "predict": A}`
//! per answer. A run with other settings (another key) starts the file over. A line torn by
//! a kill is dropped when the file is opened.

use std::collections::hash_map::DefaultHasher;
use std::fs::{File, OpenOptions};
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Header {
    journal: String,
    n: usize,
}

#[derive(Serialize, Deserialize)]
struct Record {
    i: usize,
    predict: String,
}

/// A digest of everything an answer depends on, as the header's key.
pub fn key(parts: &[&str]) -> String {
    let mut h = DefaultHasher::new();
    for p in parts {
        p.hash(&mut h);
    }
    format!("{:016x}", h.finish())
}

pub struct AnswerJournal {
    path: PathBuf,
    file: File,
}

/// What [`AnswerJournal::open`] found.
pub struct Opened {
    pub journal: AnswerJournal,
    /// The answers known so far, by example.
    pub answers: Vec<Option<String>>,
    /// Why an existing file was started over, if it was.
    pub restarted: Option<String>,
}

impl AnswerJournal {
    /// Opens the journal at `path` for `n` examples under `key`, keeping what a run with the
    /// same key wrote there; starts it over otherwise.
    pub fn open(path: &Path, key: &str, n: usize) -> Result<Opened> {
        let mut answers = vec![None; n];
        let mut keep = String::new();
        let mut restarted = None;
        match std::fs::read(path) {
            Ok(bytes) => {
                // Only whole lines count: a kill may have cut the last one.
                let end = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
                let text = String::from_utf8_lossy(&bytes[..end]);
                let mut lines = text.lines();
                let header = lines
                    .next()
                    .and_then(|l| serde_json::from_str::<Header>(l).ok());
                match header {
                    Some(h) if h.journal == key && h.n == n => {
                        keep.push_str(text.lines().next().unwrap_or_default());
                        keep.push('\n');
                        for (k, line) in lines.enumerate() {
                            let r: Record = serde_json::from_str(line).with_context(|| {
                                format!(
                                    "{}: line {} is not an answer record",
                                    path.display(),
                                    k + 2
                                )
                            })?;
                            if r.i >= n {
                                bail!(
                                    "{}: line {} names example {} of {n}",
                                    path.display(),
                                    k + 2,
                                    r.i
                                );
                            }
                            answers[r.i] = Some(r.predict);
                            keep.push_str(line);
                            keep.push('\n');
                        }
                    }
                    Some(_) => restarted = Some("it was written with other settings".into()),
                    None => restarted = Some("its header is unreadable".into()),
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
        if keep.is_empty() {
            keep = serde_json::to_string(&Header {
                journal: key.to_string(),
                n,
            })?;
            keep.push('\n');
        }
        // Rewritten whole (the project's atomic write), so no torn line stays in it.
        formats::atomic::write_atomic(path, keep.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))?;
        let file = OpenOptions::new()
            .append(true)
            .open(path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        Ok(Opened {
            journal: AnswerJournal {
                path: path.to_path_buf(),
                file,
            },
            answers,
            restarted,
        })
    }

    /// Keeps a batch's answers, on disk before it returns.
    pub fn append<'a>(&mut self, batch: impl IntoIterator<Item = (usize, &'a str)>) -> Result<()> {
        let mut text = String::new();
        for (i, predict) in batch {
            text.push_str(&serde_json::to_string(&Record {
                i,
                predict: predict.to_string(),
            })?);
            text.push('\n');
        }
        self.file
            .write_all(text.as_bytes())
            .and_then(|()| self.file.sync_data())
            .with_context(|| format!("cannot write {}", self.path.display()))
    }

    /// Removes the file: the set's predictions are written.
    pub fn finish(self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resumes_drops_a_torn_line_and_restarts_on_other_settings() {
        let dir = std::env::temp_dir().join(format!("mq-answers-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("predictions_DR.partial.jsonl");
        let mut o = AnswerJournal::open(&path, "k1", 4).unwrap();
        assert!(o.answers.iter().all(Option::is_none));
        assert!(o.restarted.is_none());
        o.journal.append([(2, "b"), (0, "a")]).unwrap();
        drop(o);
        // A kill in the middle of a line.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(br#"{"i": 3, "pred"#).unwrap();
        drop(f);
        let mut o = AnswerJournal::open(&path, "k1", 4).unwrap();
        assert_eq!(
            o.answers,
            vec![Some("a".into()), None, Some("b".into()), None]
        );
        o.journal.append([(3, "d")]).unwrap();
        drop(o);
        let o = AnswerJournal::open(&path, "k1", 4).unwrap();
        assert_eq!(o.answers[3].as_deref(), Some("d"));
        assert_eq!(o.answers.iter().flatten().count(), 3);
        drop(o);
        // Other settings, or another count: start over.
        let o = AnswerJournal::open(&path, "k2", 4).unwrap();
        assert!(o.restarted.is_some());
        assert!(o.answers.iter().all(Option::is_none));
        drop(o);
        // A record naming an example out of range is an error that names the file and line.
        std::fs::write(
            &path,
            "{\"journal\":\"k2\",\"n\":4}\n{\"i\":9,\"predict\":\"x\"}\n",
        )
        .unwrap();
        let err = AnswerJournal::open(&path, "k2", 4)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("line 2") && err.contains("predictions_DR"),
            "{err}"
        );
        let o = AnswerJournal::open(&path, "k2", 4);
        assert!(o.is_err());
        std::fs::write(&path, "{\"journal\":\"k2\",\"n\":4}\nnot json\n").unwrap();
        let err = AnswerJournal::open(&path, "k2", 4)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("line 2"), "{err}");
        let o = AnswerJournal::open(&path, "k3", 4).unwrap();
        o.journal.finish();
        assert!(!path.exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
