//! What a head-only run leaves for the record: `log.jsonl` and `curves.svg` of the recipes
//! tried, and the machine and commit it ran on.

use std::path::Path;

use anyhow::Result;
use data::Dataset;
use serde_json::json;
use train::probe::Trial;

use super::task::Context_;

/// The machine, in words, for the record.
pub(crate) fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| format!(", {:.0} GiB", kb / 1048576.0))
        .unwrap_or_default();
    format!("{cores} cores of {cpu}{mem}")
}

pub(crate) fn command_output(cmd: &str, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new(cmd).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// `log.jsonl` (every recipe tried, with its validation F1) and `curves.svg` (validation F1
/// against the penalty, one line per cut, weighting and depth set).
pub(super) fn write_log(
    out: &Path,
    dataset: Dataset,
    trials: &[Trial],
    cx: &Context_<'_>,
) -> Result<()> {
    let mut text = String::new();
    for t in trials {
        let (cut, d) = cx.recipe_of(&t.config.depth_set);
        text.push_str(
            &json!({
                "event": "trial", "l2": t.config.l2, "balanced": t.config.balanced, "depths": d,
                "max_length": cut, "val_weighted_f1": t.val_weighted_f1,
                "iterations": t.iterations, "seconds": t.seconds,
            })
            .to_string(),
        );
        text.push('\n');
    }
    model::io::write_atomic(&out.join("log.jsonl"), text.as_bytes())?;
    let mut series: Vec<data::curve::Series> = Vec::new();
    for t in trials {
        let (cut, d) = cx.recipe_of(&t.config.depth_set);
        let d: Vec<String> = d.iter().map(ToString::to_string).collect();
        let name = format!(
            "{cut} tokens, {} layers {}",
            if t.config.balanced {
                "balanced,"
            } else {
                "plain,"
            },
            d.join(",")
        );
        let point = (t.config.l2.log10(), 100.0 * t.val_weighted_f1);
        match series.iter_mut().find(|s| s.name == name) {
            Some(s) => s.points.push(point),
            None => series.push(data::curve::Series {
                name,
                points: vec![point],
            }),
        }
    }
    let svg = data::curve::curves_svg(
        &format!(
            "{}: validation weighted F1 against log10 of the L2 penalty",
            dataset.name()
        ),
        &[data::curve::Panel {
            y_label: "val weighted F1 ×100".into(),
            series,
        }],
    );
    model::io::write_atomic(&out.join("curves.svg"), svg.as_bytes())?;
    Ok(())
}
