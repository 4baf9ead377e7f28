//! `mentalqlm classify --task DR "text"`: a label with per-label probabilities, and with
//! `--explain` the model's reasoning.

use std::io::BufRead;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args as ClapArgs;
use data::Dataset;
use serde_json::json;

use crate::model_arg::ModelArgs;
use classify::{LoadedProbe, NOTE, Pipeline, Prompter, Scorer, StageTwo, blocking, reasoning};

#[derive(ClapArgs, Debug)]
pub struct Args {
    #[command(flatten)]
    pub model: ModelArgs,
    /// DR, dreaddit, Irf, MultiWD, SAD or DEP-SEVERITY (also CAMS, loneliness, t-sid, swmh).
    #[arg(long)]
    pub task: String,
    /// Texts to classify (or use --input).
    pub texts: Vec<String>,
    /// A JSONL file with one {"text": ...} object per line.
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// The question to ask instead of the task's default (e.g. another MultiWD dimension).
    #[arg(long)]
    pub question: Option<String>,
    /// Also generate the model's answer with its reasoning.
    #[arg(long)]
    pub explain: bool,
    #[arg(long, default_value = data::prompt::DEFAULT_SYSTEM)]
    pub system: String,
    #[arg(long, default_value_t = 512)]
    pub max_prompt_tokens: usize,
    #[arg(long, default_value_t = 160)]
    pub max_new_tokens: usize,
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// One JSON object per text.
    #[arg(long)]
    pub json: bool,
    /// A classifier folder (`train classifier --out`) instead of the shipped one: a head-only
    /// classifier, or a stage-2 LoRA adapter and dense head (a --adapter is merged under it).
    #[arg(long)]
    pub head: Option<PathBuf>,
    /// Where the shipped classifiers are (default: classifiers/ of this checkout).
    #[arg(long)]
    pub classifiers: Option<PathBuf>,
    /// Score the label sentences' likelihood with the model as it is, not a trained classifier.
    #[arg(long)]
    pub no_classifier: bool,
    /// `--explain` with the model as it is, not the shipped explainer (classifiers/explainer).
    #[arg(long)]
    pub no_explainer: bool,
    /// `--explain` lets the model state its own label instead of the classifier's; where the
    /// two differ, the output says so.
    #[arg(long)]
    pub explain_free: bool,
}

/// The model that writes explanations: the loaded one when an --adapter was given or
/// --no-explainer asks for the untuned model, else a copy of it (sharing its weights) with
/// the shipped explainer's adapter, when one fits. Says on stderr which.
fn explainer_model(args: &Args, lm: &model::CausalLm) -> Result<(model::CausalLm, Option<String>)> {
    if let Some(dir) = &args.model.adapter {
        eprintln!("explainer: the --adapter {}", dir.display());
        return Ok((lm.clone(), Some(dir.display().to_string())));
    }
    let untuned = "explaining with the model as it is (untuned)";
    if args.no_explainer {
        eprintln!("explainer: none (--no-explainer); {untuned}");
        return Ok((lm.clone(), None));
    }
    let root = crate::paths::shipped_root(args.classifiers.as_deref());
    let path = args.model.model_path()?;
    match crate::explainer::choose(root.as_deref(), lm, || {
        crate::classifiers::model_sha256(&path)
    })? {
        crate::explainer::Choice::Shipped(tuned, dir, info) => {
            eprintln!("explainer: {}", info.describe(&dir.display().to_string()));
            Ok((tuned, Some(dir.display().to_string())))
        }
        crate::explainer::Choice::Untuned(why) => {
            eprintln!("explainer: {why}; {untuned}");
            Ok((lm.clone(), None))
        }
    }
}

/// The trained classifier for the task, if one applies: a `--head` folder (a probe, or a
/// stage-2 adapter and head), else the shipped probe. Says on stderr which scorer is used.
/// A `--head` that does not fit the model is an error; a shipped probe that does not fit
/// (another base model) is passed over with a note.
enum Trained {
    None,
    Probe(Box<LoadedProbe>),
    Head(Box<StageTwo>),
}

fn choose_trained(
    args: &Args,
    dataset: Dataset,
    lm: &model::CausalLm,
    device: &burn::tensor::Device,
) -> Result<Trained> {
    use crate::classifiers;
    let hidden = lm.model.hidden_size();
    if let Some(dir) = &args.head {
        if !classifiers::is_probe(dir)? {
            let head = StageTwo::assemble(lm, &formats::Folder::disk(dir), device)
                .with_context(|| format!("loading the stage-2 classifier in {}", dir.display()))?;
            eprintln!("classifier: {} (stage-2 adapter and head)", dir.display());
            return Ok(Trained::Head(Box::new(head)));
        }
        let sha = classifiers::model_sha256(&args.model.model_path()?)?;
        let probe = classifiers::load(dir, &sha, hidden, dataset)?;
        eprintln!("classifier: {}", probe.describe());
        return Ok(Trained::Probe(Box::new(probe)));
    }
    let untuned = "scoring answer likelihoods with the model as it is (untuned)";
    if args.no_classifier {
        eprintln!("classifier: none (--no-classifier); {untuned}");
        return Ok(Trained::None);
    }
    let dir = crate::paths::shipped_root(args.classifiers.as_deref())
        .map(|root| classifiers::task_dir(&root, dataset))
        .filter(|d| d.join("classifier.json").is_file());
    let Some(dir) = dir else {
        eprintln!(
            "classifier: no trained classifier for {}; {untuned}",
            dataset.name()
        );
        return Ok(Trained::None);
    };
    let sha = classifiers::model_sha256(&args.model.model_path()?)?;
    match classifiers::load(&dir, &sha, hidden, dataset) {
        Ok(probe) => {
            eprintln!("classifier: {}", probe.describe());
            Ok(Trained::Probe(Box::new(probe)))
        }
        Err(e) => {
            eprintln!(
                "classifier: {} does not fit this model ({e:#}); {untuned}",
                dir.display()
            );
            Ok(Trained::None)
        }
    }
}

/// Texts from the arguments and the JSONL input; an empty text is an error naming it.
fn read_texts(args: &Args) -> Result<Vec<String>> {
    let mut texts = Vec::new();
    for (i, t) in args.texts.iter().enumerate() {
        if t.trim().is_empty() {
            bail!("text {} is empty", i + 1);
        }
        texts.push(t.clone());
    }
    if let Some(path) = &args.input {
        let file =
            std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
        for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
            let line = line.with_context(|| format!("{}: line {}", path.display(), i + 1))?;
            if line.trim().is_empty() {
                continue;
            }
            let value: serde_json::Value = serde_json::from_str(&line)
                .with_context(|| format!("{}:{}: not a JSON object", path.display(), i + 1))?;
            let text = value
                .get("text")
                .or_else(|| value.get("post"))
                .and_then(|v| v.as_str())
                .with_context(|| format!("{}:{}: no \"text\" string", path.display(), i + 1))?;
            if text.trim().is_empty() {
                bail!("{}:{}: the text is empty", path.display(), i + 1);
            }
            texts.push(text.to_string());
        }
    }
    if texts.is_empty() {
        bail!("nothing to classify: give texts or --input FILE.jsonl");
    }
    Ok(texts)
}

pub fn run(args: Args) -> Result<()> {
    let dataset = Dataset::from_name(&args.task)?;
    if args.batch_size == 0 {
        bail!("--batch-size must be at least 1");
    }
    let texts = read_texts(&args)?;
    if args.model.is_seq2seq()? {
        return run_seq2seq(&args, dataset, &texts);
    }
    let (loaded, chosen) = args.model.load()?;
    let trained = choose_trained(&args, dataset, &loaded.model, &chosen.device)?;
    let tokenizer = loaded.tokenizer.context("the model has no tokenizer")?;
    let format = crate::model_arg::chat_format(&loaded.model, &tokenizer);
    let pipeline = Pipeline {
        tokenizer,
        lm: loaded.model,
        prompter: Prompter::new(&args.system, args.max_prompt_tokens).with_format(format),
        batch_size: args.batch_size,
    };
    let explainer = if args.explain {
        let (lm, source) = explainer_model(&args, &pipeline.lm)?;
        Some((
            Pipeline {
                tokenizer: pipeline.tokenizer.clone(),
                lm,
                prompter: pipeline.prompter.clone(),
                batch_size: pipeline.batch_size,
            },
            source,
        ))
    } else {
        None
    };
    let scorer = match &trained {
        Trained::None => Scorer::Choice,
        Trained::Probe(p) => Scorer::Probe(p),
        Trained::Head(h) => Scorer::Head(h),
    };
    for chunk in texts.chunks(args.batch_size) {
        let items: Vec<(&str, Option<&str>)> = chunk
            .iter()
            .map(|t| (t.as_str(), args.question.as_deref()))
            .collect();
        let results = blocking(pipeline.classify(scorer, dataset, &items))?;
        let answers = match &explainer {
            Some((explain, _)) => {
                // The classifier's labels, unless the model is to state its own.
                let labels: Vec<usize> = results.iter().map(|c| c.label_index).collect();
                let given = (!args.explain_free).then_some(labels.as_slice());
                Some(blocking(explain.explain(
                    dataset,
                    &items,
                    given,
                    args.max_new_tokens,
                    None,
                ))?)
            }
            None => None,
        };
        for (i, (text, c)) in chunk.iter().zip(&results).enumerate() {
            let answer = answers.as_ref().map(|a| a[i].as_str());
            let source = explainer.as_ref().and_then(|e| e.1.clone());
            print_result(&args, dataset, text, c, answer, source);
        }
    }
    eprintln!("{NOTE}");
    Ok(())
}

/// An encoder-decoder model (MentalBART, MentalT5): labels by the likelihood of each label's
/// completion answer after the IMHI-completion prompt (`choice`); with --explain, the
/// model's own answer by its generation settings, with a note where it states another
/// label.
fn run_seq2seq(args: &Args, dataset: Dataset, texts: &[String]) -> Result<()> {
    if args.head.is_some() || args.explain_free {
        bail!(
            "--head and --explain-free are for decoder-only models: an encoder-decoder model \
             is scored by its completion answers and explains by its own generation"
        );
    }
    let (loaded, _) = args.model.load_seq2seq()?;
    let origin = loaded.origin.display().to_string();
    let pipeline = classify::Seq2SeqPipeline::new(loaded, args.max_prompt_tokens)?;
    eprintln!("classifier: the likelihood of each label's completion answer (untrained scoring)");
    for chunk in texts.chunks(args.batch_size) {
        let items: Vec<(&str, Option<&str>)> = chunk
            .iter()
            .map(|t| (t.as_str(), args.question.as_deref()))
            .collect();
        let results = blocking(pipeline.classify(dataset, &items))?;
        let answers = if args.explain {
            Some(blocking(pipeline.explain(
                dataset,
                &items,
                args.max_new_tokens,
                None,
            ))?)
        } else {
            None
        };
        for (i, (text, c)) in chunk.iter().zip(&results).enumerate() {
            let answer = answers.as_ref().map(|a| a[i].as_str());
            print_result(
                args,
                dataset,
                text,
                c,
                answer,
                answer.map(|_| origin.clone()),
            );
        }
    }
    eprintln!("{NOTE}");
    Ok(())
}

/// One text's result: its label and probabilities, and the model's answer when there is
/// one (with a note where the answer states another label than the classifier's), as text
/// or one JSON object.
fn print_result(
    args: &Args,
    dataset: Dataset,
    text: &str,
    c: &classify::Classification,
    answer: Option<&str>,
    explainer: Option<String>,
) {
    // The label the answer states (MentaLLaMA's rules), and whether it is the classifier's.
    let stated = answer.map(|a| data::labels::match_label(dataset, a));
    let agrees = stated.map(|s| s == Some(c.label_index));
    if args.json {
        let probabilities: serde_json::Map<String, serde_json::Value> = c
            .labels
            .iter()
            .zip(&c.probabilities)
            .map(|(n, v)| (n.clone(), json!(v)))
            .collect();
        println!(
            "{}",
            json!({
                "task": c.task, "text": text, "label": c.label, "label_index": c.label_index,
                "probabilities": probabilities, "truncated": c.truncated, "answer": answer,
                "answer_agrees": agrees, "explainer": explainer,
                "method": c.method, "classifier": c.classifier, "note": NOTE,
            })
        );
        return;
    }
    let bars: Vec<String> = c
        .labels
        .iter()
        .zip(&c.probabilities)
        .map(|(n, v)| format!("{n} {v:.3}"))
        .collect();
    println!(
        "{}: {} ({:.3})   [{}]",
        c.task,
        c.label,
        c.probabilities[c.label_index],
        bars.join(" | ")
    );
    if let Some(a) = answer {
        println!("  answer: {}", a.trim());
        println!("  reasoning: {}", reasoning(a));
        if agrees == Some(false) {
            let said = stated
                .flatten()
                .and_then(|l| c.labels.get(l).cloned())
                .unwrap_or_else(|| "no label the rules recognise".into());
            println!(
                "  note: the explanation states {said}, the classifier {}",
                c.label
            );
        }
    }
}
