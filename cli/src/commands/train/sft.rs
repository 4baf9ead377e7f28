//! `mentalqlm train sft`: MentalQLM's stage 1. The IMHI instruction sets (or a `select`
//! output, which has the same layout) are mixed, formatted as ChatML, and a LoRA on every
//! linear layer learns the answers. The adapter of the last update is the result (PAPER.md:
//! "the last checkpoint is used"), written in PEFT's format.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use burn::module::Module;
use clap::Args as ClapArgs;
use data::imhi::{self, Split};
use data::{ChatTemplate, Dataset, fit_query};
use model::lora::LoraConfig;
use model::lora::peft_io::{attach_new, save_adapter};
use train::sft::{SftConfig, SftExample, SftInputs, total_steps, train_sft_with};

use super::{Monitor, RunArgs, sample};
use crate::model_arg::ModelArgs;

#[derive(ClapArgs, Debug)]
pub struct SftArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The IMHI folder, or a `mentalqlm select` output (train/<set>/train.csv; val.csv for
    /// Irf and MultiWD, which have no training file).
    #[arg(long)]
    pub data: PathBuf,
    /// Where the validation files (train/<set>/val.csv) are read, when --data is a `select`
    /// output, which holds the training files only. Default: --data.
    #[arg(long)]
    pub val_data: Option<PathBuf>,
    /// The instruction sets to mix.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "DR,dreaddit,Irf,MultiWD,SAD"
    )]
    pub datasets: Vec<String>,
    #[arg(long, default_value_t = 15)]
    pub epochs: usize,
    /// Stop after N updates, the learning-rate schedule ending there: the same budget for
    /// training sets of different sizes (e.g. pruned and unpruned).
    #[arg(long)]
    pub max_steps: Option<usize>,
    #[arg(long, default_value_t = 5e-5)]
    pub lr: f64,
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f64,
    /// Share of the updates spent warming the rate up linearly (the paper uses none).
    #[arg(long, default_value_t = 0.0)]
    pub warmup_ratio: f64,
    /// Examples per update.
    #[arg(long, default_value_t = 16)]
    pub batch_size: usize,
    /// Examples per forward pass (gradients are accumulated up to --batch-size): lower it
    /// when memory is short; the result is the same.
    #[arg(long, default_value_t = 4)]
    pub micro_batch_size: usize,
    /// Tokens per example (instruction + answer); long posts are shortened, the question
    /// and answer kept.
    #[arg(long, default_value_t = 512)]
    pub cutoff: usize,
    /// Gradient clipping on the joint norm; 0 turns it off.
    #[arg(long, default_value_t = 1.0)]
    pub max_grad_norm: f64,
    /// Training loss weight of each answer's label tokens (its words before "Reasoning:",
    /// e.g. "Yes, the poster suffers from stress."); the reasoning's tokens weigh 1. Above 1
    /// the updates lean on the label the answer states; 1 is the paper's plain answer loss.
    /// The validation loss is always the plain one.
    #[arg(long, default_value_t = 1.0)]
    pub label_weight: f64,
    /// Balance each set's classes in the label loss: an answer's label tokens also weigh
    /// n / (classes × n_class) of its set (sklearn's "balanced" class weights), so a set's
    /// rarer label ("No" in DR, Irf) is not learnt as an exception. The reasoning's tokens
    /// and the validation loss are unchanged. Alone it balances every set; with a list
    /// (e.g. DR,Irf,dreaddit,SAD) only those: a set whose label share depends on its
    /// question (MultiWD's "yes": 4% to 65% by wellness dimension) is moved the same way
    /// for every question by one set-wide weight.
    #[arg(
        long,
        value_name = "SETS",
        num_args = 0..=1,
        value_delimiter = ',',
        default_missing_value = "all"
    )]
    pub balance_labels: Option<Vec<String>>,
    #[arg(long, default_value_t = 8)]
    pub lora_r: usize,
    #[arg(long, default_value_t = 16.0)]
    pub lora_alpha: f64,
    #[arg(long, default_value_t = 0.0)]
    pub lora_dropout: f64,
    /// `all` (q,k,v,o,gate,up,down) or a list such as q_proj,v_proj.
    #[arg(long, value_delimiter = ',', default_value = "all")]
    pub targets: Vec<String>,
    /// Seeds LoRA's initialisation, the data order and any sampling.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Evaluate the answer loss on validation every N updates (and at the end).
    #[arg(long, default_value_t = 200)]
    pub eval_every: usize,
    /// Validation examples, drawn from the val.csv of the sets that train on train.csv; 0
    /// for none.
    #[arg(long, default_value_t = 64)]
    pub val_examples: usize,
    /// Use a seeded sample of N training examples per set.
    #[arg(long)]
    pub limit: Option<usize>,
    #[arg(long, default_value = data::prompt::DEFAULT_SYSTEM)]
    pub system: String,
    /// LoRA on the top K layers only, trained over the cached output of the frozen layers
    /// below (computed once per example and kept under --cache-dir): on a CPU about
    /// layers/K times faster per epoch. 0 puts LoRA on every layer and runs them all.
    #[arg(long, default_value_t = 0)]
    pub top_k: usize,
    /// Also write the result as a shippable explainer into DIR (e.g. classifiers/explainer):
    /// the adapter in f16 and explainer.json (base model sha256, command, data, validation
    /// answer loss). `classify --explain` and `eval --mode generate` then use it by default.
    #[arg(long)]
    pub ship: Option<PathBuf>,
    /// Where the cached prefix is kept (default ~/.cache/mentalqlm/features).
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// Rows per forward pass while the prefix is built.
    #[arg(long, default_value_t = 8)]
    pub prefix_batch_size: usize,
    #[command(flatten)]
    pub run: RunArgs,
}

impl SftArgs {
    fn check(&self) -> Result<()> {
        if !(self.lr > 0.0 && self.lr.is_finite()) || !(self.weight_decay >= 0.0) {
            bail!("--lr must be positive and --weight-decay non-negative");
        }
        if self.epochs == 0 || self.batch_size == 0 || self.micro_batch_size == 0 {
            bail!("--epochs, --batch-size and --micro-batch-size must be at least 1");
        }
        if self.micro_batch_size > self.batch_size {
            bail!(
                "--micro-batch-size ({}) cannot exceed --batch-size ({})",
                self.micro_batch_size,
                self.batch_size
            );
        }
        if self.max_steps == Some(0) {
            bail!("--max-steps must be at least 1");
        }
        if self.cutoff < 8 || self.lora_r == 0 || self.limit == Some(0) {
            bail!("--cutoff must be at least 8, --lora-r and --limit at least 1");
        }
        if !(0.0..1.0).contains(&self.warmup_ratio) || !(0.0..1.0).contains(&self.lora_dropout) {
            bail!("--warmup-ratio and --lora-dropout must be in [0, 1)");
        }
        if !(self.max_grad_norm >= 0.0) || !(self.lora_alpha > 0.0) {
            bail!("--max-grad-norm must be non-negative and --lora-alpha positive");
        }
        if !(self.label_weight > 0.0 && self.label_weight.is_finite()) {
            bail!(
                "--label-weight must be a positive number (got {})",
                self.label_weight
            );
        }
        if let Some(sets) = &self.balance_labels {
            for name in sets.iter().filter(|n| n.as_str() != "all") {
                let wanted = Dataset::from_name(name)
                    .with_context(|| format!("--balance-labels names {name:?}"))?;
                let mixed = self
                    .datasets
                    .iter()
                    .any(|d| Dataset::from_name(d).is_ok_and(|d| d == wanted));
                if !mixed {
                    bail!(
                        "--balance-labels names {name}, which is not in --datasets ({})",
                        self.datasets.join(",")
                    );
                }
            }
        }
        if self.prefix_batch_size == 0 {
            bail!("--prefix-batch-size must be at least 1");
        }
        if self.model.adapter.is_some() {
            bail!(
                "train sft starts a new adapter; --adapter is for stage 2 (use --resume to continue a run)"
            );
        }
        Ok(())
    }

    /// Whether --balance-labels weighs this set's classes.
    fn balances(&self, dataset: Dataset) -> bool {
        self.balance_labels.as_ref().is_some_and(|sets| {
            sets.iter()
                .any(|n| n == "all" || Dataset::from_name(n).is_ok_and(|d| d == dataset))
        })
    }
}

/// Tokenised training and validation examples, and how many were dropped.
struct Sets {
    train: Vec<SftExample>,
    val: Vec<SftExample>,
    dropped: usize,
    per_dataset: serde_json::Map<String, serde_json::Value>,
}

fn load_sets(
    args: &SftArgs,
    tokenizer: &formats::tokenizer::TextTokenizer,
    format: data::ChatFormat,
) -> Result<Sets> {
    let template = ChatTemplate::new(args.system.clone()).with_format(format);
    let count = |text: &str| tokenizer.encode(text).map_or(usize::MAX, |ids| ids.len());
    let mut dropped = 0;
    // Each kept example with its gold label (for --balance-labels).
    let mut encode = |examples: &[imhi::Example]| -> Result<Vec<(SftExample, Option<usize>)>> {
        let mut out = Vec::with_capacity(examples.len());
        for e in examples {
            let answer = tokenizer.encode(&template.answer_part(&e.answer))?;
            let label = label_tokens(&answer, tokenizer, &template, &e.answer)?;
            // The instruction gets what the answer leaves, but never less than half: a very
            // long answer is cut instead.
            let budget = args
                .cutoff
                .saturating_sub(answer.len())
                .max(args.cutoff / 2);
            let fitted = fit_query(&template, &e.query, budget, &count);
            let prompt = tokenizer.encode(&fitted.prompt)?;
            match SftExample::new(&prompt, &answer, args.cutoff) {
                Some(x) => out.push((x.with_label_tokens(label), e.label)),
                None => dropped += 1,
            }
        }
        Ok(out)
    };
    let (mut train, mut val_pool) = (Vec::new(), Vec::new());
    let mut per_dataset = serde_json::Map::new();
    for name in &args.datasets {
        let dataset = Dataset::from_name(name)?;
        let (file, split) = imhi::training_file(&args.data, dataset)?;
        let examples = imhi::load_csv(&file, dataset)
            .with_context(|| format!("reading {}", file.display()))?;
        let examples = sample(examples, args.limit, args.seed);
        let mut encoded = encode(&examples)?;
        let mut entry = serde_json::json!({ "file": file, "examples": encoded.len() });
        if args.balances(dataset) {
            let scales = balanced_scales(&encoded);
            for (e, label) in &mut encoded {
                if let Some(s) = label.and_then(|l| scales.get(&l)) {
                    e.label_scale = *s;
                }
            }
            entry["label_scales"] = serde_json::json!(scales);
        }
        per_dataset.insert(dataset.name().into(), entry);
        train.extend(encoded.into_iter().map(|(e, _)| e));
        if split == Split::Train && args.val_examples > 0 {
            let val_root = args.val_data.as_ref().unwrap_or(&args.data);
            let val_file = imhi::split_path(val_root, dataset, Split::Val)?;
            let rows = imhi::load_csv(&val_file, dataset)
                .with_context(|| format!("reading {}", val_file.display()))?;
            val_pool.extend(sample(rows, Some(args.val_examples), args.seed));
        }
    }
    let val = encode(&sample(val_pool, Some(args.val_examples), args.seed))?
        .into_iter()
        .map(|(e, _)| e)
        .collect();
    Ok(Sets {
        train,
        val,
        dropped,
        per_dataset,
    })
}

/// Each class's label scale in one set, sklearn's "balanced" weights: n / (classes × n_c)
/// over the examples with a gold label, so that every class weighs the same in sum and the
/// mean scale is 1.
fn balanced_scales(
    examples: &[(SftExample, Option<usize>)],
) -> std::collections::BTreeMap<usize, f32> {
    let mut counts = std::collections::BTreeMap::new();
    for label in examples.iter().filter_map(|(_, l)| *l) {
        *counts.entry(label).or_insert(0usize) += 1;
    }
    let n: usize = counts.values().sum();
    let k = counts.len();
    counts
        .into_iter()
        .map(|(label, c)| (label, (n as f64 / (k * c) as f64) as f32))
        .collect()
}

/// How many of `answer`'s tokens (the tokenised answer part of `text`) spell its label:
/// the tokens it shares with the answer part of the words before "Reasoning:" alone (a
/// token that spans the cut is not counted). 0 when the answer has no "Reasoning:".
fn label_tokens(
    answer: &[u32],
    tokenizer: &formats::tokenizer::TextTokenizer,
    template: &ChatTemplate,
    text: &str,
) -> Result<usize> {
    let Some(at) = data::labels::reasoning_mark(text) else {
        return Ok(0);
    };
    let head = &text[..at];
    let head = tokenizer.encode(&template.answer_part(head.trim_end()))?;
    Ok(answer.iter().zip(&head).take_while(|(a, b)| a == b).count())
}

pub fn run(mut args: SftArgs) -> Result<()> {
    args.check()?;
    args.run.prepare()?;
    let super::ForTraining {
        path,
        chosen,
        device,
        loaded,
        tokenizer,
    } = super::load_for_training(&args.model)?;
    let format = crate::model_arg::chat_format(&loaded.model, &tokenizer);
    let sets = load_sets(&args, &tokenizer, format)?;
    if sets.train.is_empty() {
        bail!("no training example fits --cutoff {}", args.cutoff);
    }
    let mut lm = loaded.model;
    let layers = lm.model.layers.len();
    if args.top_k > layers {
        bail!("--top-k must be within 0..={layers}, got {}", args.top_k);
    }
    let targets: Vec<&str> = args.targets.iter().map(String::as_str).collect();
    let mut lora = LoraConfig::new(args.lora_r, args.lora_alpha, args.lora_dropout, &targets);
    let start = layers - args.top_k;
    if args.top_k > 0 {
        lora = lora.with_layers(&(start..layers).collect::<Vec<_>>());
    }
    lora.validate().map_err(anyhow::Error::msg)?;
    let caches = if args.top_k > 0 {
        Some(build_prefix(
            &args,
            &lm,
            &path,
            start,
            tokenizer.pad_id,
            &sets,
        )?)
    } else {
        None
    };
    let inputs = match &caches {
        Some((train, val)) => SftInputs::Prefix { start, train, val },
        None => SftInputs::Tokens,
    };
    if attach_new(&mut lm, &lora, args.seed, &device) == 0 {
        bail!("--targets {targets:?} matches no projection (use all, or q_proj, v_proj, ...)");
    }
    let mut config = SftConfig {
        lr: args.lr,
        weight_decay: args.weight_decay,
        epochs: args.epochs,
        batch_size: args.batch_size,
        micro_batch_size: args.micro_batch_size,
        warmup_steps: 0,
        max_grad_norm: (args.max_grad_norm > 0.0).then_some(args.max_grad_norm),
        seed: args.seed,
        pad_id: tokenizer.pad_id,
        eval_every: args.eval_every,
        max_steps: args.max_steps,
        label_weight: args.label_weight,
    };
    let total = total_steps(sets.train.len(), &config);
    config.warmup_steps = (args.warmup_ratio * total as f64).ceil() as usize;
    let header = serde_json::json!({
        "event": "config", "stage": "sft", "model": path, "device": chosen.description,
        "train": sets.train.len(), "val": sets.val.len(), "dropped": sets.dropped,
        "label_tokens": sets.train.iter().map(|e| e.label_end - e.answer_start).sum::<usize>(),
        "answer_tokens": sets.train.iter().map(SftExample::answer_tokens).sum::<usize>(),
        "datasets": sets.per_dataset, "lora": &lora, "config": &config,
        "top_k": args.top_k,
    });
    let mut monitor = Monitor::new(&args.run, total, "stage 1: instruction tuning", &header)?;
    let mut val_losses = Vec::new();
    let outcome = train_sft_with(
        lm,
        &sets.train,
        &sets.val,
        &config,
        inputs,
        &args.run.options(),
        |event| {
            if let train::trainer::Event::Eval { step, val_loss, .. } = event {
                val_losses.push((*step, *val_loss));
            }
            monitor.event(event)
        },
    )?;
    let Some((seconds, curves)) = monitor.finish(&args.run.out, outcome.finished, outcome.steps)?
    else {
        return Ok(());
    };
    let mut lm = outcome.model;
    let mut saved = lora.clone();
    saved.base_model_name_or_path = Some(path.display().to_string());
    save_adapter(&mut lm, &saved, &args.run.out)?;
    if let Some(dir) = &args.ship {
        ship(
            &args,
            &mut lm,
            &saved,
            dir,
            &path,
            &sets,
            &val_losses,
            outcome.steps,
            outcome.seconds,
            &chosen.description,
        )?;
        eprintln!("explainer written to {}", dir.display());
    }
    println!(
        "{}",
        serde_json::json!({
            "stage": "sft", "steps": outcome.steps, "train": sets.train.len(), "val": sets.val.len(),
            "dropped": sets.dropped, "seconds": seconds, "device": chosen.description,
            "out": args.run.out, "curves": curves,
        })
    );
    Ok(())
}

/// The output of the frozen layers below `start` for every training and validation
/// example, computed once on the inference form of the model (or read from the cache).
fn build_prefix(
    args: &SftArgs,
    lm: &model::CausalLm,
    model_path: &std::path::Path,
    start: usize,
    pad_id: u32,
    sets: &Sets,
) -> Result<(train::prefix::PrefixCache, train::prefix::PrefixCache)> {
    let plain = lm.valid();
    let cache = args
        .cache_dir
        .clone()
        .or_else(crate::paths::default_cache)
        .context("no cache folder: give --cache-dir")?;
    let spec = train::prefix::PrefixSpec {
        model_sha256: crate::classifiers::model_sha256(model_path)?,
        depth: start,
        hidden_size: plain.model.hidden_size(),
        pad_id,
        batch_size: args.prefix_batch_size,
        cache,
        f32: false,
    };
    let mut out = Vec::new();
    for (name, set) in [("train", &sets.train), ("val", &sets.val)] {
        let rows: Vec<Vec<u32>> = set.iter().map(|e| e.ids.clone()).collect();
        let tokens: usize = rows.iter().map(Vec::len).sum();
        let bar = crate::runner::bar(rows.len() as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{msg} [{bar:30}] {pos}/{len} examples ETA {eta}",
            )
            .expect("static template")
            .progress_chars("=> "),
        );
        bar.set_message(format!("prefix of {start} layers, {name}"));
        let mut cached = 0;
        let built = train::prefix::build(&plain, &rows, &spec, |p| {
            cached = p.rows_cached;
            bar.set_position(p.rows_done as u64)
        })?;
        bar.finish_and_clear();
        eprintln!(
            "prefix of {start} layers, {name}: {} examples, {tokens} tokens, {cached} read from the cache",
            rows.len()
        );
        out.push(built);
    }
    let val = out.pop().expect("two sets");
    let train = out.pop().expect("two sets");
    Ok((train, val))
}

/// Writes the explainer folder: the adapter in f16 and `explainer.json`. The validation loss
/// before training is the one logged at update 0 (absent after a resume, whose log starts
/// later: it is then read from the run's log.jsonl).
#[allow(clippy::too_many_arguments)]
fn ship(
    args: &SftArgs,
    lm: &mut model::CausalLm,
    lora: &LoraConfig,
    dir: &std::path::Path,
    model_path: &std::path::Path,
    sets: &Sets,
    val_losses: &[(usize, f64)],
    steps: usize,
    seconds: Option<f64>,
    device: &str,
) -> Result<()> {
    use crate::commands::train::probe::record::{command_output, machine};
    let mut losses = val_losses.to_vec();
    if losses.first().is_none_or(|(step, _)| *step != 0) {
        losses.splice(0..0, logged_val_losses(&args.run.out));
    }
    let before = losses.iter().find(|(s, _)| *s == 0).map(|l| l.1);
    let after = losses
        .iter()
        .filter(|(s, _)| *s == steps)
        .map(|l| l.1)
        .next_back();
    let selection = args.data.join("select_report.json");
    let selection: Option<serde_json::Value> = std::fs::read_to_string(&selection)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    let command: Vec<String> = std::env::args().collect();
    let info = crate::explainer::ExplainerInfo {
        kind: "explainer".into(),
        model_sha256: crate::classifiers::model_sha256(model_path)?,
        model: model_path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default(),
        command: command.join(" "),
        data: serde_json::json!({
            "folder": args.data, "val_folder": args.val_data.as_ref().unwrap_or(&args.data),
            "sets": sets.per_dataset, "selection": selection,
            "cutoff": args.cutoff, "dropped": sets.dropped, "limit": args.limit,
        }),
        val_answer_loss: after,
        val_answer_loss_before: before,
        train_examples: sets.train.len(),
        val_examples: sets.val.len(),
        steps,
        top_k: args.top_k,
        seconds,
        device: format!("{device}; {}", machine()),
        date: command_output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]).unwrap_or_default(),
    };
    let mut shipped = lora.clone();
    shipped.base_model_name_or_path = Some(info.model.clone());
    model::lora::peft_io::save_adapter_as(lm, &shipped, dir, true)?;
    let text = serde_json::to_string_pretty(&info)?;
    formats::atomic::write_atomic(&dir.join("explainer.json"), text.as_bytes())
        .with_context(|| format!("cannot write {}", dir.join("explainer.json").display()))?;
    Ok(())
}

/// `(step, val_loss)` of every evaluation in a run's log.jsonl (none if it cannot be read).
fn logged_val_losses(out: &std::path::Path) -> Vec<(usize, f64)> {
    let Ok(text) = std::fs::read_to_string(out.join("log.jsonl")) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["event"] == "eval")
        .filter_map(|v| Some((v["step"].as_u64()? as usize, v["val_loss"].as_f64()?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn balanced_scales_weigh_each_class_the_same() {
        let e = SftExample::new(&[1, 2], &[3], 8).unwrap();
        // 6 of class 0, 2 of class 1, one without a gold label.
        let mut rows: Vec<_> = (0..6).map(|_| (e.clone(), Some(0))).collect();
        rows.extend((0..2).map(|_| (e.clone(), Some(1))));
        rows.push((e.clone(), None));
        let s = balanced_scales(&rows);
        assert_eq!(s.len(), 2);
        assert!((s[&0] - 8.0 / 12.0).abs() < 1e-6, "{s:?}");
        assert!((s[&1] - 2.0).abs() < 1e-6, "{s:?}");
        // Each class's total weight is the same, and the mean over labelled rows is 1.
        assert!((6.0 * s[&0] - 2.0 * s[&1]).abs() < 1e-5);
        assert!(((6.0 * s[&0] + 2.0 * s[&1]) / 8.0 - 1.0).abs() < 1e-6);
        assert!(balanced_scales(&[(e, None)]).is_empty());
    }
}
