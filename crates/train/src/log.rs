//! The run's JSONL log (`log.jsonl`: one JSON object a line, flushed per line so it can be
//! followed while training runs) and the curve picture drawn from it.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use data::curve::{Panel, Series, curves_svg};
use model::ModelError;
use model::io::io_err;
use serde::Serialize;
use serde_json::Value;

pub struct RunLog {
    path: PathBuf,
    file: std::fs::File,
}

impl RunLog {
    /// A new log holding `header` as its first line.
    pub fn create(path: &Path, header: &impl Serialize) -> Result<Self, ModelError> {
        let file = std::fs::File::create(path).map_err(|e| io_err(path, e))?;
        let mut log = Self {
            path: path.to_path_buf(),
            file,
        };
        log.write(header)?;
        Ok(log)
    }

    /// Reopens the log of a resumed run: lines about steps after `step` (written after the
    /// checkpoint the run resumes from) are dropped, so the log reads as one uninterrupted
    /// run; `header` is appended to record the resumption.
    pub fn resume(path: &Path, step: usize, header: &impl Serialize) -> Result<Self, ModelError> {
        let file = std::fs::File::open(path).map_err(|e| io_err(path, e))?;
        let mut kept = String::new();
        for line in std::io::BufReader::new(file).lines() {
            let line = line.map_err(|e| io_err(path, e))?;
            let parsed: Option<Value> = serde_json::from_str(&line).ok();
            // A torn last line (the process was killed mid-write) is dropped with the rest.
            let Some(v) = parsed else { continue };
            if v["step"].as_u64().is_none_or(|s| s as usize <= step) {
                kept.push_str(&line);
                kept.push('\n');
            }
        }
        model::io::write_atomic(path, kept.as_bytes())?;
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(|e| io_err(path, e))?;
        let mut log = Self {
            path: path.to_path_buf(),
            file,
        };
        log.write(header)?;
        Ok(log)
    }

    pub fn write(&mut self, event: &impl Serialize) -> Result<(), ModelError> {
        let line = serde_json::to_string(event).map_err(|e| ModelError::Config {
            path: self.path.clone(),
            reason: e.to_string(),
        })?;
        writeln!(self.file, "{line}")
            .and_then(|_| self.file.flush())
            .map_err(|e| io_err(&self.path, e))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The events of a log, in order (unparseable lines skipped).
pub fn read_events(path: &Path) -> Result<Vec<Value>, ModelError> {
    let text = std::fs::read_to_string(path).map_err(|e| io_err(path, e))?;
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect())
}

/// Training loss per step, validation loss and, where evaluated, validation weighted F1,
/// and the learning rate: the picture `curves.svg` of a run.
pub fn curves(events: &[Value], title: &str) -> String {
    let series = |event: &str, field: &str, name: &str| Series {
        name: name.to_string(),
        points: events
            .iter()
            .filter(|e| e["event"] == event)
            .filter_map(|e| Some((e["step"].as_f64()?, e[field].as_f64()?)))
            .collect(),
    };
    let mut panels = vec![Panel {
        y_label: "loss".into(),
        series: vec![
            series("step", "loss", "train"),
            series("eval", "val_loss", "validation"),
        ],
    }];
    let f1 = series("eval", "val_weighted_f1", "validation");
    if !f1.points.is_empty() {
        panels.push(Panel {
            y_label: "weighted F1".into(),
            series: vec![f1],
        });
    }
    panels.push(Panel {
        y_label: "learning rate".into(),
        series: vec![series("step", "lr", "lr")],
    });
    curves_svg(title, &panels)
}

/// Draws `curves.svg` next to the log.
pub fn write_curves(log: &Path, title: &str) -> Result<PathBuf, ModelError> {
    let svg = curves(&read_events(log)?, title);
    let out = log.with_file_name("curves.svg");
    model::io::write_atomic(&out, svg.as_bytes())?;
    Ok(out)
}
