//! One task of `train classifier --mode head`: the features of its texts, the recipe chosen
//! on validation, the fit (optionally on training and validation together), the test score,
//! and the saved f16 classifier.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Result, bail};
use data::task_data::{Item, TaskSets};
use data::{Dataset, classification_metrics};
use indicatif::{ProgressBar, ProgressStyle};
use model::heads::probe::{PROBE_KIND, ProbeConfig, save_probe};
use serde_json::json;
use train::probe::{FitConfig, Row, Solver, fit, predict, round_f16, select};

use super::record::{command_output, machine, write_log};
use crate::classifiers::{self, Extraction};
use crate::commands::train::classifier::{Balance, ClassifierArgs};
use crate::commands::train::sample;

fn bar(len: usize, template: &str) -> ProgressBar {
    let bar = crate::runner::bar(len as u64);
    bar.set_style(
        ProgressStyle::with_template(template)
            .expect("static template")
            .progress_chars("=> "),
    );
    bar
}

/// What every task of a run shares: the model and the feature settings.
pub(super) struct Context_<'a> {
    pub(super) lm: &'a model::CausalLm,
    pub(super) tokenizer: &'a formats::tokenizer::TextTokenizer,
    pub(super) model_sha: &'a str,
    pub(super) model_name: String,
    pub(super) depths: &'a [usize],
    pub(super) depth_sets: &'a [Vec<usize>],
    pub(super) max_lengths: &'a [usize],
    pub(super) batch_size: usize,
    pub(super) cache: Option<PathBuf>,
    pub(super) device: String,
}

impl Context_<'_> {
    /// The cut and depths of a recipe's feature blocks.
    pub(super) fn recipe_of(&self, blocks: &[usize]) -> (usize, Vec<usize>) {
        let n = self.depths.len();
        let cut = blocks.first().map_or(0, |b| b / n);
        (
            self.max_lengths[cut],
            blocks.iter().map(|&b| self.depths[b % n]).collect(),
        )
    }

    /// Features of the distinct texts of `items` (in their order) and each item's row.
    fn rows(
        &self,
        items: &[Item],
        dataset: Dataset,
        what: &str,
        offset: usize,
    ) -> Result<(Vec<Vec<f32>>, Vec<Row>, usize)> {
        let questions = data::tasks::questions(dataset);
        let (unique, of) = classifiers::distinct(items.iter().map(|i| i.text.as_str()));
        let bar = bar(unique.len(), "{msg} [{bar:30}] {pos}/{len} texts ETA {eta}");
        let start = Instant::now();
        let settings = Extraction {
            model_sha: self.model_sha,
            depths: self.depths,
            max_lengths: self.max_lengths,
            batch_size: self.batch_size,
            cache: self.cache.clone(),
        };
        let label = format!("{} {what}", dataset.name());
        let feats = classifiers::features(self.lm, self.tokenizer, &unique, &settings, |p| {
            let rate = p.tokens_computed as f64 / start.elapsed().as_secs_f64().max(1e-9);
            bar.set_message(format!(
                "{label:>16}: features, {rate:.0} tok/s, {} cached",
                p.rows_cached
            ));
            bar.set_position(p.rows_done as u64);
        })?;
        bar.finish_and_clear();
        let rows = items
            .iter()
            .zip(&of)
            .map(|(it, &t)| Row {
                text: offset + t,
                group: if questions.is_empty() {
                    0
                } else {
                    questions
                        .iter()
                        .position(|q| q.eq_ignore_ascii_case(&it.question))
                        .expect("load_task checked the questions")
                },
                label: it.label,
            })
            .collect();
        Ok((feats, rows, unique.len()))
    }
}

fn weighted_f1(t: &[usize], p: &[usize]) -> f64 {
    classification_metrics(t, p, None)
        .map(|m| m.weighted_f1)
        .unwrap_or(0.0)
}

pub(super) fn train_task(
    args: &ClassifierArgs,
    cx: &Context_<'_>,
    dataset: Dataset,
    sets: TaskSets,
    out: &Path,
    seed: u64,
) -> Result<serde_json::Value> {
    let start = Instant::now();
    let train_items = sample(sets.train, args.limit, seed);
    let val_items = sample(sets.val, args.limit.map(|n| (n / 4).max(1)), seed);
    if train_items.is_empty() || val_items.is_empty() {
        bail!("{}: empty training or validation set", dataset.name());
    }
    let (mut features, train, n_train) = cx.rows(&train_items, dataset, "train", 0)?;
    let (val_feats, val, n_val) = cx.rows(&val_items, dataset, "val", features.len())?;
    features.extend(val_feats);
    let feature_seconds = start.elapsed().as_secs_f64();

    let questions = data::tasks::questions(dataset);
    let groups = questions.len().max(1);
    let classes = dataset.num_classes();
    let hidden = cx.lm.model.hidden_size();
    let balances: Vec<bool> = match args.balance {
        Balance::Both => vec![false, true],
        Balance::Yes => vec![true],
        Balance::No => vec![false],
    };
    let mut l2 = args.l2.clone();
    l2.sort_by(|a, b| b.total_cmp(a));
    // Feature blocks are cut-major (every depth of the first cut, then the next), so a
    // recipe's blocks are `cut · depths + depth`. The shorter cut comes first: ties go to it,
    // then to the stronger penalty.
    let mut grid = Vec::new();
    for cut in 0..cx.max_lengths.len() {
        for &balanced in &balances {
            for set in cx.depth_sets {
                let depth_set: Vec<usize> = set
                    .iter()
                    .map(|d| {
                        cut * cx.depths.len()
                            + cx.depths.iter().position(|x| x == d).expect("checked")
                    })
                    .collect();
                for &l in &l2 {
                    grid.push(FitConfig {
                        l2: l,
                        balanced,
                        depth_set: depth_set.clone(),
                    });
                }
            }
        }
    }
    let solver = Solver {
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        ..Solver::default()
    };
    let fit_bar = bar(grid.len(), "{msg} [{bar:30}] {pos}/{len} recipes ETA {eta}");
    fit_bar.set_message(format!("{:>16}: fitting", dataset.name()));
    let fit_start = Instant::now();
    let (probe, config, trials) = select(
        &features,
        &train,
        &val,
        hidden,
        groups,
        classes,
        &grid,
        solver,
        &weighted_f1,
        |_| fit_bar.inc(1),
    );
    fit_bar.finish_and_clear();
    let fit_seconds = fit_start.elapsed().as_secs_f64();
    let (chosen_length, chosen_depths) = cx.recipe_of(&config.depth_set);
    let val_gold: Vec<usize> = val.iter().map(|r| r.label).collect();
    let (val_pred, _) = predict(
        &round_f16(&probe),
        &features,
        &val,
        &config.depth_set,
        hidden,
    );
    let val_f1 = weighted_f1(&val_gold, &val_pred);
    let probe = if args.refit {
        let both: Vec<Row> = train.iter().chain(&val).copied().collect();
        fit(
            &features, &both, hidden, groups, classes, &config, solver, None,
        )
        .probe
    } else {
        probe
    };
    let shipped = round_f16(&probe);

    let mut metrics = json!({
        "val_weighted_f1": val_f1, "val_n": val.len(), "train_n": train.len(),
        "train_texts": n_train, "val_texts": n_val,
        "recipe": {
            "l2": config.l2, "balanced": config.balanced, "depths": chosen_depths,
            "max_length": chosen_length,
        },
        "refit_on_train_and_val": args.refit,
    });
    if args.score_test {
        let (test_feats, test_rows, _) = cx.rows(&sets.test, dataset, "test", 0)?;
        let gold: Vec<usize> = test_rows.iter().map(|r| r.label).collect();
        let (pred, _) = predict(&shipped, &test_feats, &test_rows, &config.depth_set, hidden);
        let m = classification_metrics(&gold, &pred, None)?;
        metrics["test_weighted_f1"] = json!(m.weighted_f1);
        metrics["test_accuracy"] = json!(m.accuracy);
        metrics["test_n"] = json!(gold.len());
    }
    let seconds = start.elapsed().as_secs_f64();
    let command: Vec<String> = std::env::args().collect();
    let provenance = json!({
        "command": command.join(" "),
        "commit": command_output("git", &["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into()),
        "date": command_output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]).unwrap_or_default(),
        "machine": machine(), "device": cx.device,
        "data": { "train": sets.files.train, "val": sets.files.val, "test": sets.files.test },
        "limit": args.limit, "seed": seed,
        "seconds": { "features": feature_seconds, "fit": fit_seconds, "total": seconds },
    });
    let probe_config = ProbeConfig {
        kind: PROBE_KIND.into(),
        dataset: dataset.name().into(),
        labels: dataset
            .label_names()
            .iter()
            .map(|s| s.to_string())
            .collect(),
        questions,
        depths: chosen_depths,
        hidden_size: hidden,
        max_length: chosen_length,
        base_model_sha256: cx.model_sha.to_string(),
        base_model: cx.model_name.clone(),
        metrics: metrics.clone(),
        provenance,
    };
    save_probe(&shipped, &probe_config, out)?;
    write_log(out, dataset, &trials, cx)?;
    let mut line = json!({ "dataset": dataset.name(), "out": out, "seconds": seconds });
    if let (Some(o), Some(m)) = (line.as_object_mut(), metrics.as_object()) {
        for (k, v) in m {
            o.insert(k.clone(), v.clone());
        }
    }
    let test = metrics["test_weighted_f1"]
        .as_f64()
        .map(|f| format!(", test {:.2}", 100.0 * f))
        .unwrap_or_default();
    eprintln!(
        "{:>16}: validation weighted F1 {:.2}{test} ({seconds:.0} s) -> {}",
        dataset.name(),
        100.0 * val_f1,
        out.display()
    );
    println!("{line}");
    Ok(line)
}
