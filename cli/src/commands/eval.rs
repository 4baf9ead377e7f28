//! `mentalqlm eval --data DIR --datasets DR,dreaddit,Irf,MultiWD,SAD`: predictions as JSONL
//! (LLaMA-Factory's fields), and a Markdown + JSON report beside the published figures, with a
//! confusion-matrix picture per set.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Args as ClapArgs, ValueEnum};
use data::predictions::write_predictions;
use data::text_metrics::{Tokenizer, bleu4, rouge_l};
use data::{Dataset, DatasetResult, EvalReport, PredictionRow, Split, score_predictions, tasks};
use indicatif::ProgressStyle;

use super::eval_inputs::{journal_key, load_items, load_probes, sample_items};
use crate::model_arg::ModelArgs;
use classify::{Prompter, argmax, blocking, reasoning};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Greedy answers with reasoning, parsed by the MentaLLaMA rules (the paper's protocol).
    Generate,
    /// The likeliest of each label's answer sentence: faster, gives probabilities.
    Choice,
    /// The trained head-only classifiers (the shipped ones, or --classifiers DIR): the
    /// predicted label's answer sentence is written as `predict`.
    Head,
}

#[derive(ClapArgs, Debug)]
pub struct Args {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The IMHI folder (holding test/ and train/), e.g. ../shared/data/imhi.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Comma-separated IMHI sets.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "DR,dreaddit,Irf,MultiWD,SAD"
    )]
    pub datasets: Vec<String>,
    /// test, val or train.
    #[arg(long, default_value = "test")]
    pub split: String,
    /// Also evaluate a DEP-SEVERITY language file (its seeded 80/10/10 split's part).
    #[arg(long)]
    pub dep_severity: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = Mode::Generate)]
    pub mode: Mode,
    /// Evaluate a seeded random sample of N examples per set.
    #[arg(long)]
    pub limit: Option<usize>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    #[arg(long, default_value_t = 512)]
    pub max_prompt_tokens: usize,
    #[arg(long, default_value_t = 160)]
    pub max_new_tokens: usize,
    #[arg(long, default_value = data::prompt::DEFAULT_SYSTEM)]
    pub system: String,
    /// `--mode head`: the folder of classifiers, one per task (default: the shipped ones);
    /// `--mode generate`: where the shipped explainer is looked for (its explainer/ folder).
    #[arg(long)]
    pub classifiers: Option<PathBuf>,
    /// `--mode generate`: answer with the model as it is, not the shipped explainer.
    #[arg(long)]
    pub no_explainer: bool,
    /// `--mode head`: one classifier folder (`train classifier --mode head --out`) for the
    /// one set of --datasets.
    #[arg(long, conflicts_with = "classifiers")]
    pub head: Option<PathBuf>,
    /// `--mode head`: where pooled features are cached (default ~/.cache/mentalqlm/features).
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// `--mode head`: compute features without reading or writing the cache.
    #[arg(long)]
    pub no_cache: bool,
    /// Output folder for predictions and the report.
    #[arg(long, default_value = "reports/eval")]
    pub out: PathBuf,
    #[command(flatten)]
    pub endpoint: super::eval_endpoint::EndpointArgs,
}

/// The model that answers: decoder-only (every mode) or encoder-decoder (`--mode generate`).
enum Answerer {
    Causal(model::LoadedModel),
    /// With the folder it was loaded from.
    Seq2Seq(classify::Seq2SeqPipeline, PathBuf),
}

/// `--mode generate` without --adapter: puts the shipped explainer on the model when it
/// fits (unless --no-explainer) and says which model answers. The explainer's folder, if used.
fn use_explainer(args: &Args, lm: &mut model::CausalLm) -> Result<Option<PathBuf>> {
    if args.model.adapter.is_some() {
        return Ok(None);
    }
    let untuned = "answering with the model as it is (untuned)";
    if args.no_explainer {
        eprintln!("explainer: none (--no-explainer); {untuned}");
        return Ok(None);
    }
    let root = crate::paths::shipped_root(args.classifiers.as_deref());
    let path = args.model.model_path()?;
    match crate::explainer::choose(root.as_deref(), lm, || {
        crate::classifiers::model_sha256(&path)
    })? {
        crate::explainer::Choice::Shipped(tuned, dir, info) => {
            *lm = tuned;
            eprintln!("explainer: {}", info.describe(&dir.display().to_string()));
            Ok(Some(dir))
        }
        crate::explainer::Choice::Untuned(why) => {
            eprintln!("explainer: {why}; {untuned}");
            Ok(None)
        }
    }
}

pub fn run(args: Args) -> Result<()> {
    if args.batch_size == 0 {
        bail!("--batch-size must be at least 1");
    }
    if args.limit == Some(0) {
        bail!("--limit must be at least 1");
    }
    let client = args.endpoint.client(args.max_new_tokens)?;
    if client.is_some() && args.mode != Mode::Generate {
        bail!("--endpoint answers --mode generate only");
    }
    let split: Split = args.split.parse()?;
    let mut sets = args
        .datasets
        .iter()
        .map(|d| Dataset::from_name(d))
        .collect::<Result<Vec<_>, _>>()?;
    if args.dep_severity.is_some() && !sets.contains(&Dataset::DepSeverity) {
        sets.push(Dataset::DepSeverity);
    }
    // Read every set before loading the model, so a bad file fails fast.
    let mut work = Vec::new();
    for &d in &sets {
        let items = sample_items(load_items(&args, d, split)?, args.limit, args.seed);
        if items.is_empty() {
            bail!("{}: no examples in the {} split", d.name(), split.name());
        }
        work.push((d, items));
    }
    let (mut answerer, chosen) = if args.model.is_seq2seq()? {
        if args.mode == Mode::Head || client.is_some() {
            bail!(
                "an encoder-decoder model (BART, T5) is evaluated by its own answers \
                 (--mode generate) or its answers' likelihood (--mode choice), without \
                 --endpoint"
            );
        }
        let (loaded, chosen) = args.model.load_seq2seq()?;
        let origin = loaded.origin.clone();
        let pipeline = classify::Seq2SeqPipeline::new(loaded, args.max_prompt_tokens)?;
        (Answerer::Seq2Seq(pipeline, origin), chosen)
    } else {
        let (loaded, chosen) = args.model.load()?;
        (Answerer::Causal(loaded), chosen)
    };
    // Through an endpoint, the served model answers (the explainer is its business).
    let explainer = match &mut answerer {
        Answerer::Causal(loaded) if args.mode == Mode::Generate && client.is_none() => {
            use_explainer(&args, &mut loaded.model)?
        }
        _ => None,
    };
    let probes = match &answerer {
        Answerer::Causal(loaded) if args.mode == Mode::Head => load_probes(&args, &sets, loaded)?,
        _ => Vec::new(),
    };
    let (tokenizer, origin, prompter) = match &answerer {
        Answerer::Causal(l) => {
            let tok = l.tokenizer.as_ref().context("the model has no tokenizer")?;
            let format = crate::model_arg::chat_format(&l.model, tok);
            let prompter = Prompter::new(&args.system, args.max_prompt_tokens).with_format(format);
            (tok, &l.origin, prompter)
        }
        // IMHI-completion prompts, within the encoder's positions.
        Answerer::Seq2Seq(p, origin) => (&p.tokenizer, origin, p.prompter.clone()),
    };
    let total: usize = work.iter().map(|(_, items)| items.len()).sum();
    let bar = crate::runner::bar(total as u64);
    bar.set_style(
        ProgressStyle::with_template("{msg:>12} [{bar:30}] {pos}/{len} {per_sec} ETA {eta}")
            .expect("static template")
            .progress_chars("=> "),
    );
    let start = Instant::now();
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let name = origin
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    // The report names what answered: the model, with the explainer when one was put on it.
    let name = match &explainer {
        Some(dir) => format!("{name} + explainer {}", dir.display()),
        None => name,
    };
    let name = match args.endpoint.describe() {
        Some(e) => format!("{e} (prompts fitted with {name})"),
        None => name,
    };
    let mut report = EvalReport::new(name);
    let budget = if args.mode == Mode::Head {
        "texts cut to each classifier's max length".to_string()
    } else {
        format!("prompt budget {} tokens", args.max_prompt_tokens)
    };
    report.notes.push(format!(
        "mode {:?}, split {}, {}device {}, {budget}",
        args.mode,
        split.name(),
        args.limit
            .map(|n| format!("seeded sample of {n} per set (seed {}), ", args.seed))
            .unwrap_or_default(),
        chosen.description,
    ));
    for p in &probes {
        report.notes.push(format!("classifier: {}", p.describe()));
    }
    if let Answerer::Seq2Seq(p, _) = &answerer {
        let s = &p.generation;
        report.notes.push(format!(
            "IMHI-completion prompts; answers by {} beam(s), at most {} new tokens, \
             no_repeat_ngram_size {}, length_penalty {}",
            s.num_beams, args.max_new_tokens, s.no_repeat_ngram_size, s.length_penalty
        ));
    }
    let mut truncated = 0;
    // Answers a killed run had kept in the journals: not counted in this run's rate.
    let mut resumed = 0;
    // Every set's journal stays until the whole run is written: a run killed in its third
    // set, run again, reads the first two sets' answers back instead of computing them again.
    let mut done_journals = Vec::new();
    for (k, (dataset, items)) in work.iter().enumerate() {
        bar.set_message(dataset.name());
        let sentences = tasks::answer_sentences(*dataset);
        let mut rows = Vec::with_capacity(items.len());
        if let (Some(probe), Answerer::Causal(loaded)) = (probes.get(k), &answerer) {
            let pairs: Vec<(&str, Option<&str>)> = items
                .iter()
                .map(|it| (it.post.as_str(), Some(it.question.as_str())))
                .collect();
            let cache = if args.no_cache {
                None
            } else {
                args.cache_dir.clone().or_else(crate::paths::default_cache)
            };
            let (distinct, _) = crate::classifiers::distinct(pairs.iter().map(|p| p.0));
            let scale = items.len() as f64 / distinct.len().max(1) as f64;
            let done_before = bar.position();
            let probs = crate::classifiers::classify_cached(
                &loaded.model,
                tokenizer,
                probe,
                *dataset,
                &pairs,
                args.batch_size,
                cache,
                |p| bar.set_position(done_before + (p.rows_done as f64 * scale) as u64),
            )?;
            for (it, p) in items.iter().zip(probs) {
                rows.push(PredictionRow {
                    prompt: it.query.clone(),
                    label: it.gold.clone(),
                    predict: sentences[argmax(&p)].clone(),
                });
            }
            bar.set_position(done_before + items.len() as u64);
        }
        if args.mode != Mode::Head {
            let prompts = items
                .iter()
                .map(|it| prompter.prompt(tokenizer, &it.query))
                .collect::<Result<Vec<_>, _>>()?;
            truncated += prompts.iter().filter(|p| p.truncated).count();
            // Answers are kept as they come: a killed run continues with the same command.
            let journal_path = args
                .out
                .join(format!("predictions_{}.partial.jsonl", dataset.name()));
            let key = journal_key(
                &args,
                &report.model,
                explainer.as_deref().or(args.model.adapter.as_deref()),
                split,
                *dataset,
                &prompts,
            );
            let opened =
                crate::answer_journal::AnswerJournal::open(&journal_path, &key, items.len())?;
            let (mut journal, mut answers) = (opened.journal, opened.answers);
            if let Some(why) = opened.restarted {
                crate::runner::progress_line(
                    &bar,
                    format!("{}: started over ({why})", journal_path.display()),
                );
            }
            let known = answers.iter().flatten().count();
            if known > 0 {
                crate::runner::progress_line(
                    &bar,
                    format!(
                        "{:>12}: {known} of {} answers from {}",
                        dataset.name(),
                        items.len(),
                        journal_path.display()
                    ),
                );
            }
            resumed += known;
            bar.inc(known as u64);
            // Longest prompts first: a batch's prompts are alike in length (little padding),
            // and a budget too large for the machine fails at once.
            let mut order: Vec<usize> =
                (0..items.len()).filter(|&i| answers[i].is_none()).collect();
            order.sort_by_key(|&i| std::cmp::Reverse(prompts[i].ids.len()));
            let per_chunk = if client.is_some() {
                args.endpoint.concurrency
            } else {
                args.batch_size
            };
            for chunk in order.chunks(per_chunk) {
                let batch: Vec<classify::Prompt> =
                    chunk.iter().map(|&i| prompts[i].clone()).collect();
                let out = match (args.mode, &client, &answerer) {
                    (Mode::Generate, Some(c), _) => {
                        super::eval_endpoint::answers(c, &args.system, &batch)?
                    }
                    (Mode::Generate, None, Answerer::Causal(loaded)) => {
                        blocking(classify::explain::answers(
                            &loaded.model,
                            tokenizer,
                            &batch,
                            args.max_new_tokens,
                            None,
                        ))?
                    }
                    (Mode::Generate, None, Answerer::Seq2Seq(p, _)) => {
                        blocking(p.answers(&batch, args.max_new_tokens, None))?
                    }
                    (_, _, Answerer::Seq2Seq(p, _)) => blocking(p.probabilities(*dataset, &batch))?
                        .iter()
                        .map(|p| sentences[argmax(p)].clone())
                        .collect(),
                    (_, _, Answerer::Causal(loaded)) => blocking(classify::choice::probabilities(
                        &loaded.model,
                        tokenizer,
                        *dataset,
                        &batch,
                    ))?
                    .iter()
                    .map(|p| sentences[argmax(p)].clone())
                    .collect(),
                };
                journal.append(chunk.iter().copied().zip(out.iter().map(String::as_str)))?;
                for (&i, a) in chunk.iter().zip(out) {
                    answers[i] = Some(a);
                }
                bar.inc(chunk.len() as u64);
            }
            for ((it, p), a) in items.iter().zip(prompts).zip(answers) {
                rows.push(PredictionRow {
                    prompt: p.text,
                    label: it.gold.clone(),
                    predict: a.context("an example was left unanswered")?,
                });
            }
            done_journals.push(journal);
        }
        let file = args
            .out
            .join(format!("predictions_{}.jsonl", dataset.name()));
        write_predictions(&file, &rows)?;
        let scored = score_predictions(*dataset, &rows)?;
        let mut result = DatasetResult::from_scored(&scored, split.name())?;
        if args.mode == Mode::Choice {
            result = result.with_method(data::Method::Choice);
        }
        if args.mode == Mode::Head {
            result = result.with_method(data::Method::Classifier);
        }
        if args.mode == Mode::Generate {
            let n = rows.len().max(1) as f64;
            let (mut r, mut b, mut form) = (0.0, 0.0, 0.0);
            for row in &rows {
                let (hyp, gold) = (reasoning(&row.predict), reasoning(&row.label));
                r += rouge_l(hyp, gold, Tokenizer::Whitespace).f1;
                b += bleu4(hyp, gold, Tokenizer::Whitespace);
                form += f64::from(u8::from(data::follows_answer_form(*dataset, &row.predict)));
            }
            result = result.with_explanations(data::TextScores {
                rouge_l: r / n,
                bleu4: b / n,
                answer_form: form / n,
            });
        }
        crate::runner::progress_line(
            &bar,
            format!(
                "{:>12}: weighted F1 {:.2} over {} examples",
                dataset.name(),
                100.0 * result.metrics.weighted_f1,
                result.metrics.n
            ),
        );
        report.push(result);
    }
    bar.finish_and_clear();
    let secs = start.elapsed().as_secs_f64();
    let cut = if args.mode == Mode::Head {
        " (features read from the cache where present)".to_string()
    } else {
        format!("; {truncated} posts truncated to fit")
    };
    let fresh = total.saturating_sub(resumed);
    let earlier = if resumed > 0 {
        format!(", {resumed} of them answered by an earlier run (its journals)")
    } else {
        String::new()
    };
    report.notes.push(format!(
        "{total} examples{earlier}; {fresh} in {secs:.1} s ({:.2} examples/s){cut}",
        fresh as f64 / secs.max(1e-9)
    ));
    for path in report.write(&args.out)? {
        eprintln!("wrote {}", path.display());
    }
    eprintln!("wrote predictions_*.jsonl to {}", args.out.display());
    for j in done_journals {
        j.finish();
    }
    if let Some(avg) = report.paper_five_average() {
        println!("average weighted F1 over the five IMHI sets: {avg:.2}");
    }
    Ok(())
}
