//! `mentalqlm train classifier --mode head`: a head-only classifier per task over the frozen
//! base model's pooled hidden states. The features of every text are computed once (and
//! cached on disk, so a killed run resumes at its last chunk); the recipe (tokens per text,
//! L2 penalty, class weighting, depths) is chosen on validation, and `--score-test` then scores the chosen,
//! f16-rounded classifier on the test split, which plays no part in the choice.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use data::task_data::{Item, Sources, TaskSets, load_task};
use data::{Dataset, classification_metrics};
use indicatif::{ProgressBar, ProgressStyle};
use model::heads::probe::{PROBE_KIND, ProbeConfig, save_probe};
use serde_json::json;
use train::probe::{FitConfig, Row, Solver, Trial, fit, predict, round_f16, select};

use super::classifier::{Balance, ClassifierArgs};
use crate::classifiers::{self, Extraction};

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

/// The machine, in words, for the record.
fn machine() -> String {
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

fn command_output(cmd: &str, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new(cmd).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn bar(len: usize, template: &str) -> ProgressBar {
    let bar = ProgressBar::new(len as u64);
    bar.set_style(
        ProgressStyle::with_template(template)
            .expect("static template")
            .progress_chars("=> "),
    );
    bar
}

pub fn run(args: &ClassifierArgs) -> Result<()> {
    let all = args.dataset.eq_ignore_ascii_case("all");
    let tasks: Vec<Dataset> = if all {
        ALL_TASKS.to_vec()
    } else {
        vec![Dataset::from_name(&args.dataset)?]
    };
    // clap refuses --max-length with --max-lengths.
    let mut max_lengths = match (args.max_length, &args.max_lengths) {
        (Some(n), _) => vec![n],
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
        args.cache_dir.clone().or_else(classifiers::default_cache)
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

struct Context_<'a> {
    lm: &'a model::CausalLm,
    tokenizer: &'a formats::tokenizer::TextTokenizer,
    model_sha: &'a str,
    model_name: String,
    depths: &'a [usize],
    depth_sets: &'a [Vec<usize>],
    max_lengths: &'a [usize],
    batch_size: usize,
    cache: Option<PathBuf>,
    device: String,
}

impl Context_<'_> {
    /// The cut and depths of a recipe's feature blocks.
    fn recipe_of(&self, blocks: &[usize]) -> (usize, Vec<usize>) {
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

fn train_task(
    args: &ClassifierArgs,
    cx: &Context_<'_>,
    dataset: Dataset,
    sets: TaskSets,
    out: &Path,
    seed: u64,
) -> Result<serde_json::Value> {
    let start = Instant::now();
    let train_items = super::sample(sets.train, args.limit, seed);
    let val_items = super::sample(sets.val, args.limit.map(|n| (n / 4).max(1)), seed);
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

/// `log.jsonl` (every recipe tried, with its validation F1) and `curves.svg` (validation F1
/// against the penalty, one line per cut, weighting and depth set).
fn write_log(out: &Path, dataset: Dataset, trials: &[Trial], cx: &Context_<'_>) -> Result<()> {
    let mut text = String::new();
    for t in trials {
        let (cut, d) = cx.recipe_of(&t.config.depth_set);
        text.push_str(&json!({
            "event": "trial", "l2": t.config.l2, "balanced": t.config.balanced, "depths": d,
            "max_length": cut, "val_weighted_f1": t.val_weighted_f1,
            "iterations": t.iterations, "seconds": t.seconds,
        }).to_string());
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
