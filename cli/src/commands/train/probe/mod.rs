//! `mentalqlm train classifier --mode head`: a head-only classifier per task over the frozen
//! base model's pooled hidden states. The features of every text are computed once (and
//! cached on disk, so a killed run resumes at its last chunk); the recipe (tokens per text,
//! L2 penalty, class weighting, depths) is chosen on validation, and `--score-test` then scores the chosen,
//! f16-rounded classifier on the test split, which plays no part in the choice.
//!
//! This file checks the flags and runs each task; `task.rs` computes a task's features,
//! chooses and fits its classifier and saves it; `record.rs` writes what the run leaves for
//! the record (log, curves, the machine and commit).

pub(crate) mod record;
mod task;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use data::Dataset;
use data::task_data::{Sources, load_task};

use self::task::{Context_, train_task};
use super::classifier::ClassifierArgs;
use crate::classifiers;

/// The tasks `--task all` trains.
pub const ALL_TASKS: [Dataset; 6] = [
    Dataset::Dr,
    Dataset::Dreaddit,
    Dataset::Irf,
    Dataset::MultiWd,
    Dataset::Sad,
    Dataset::DepSeverity,
];

/// Six depths spread evenly to the top (5, 10, ..., 30 for a 30-layer model).
pub fn default_depths(layers: usize) -> Vec<usize> {
    let mut d: Vec<usize> = (1..=6)
        .map(|i| ((layers * i) as f64 / 6.0).round() as usize)
        .filter(|&d| d >= 1)
        .collect();
    d.dedup();
    d
}

/// The depth sets tried: the thirds (10, 20, 30 of 30 layers, the measured start)
/// and every extracted depth.
fn default_depth_sets(depths: &[usize], layers: usize) -> Vec<Vec<usize>> {
    let thirds: Vec<usize> = [layers / 3, 2 * layers / 3, layers]
        .into_iter()
        .filter(|d| depths.contains(d))
        .collect();
    let mut sets = Vec::new();
    if !thirds.is_empty() && thirds.len() < depths.len() {
        sets.push(thirds);
    }
    sets.push(depths.to_vec());
    sets
}

fn parse_depth_sets(text: &str) -> Result<Vec<Vec<usize>>> {
    text.split(';')
        .map(|set| {
            set.split(',')
                .map(|d| {
                    d.trim()
                        .parse::<usize>()
                        .with_context(|| format!("--depth-sets: `{d}` is not a depth"))
                })
                .collect::<Result<Vec<_>>>()
        })
        .collect()
}

/// Where each task's classifier goes: `--out` itself for one task, `--out/<task>` for all.
fn task_out(out: &Path, dataset: Dataset, all: bool) -> PathBuf {
    if all {
        classifiers::task_dir(out, dataset)
    } else {
        out.to_path_buf()
    }
}

/// An output folder may be new, empty, or hold a classifier this command wrote (which is
/// replaced): anything else is refused before any work.
fn check_out(dir: &Path) -> Result<()> {
    let empty = !dir.exists()
        || std::fs::read_dir(dir)
            .map(|mut d| d.next().is_none())
            .unwrap_or(false);
    if empty || (dir.join("classifier.json").is_file() && classifiers::is_probe(dir)?) {
        return Ok(());
    }
    bail!(
        "{} exists and holds something other than a head-only classifier; choose another --out",
        dir.display()
    )
}

pub fn run(args: &ClassifierArgs) -> Result<()> {
    let all = args.dataset.eq_ignore_ascii_case("all");
    let tasks: Vec<Dataset> = if all {
        ALL_TASKS.to_vec()
    } else {
        vec![Dataset::from_name(&args.dataset)?]
    };
    let mut max_lengths = match (args.max_length, &args.max_lengths) {
        (Some(_), Some(_)) => bail!("give --max-length or --max-lengths, not both"),
        (Some(n), None) => vec![n],
        (None, Some(list)) => list.clone(),
        (None, None) => vec![192, 384],
    };
    max_lengths.sort_unstable();
    max_lengths.dedup();
    let batch_size = args.batch_size.unwrap_or(8);
    let seed = args.seed.unwrap_or(0);
    if max_lengths.is_empty()
        || max_lengths.contains(&0)
        || batch_size == 0
        || args.limit == Some(0)
    {
        bail!("--max-length(s), --batch-size and --limit must be at least 1");
    }
    if args.l2.is_empty() || args.l2.iter().any(|l| !(l.is_finite() && *l > 0.0)) {
        bail!("--l2 takes positive penalties, e.g. 1e-2,1e-3");
    }
    let sources = Sources {
        imhi: args.data.as_deref(),
        dep_severity: args.dep_severity.as_deref(),
    };
    // Read every task's data and check every output folder before the model loads.
    let mut work = Vec::new();
    for &d in &tasks {
        let sets = load_task(d, &sources, seed)
            .with_context(|| format!("reading the {} data", d.name()))?;
        let out = task_out(&args.run.out, d, all);
        check_out(&out)?;
        work.push((d, sets, out));
    }
    let path = args.model.model_path()?;
    let (loaded, chosen) = args.model.load()?;
    let tokenizer = loaded
        .tokenizer
        .clone()
        .context("the model has no tokenizer")?;
    let lm = loaded.model;
    let model_sha = classifiers::model_sha256(&path)?;
    let layers = lm.model.layers.len();
    let depths = match &args.depths {
        Some(d) => d.clone(),
        None => default_depths(layers),
    };
    let depth_sets = match &args.depth_sets {
        Some(text) => parse_depth_sets(text)?,
        None => default_depth_sets(&depths, layers),
    };
    if depths.is_empty()
        || depths.windows(2).any(|w| w[0] >= w[1])
        || depths.iter().any(|&d| d == 0 || d > layers)
    {
        bail!("--depths must ascend within 1..={layers}, got {depths:?}");
    }
    for set in &depth_sets {
        if set.is_empty() || set.iter().any(|d| !depths.contains(d)) {
            bail!("--depth-sets: {set:?} must be a non-empty subset of --depths {depths:?}");
        }
    }
    let cache = if args.no_cache {
        None
    } else {
        args.cache_dir.clone().or_else(crate::paths::default_cache)
    };
    let context = Context_ {
        lm: &lm,
        tokenizer: &tokenizer,
        model_sha: &model_sha,
        model_name: path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default(),
        depths: &depths,
        depth_sets: &depth_sets,
        max_lengths: &max_lengths,
        batch_size,
        cache,
        device: chosen.description.clone(),
    };
    let mut summary = Vec::new();
    for (dataset, sets, out) in work {
        summary.push(train_task(args, &context, dataset, sets, &out, seed)?);
    }
    if all {
        let five: Vec<f64> = summary
            .iter()
            .filter(|s| s["dataset"] != "DEP-SEVERITY")
            .filter_map(|s| s["test_weighted_f1"].as_f64())
            .collect();
        if five.len() == 5 {
            eprintln!(
                "average test weighted F1 over the five IMHI sets: {:.2}",
                100.0 * five.iter().sum::<f64>() / 5.0
            );
        }
    }
    Ok(())
}
