//! `mentalqlm train classifier`: MentalQLM's stage 2 (LoRA r 4 on q/v + a dense head) on SAD
//! or DEP-SEVERITY. Writes the best model by validation weighted F1 as a PEFT adapter plus
//! `classifier_head.safetensors` / `classifier.json`, with the run's log, curves and
//! checkpoints.
//!
//! This file runs the full and prefix modes (`--mode head` is `super::probe`); the
//! command's flags, shared by every mode, are in `args.rs`.

mod args;

use anyhow::{Context, Result, bail};
use burn::module::Module;
use data::imhi::{self, Split};
use data::{Dataset, classification_metrics, dep_severity};
use model::heads::classifier::{ClassifierHead, HeadConfig, SequenceClassifier, save_head};
use model::lora::LoraConfig;
use model::lora::peft_io::{attach_new, merge, save_adapter};
use train::classifier::{ClassifierTrainConfig, Example, train_classifier};

use super::{Monitor, sample};

pub use args::{Balance, ClassifierArgs, Mode};

/// Texts and labels of the training and validation sets.
fn load_sets(
    args: &ClassifierArgs,
    dataset: Dataset,
    seed: u64,
) -> Result<(Vec<(String, usize)>, Vec<(String, usize)>)> {
    match dataset {
        Dataset::Sad => {
            let dir = args
                .data
                .as_ref()
                .context("SAD needs --data DIR (the IMHI folder)")?;
            let take = |split| -> Result<Vec<(String, usize)>> {
                Ok(imhi::load_split(dir, dataset, split)?
                    .into_iter()
                    .filter_map(|e| e.label.map(|l| (e.post, l)))
                    .collect())
            };
            Ok((take(Split::Train)?, take(Split::Val)?))
        }
        Dataset::DepSeverity => {
            let file = args
                .dep_severity
                .as_ref()
                .context("DEP-SEVERITY needs --dep-severity FILE.csv")?;
            let rows = dep_severity::load(file)?;
            let parts = dep_severity::split(&rows, seed)?;
            let pick = |idx: &[usize]| {
                idx.iter()
                    .map(|&i| (rows[i].text.clone(), rows[i].label))
                    .collect()
            };
            Ok((pick(&parts.train), pick(&parts.val)))
        }
        other => {
            // The other tasks' parts as the head-only classifiers use them; Irf and MultiWD
            // ask one of several questions, which goes into the input after the post.
            let sources = data::task_data::Sources {
                imhi: args.data.as_deref(),
                dep_severity: args.dep_severity.as_deref(),
            };
            let sets = data::task_data::load_task(other, &sources, seed)?;
            let several = !data::tasks::questions(other).is_empty();
            let text = |it: &data::task_data::Item| {
                if several {
                    format!("{}\nQuestion: {}", it.text, it.question)
                } else {
                    it.text.clone()
                }
            };
            let pick = |items: &[data::task_data::Item]| -> Vec<(String, usize)> {
                items.iter().map(|it| (text(it), it.label)).collect()
            };
            Ok((pick(&sets.train), pick(&sets.val)))
        }
    }
}

pub fn run(mut args: ClassifierArgs) -> Result<()> {
    if args.mode == Mode::Head {
        return super::probe::run(&args);
    }
    if args.max_lengths.is_some() {
        bail!("--max-lengths is for --mode head; the other modes take one --max-length");
    }
    let dataset = Dataset::from_name(&args.dataset)?;
    let sad = dataset == Dataset::Sad;
    let lr = args.lr.unwrap_or(if sad { 2e-5 } else { 2e-4 });
    let weight_decay = args.weight_decay.unwrap_or(if sad { 1e-6 } else { 1e-5 });
    let batch_size = args.batch_size.unwrap_or(if sad { 32 } else { 16 });
    let max_length = args.max_length.unwrap_or(if sad { 32 } else { 256 });
    let seed = args.seed.unwrap_or(if sad { 0 } else { 2 });
    if !(lr > 0.0 && lr.is_finite()) || weight_decay < 0.0 {
        bail!("--lr must be positive and --weight-decay non-negative");
    }
    if batch_size == 0 || max_length == 0 || args.epochs == 0 || args.limit == Some(0) {
        bail!("--batch-size, --max-length, --epochs and --limit must be at least 1");
    }
    args.run.prepare()?;
    let (train_texts, val_texts) = load_sets(&args, dataset, seed)?;
    let train_texts = sample(train_texts, args.limit, seed);
    let val_texts = sample(val_texts, args.limit.map(|n| (n / 4).max(1)), seed);
    if train_texts.is_empty() || val_texts.is_empty() {
        bail!("{}: empty training or validation set", dataset.name());
    }

    let super::ForTraining {
        chosen,
        device,
        loaded,
        tokenizer,
        ..
    } = super::load_for_training(&args.model)?;
    let mut lm = loaded.model;
    // A stage-1 adapter is merged first: stage 2 adapts the instruction-tuned model.
    if let Some(dir) = &args.model.adapter {
        model::lora::peft_io::load_adapter(&mut lm, &formats::Folder::disk(dir))
            .with_context(|| format!("loading adapter {}", dir.display()))?;
        merge(&mut lm);
    }
    let mut lm = lm.set_require_grad(false);
    let layers = lm.model.layers.len();
    let mut lora = LoraConfig::new(4, 8.0, 0.2, &["q_proj", "v_proj"]);
    let start = if args.mode == Mode::Prefix {
        if args.top_k == 0 || args.top_k > layers {
            bail!("--top-k must be within 1..={layers}, got {}", args.top_k);
        }
        if args.pool_include_padding {
            bail!("--mode prefix caches no padding positions: drop --pool-include-padding");
        }
        lora = lora.with_layers(&(layers - args.top_k..layers).collect::<Vec<_>>());
        layers - args.top_k
    } else {
        0
    };
    attach_new(&mut lm, &lora, seed, &device);
    let hidden = lm.model.hidden_size();
    let classes = dataset.num_classes();
    let model = SequenceClassifier {
        lm,
        head: ClassifierHead::init(hidden, classes, seed, &device),
        pool_include_padding: args.pool_include_padding,
    };

    let encode = |set: &[(String, usize)]| -> Result<Vec<Example>> {
        set.iter()
            .map(|(text, label)| {
                let mut ids = tokenizer.encode(text)?;
                ids.truncate(max_length);
                if ids.is_empty() {
                    ids.push(tokenizer.pad_id);
                }
                Ok((ids, *label))
            })
            .collect()
    };
    let (train_set, val_set) = (encode(&train_texts)?, encode(&val_texts)?);
    let caches = if args.mode == Mode::Prefix {
        Some(build_prefix(
            &args,
            &model,
            start,
            tokenizer.pad_id,
            &train_set,
            &val_set,
        )?)
    } else {
        None
    };
    let inputs = match &caches {
        Some((train, val)) => train::classifier::Inputs::Prefix { start, train, val },
        None => train::classifier::Inputs::Tokens,
    };
    let config = ClassifierTrainConfig {
        lr,
        weight_decay,
        epochs: args.epochs,
        batch_size,
        seed,
        eval_every: args.eval_every,
        plateau_factor: 0.5,
        plateau_patience: 6,
        oversample: !args.no_oversample,
        max_length,
        pad_id: tokenizer.pad_id,
        classes,
    };
    let per_epoch = if config.oversample {
        train::classifier::oversample(
            &train_set.iter().map(|e| e.1).collect::<Vec<_>>(),
            classes,
            seed,
        )
        .len()
    } else {
        train_set.len()
    };
    let total = per_epoch.div_ceil(batch_size) * args.epochs;
    let header = serde_json::json!({
        "event": "config", "stage": "classifier", "dataset": dataset.name(),
        "train": train_set.len(), "val": val_set.len(), "config": &config,
        "device": chosen.description,
    });
    let mut monitor = Monitor::new(
        &args.run,
        total,
        &format!("stage 2: {}", dataset.name()),
        &header,
    )?;
    let weighted_f1 = |t: &[usize], p: &[usize]| {
        classification_metrics(t, p, None)
            .map(|m| m.weighted_f1)
            .unwrap_or(0.0)
    };
    let trained = train_classifier(
        model,
        &train_set,
        &val_set,
        &config,
        inputs,
        &args.run.options(),
        &weighted_f1,
        |event| monitor.event(event),
    )?;
    let Some((seconds, curves)) = monitor.finish(&args.run.out, trained.finished, trained.steps)?
    else {
        return Ok(());
    };
    let mut best = trained.best;
    let out = &args.run.out;
    save_adapter(&mut best.lm, &lora, out)?;
    let head_config = HeadConfig {
        dataset: dataset.name().to_string(),
        labels: dataset
            .label_names()
            .iter()
            .map(|s| s.to_string())
            .collect(),
        hidden_size: hidden,
        pool_include_padding: args.pool_include_padding,
        max_length,
    };
    save_head(&best.head, &head_config, out)?;
    println!(
        "{}",
        serde_json::json!({
            "dataset": dataset.name(), "steps": trained.steps, "best_val_weighted_f1": trained.best_weighted_f1,
            "seconds": seconds, "device": chosen.description, "out": out, "curves": curves,
        })
    );
    Ok(())
}

/// The output of the frozen layers below `start` for every training and validation example,
/// computed once on the inference form of the model (or read from the cache).
fn build_prefix(
    args: &ClassifierArgs,
    model: &SequenceClassifier,
    start: usize,
    pad_id: u32,
    train_set: &[Example],
    val_set: &[Example],
) -> Result<(train::prefix::PrefixCache, train::prefix::PrefixCache)> {
    let plain = model.lm.valid();
    if args.no_cache {
        bail!("--mode prefix keeps its prefix on disk: drop --no-cache");
    }
    let cache = args
        .cache_dir
        .clone()
        .or_else(crate::paths::default_cache)
        .context("no cache folder: give --cache-dir")?;
    let spec = train::prefix::PrefixSpec {
        model_sha256: crate::classifiers::model_sha256(&args.model.model_path()?)?,
        depth: start,
        hidden_size: plain.model.hidden_size(),
        pad_id,
        batch_size: 8,
        cache,
        f32: false,
    };
    let mut out = Vec::new();
    for (name, set) in [("train", train_set), ("val", val_set)] {
        let rows: Vec<Vec<u32>> = set.iter().map(|e| e.0.clone()).collect();
        let bar = crate::runner::bar(rows.len() as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} texts ETA {eta}")
                .expect("static template")
                .progress_chars("=> "),
        );
        bar.set_message(format!("prefix of {start} layers, {name}"));
        let built = train::prefix::build(&plain, &rows, &spec, |p| {
            bar.set_position(p.rows_done as u64)
        })?;
        bar.finish_and_clear();
        out.push(built);
    }
    let val = out.pop().expect("two sets");
    let train = out.pop().expect("two sets");
    Ok((train, val))
}
