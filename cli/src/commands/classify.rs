//! `mentalqlm classify --task DR "text"`: a label with per-label probabilities, and with
//! `--explain` the model's reasoning.

use std::io::BufRead;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args as ClapArgs;
use data::{Dataset, tasks};
use serde_json::json;

use crate::model_arg::ModelArgs;
use crate::runner::{Runner, argmax, reasoning};

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
}

/// Where the probabilities come from.
enum Scorer {
    /// The likelihood of each label's answer sentence (an untuned model, unless an adapter).
    Choice,
    /// A trained head-only classifier.
    Probe(Box<crate::classifiers::Loaded>),
}

/// The shipped or `--head` head-only classifier for the task, if one applies; says on
/// stderr which scorer is used. A `--head` that does not fit the model is an error; a shipped
/// one that does not fit (another base model) is passed over with a note.
fn choose_scorer(args: &Args, dataset: Dataset, loaded: &model::LoadedModel) -> Result<Scorer> {
    use crate::classifiers;
    let hidden = loaded.model.model.hidden_size();
    if let Some(dir) = &args.head {
        let sha = classifiers::model_sha256(&args.model.model_path()?)?;
        let probe = classifiers::load(dir, &sha, hidden, dataset)?;
        eprintln!("classifier: {}", probe.describe());
        return Ok(Scorer::Probe(Box::new(probe)));
    }
    let untuned = "scoring answer likelihoods with the model as it is (untuned)";
    if args.no_classifier {
        eprintln!("classifier: none (--no-classifier); {untuned}");
        return Ok(Scorer::Choice);
    }
    let dir = classifiers::shipped_root(args.classifiers.as_deref())
        .map(|root| classifiers::task_dir(&root, dataset))
        .filter(|d| d.join("classifier.json").is_file());
    let Some(dir) = dir else {
        eprintln!(
            "classifier: no trained classifier for {}; {untuned}",
            dataset.name()
        );
        return Ok(Scorer::Choice);
    };
    let sha = classifiers::model_sha256(&args.model.model_path()?)?;
    match classifiers::load(&dir, &sha, hidden, dataset) {
        Ok(probe) => {
            eprintln!("classifier: {}", probe.describe());
            Ok(Scorer::Probe(Box::new(probe)))
        }
        Err(e) => {
            eprintln!(
                "classifier: {} does not fit this model ({e:#}); {untuned}",
                dir.display()
            );
            Ok(Scorer::Choice)
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
    if let Some(dir) = &args.head
        && !crate::classifiers::is_probe(dir)?
    {
        return classify_with_head(&args, dataset, dir, &texts);
    }
    let (loaded, _) = args.model.load()?;
    let scorer = choose_scorer(&args, dataset, &loaded)?;
    let runner = Runner::new(
        &loaded,
        &args.system,
        args.max_prompt_tokens,
        args.max_new_tokens,
    )?;
    let names = dataset.label_names();
    for chunk in texts.chunks(args.batch_size) {
        let prompts = chunk
            .iter()
            .map(|t| runner.prompt(&tasks::query_for_text(dataset, t, args.question.as_deref())))
            .collect::<Result<Vec<_>>>()?;
        let probs = match &scorer {
            Scorer::Choice => runner.choose(dataset, &prompts)?,
            Scorer::Probe(probe) => {
                let items: Vec<(&str, Option<&str>)> = chunk
                    .iter()
                    .map(|t| (t.as_str(), args.question.as_deref()))
                    .collect();
                crate::classifiers::classify(
                    &loaded.model,
                    runner.tokenizer,
                    probe,
                    dataset,
                    &items,
                    args.batch_size,
                    None,
                    |_| {},
                )?
            }
        };
        let classifier = match &scorer {
            Scorer::Probe(p) => Some(p.dir.display().to_string()),
            Scorer::Choice => None,
        };
        let answers = if args.explain {
            Some(runner.generate(&prompts)?)
        } else {
            None
        };
        for (i, (text, p)) in chunk.iter().zip(&probs).enumerate() {
            let label = argmax(p);
            let answer = answers.as_ref().map(|a| a[i].as_str());
            if args.json {
                let probabilities: serde_json::Map<String, serde_json::Value> = names
                    .iter()
                    .zip(p)
                    .map(|(n, v)| (n.to_string(), json!(v)))
                    .collect();
                println!(
                    "{}",
                    json!({
                        "task": dataset.name(), "text": text, "label": names[label], "label_index": label,
                        "probabilities": probabilities, "truncated": prompts[i].truncated, "answer": answer,
                        "classifier": classifier,
                        "note": "For research and screening support only; not a diagnosis.",
                    })
                );
            } else {
                let bars: Vec<String> = names
                    .iter()
                    .zip(p)
                    .map(|(n, v)| format!("{n} {v:.3}"))
                    .collect();
                println!(
                    "{}: {} ({:.3})   [{}]",
                    dataset.name(),
                    names[label],
                    p[label],
                    bars.join(" | ")
                );
                if let Some(a) = answer {
                    println!("  answer: {}", a.trim());
                    println!("  reasoning: {}", reasoning(a));
                }
            }
        }
    }
    eprintln!("For research and screening support only; not a diagnosis.");
    Ok(())
}

/// Probabilities from a stage-2 head: the adapter and head of `dir` over the (merged) model.
fn classify_with_head(
    args: &Args,
    dataset: Dataset,
    dir: &std::path::Path,
    texts: &[String],
) -> Result<()> {
    use model::decoder::TokenBatch;
    use model::heads::classifier::{SequenceClassifier, load_head};
    let (mut loaded, chosen) = args.model.load()?;
    model::lora::peft_io::merge(&mut loaded.model);
    model::lora::peft_io::load_adapter(&mut loaded.model, &formats::Folder::disk(dir))
        .with_context(|| format!("loading the stage-2 adapter in {}", dir.display()))?;
    let hidden = loaded.model.model.hidden_size();
    let (head, config) = load_head(&formats::Folder::disk(dir), hidden, &chosen.device)?;
    if Dataset::from_name(&config.dataset)? != dataset {
        bail!(
            "{} holds a {} head, not {}",
            dir.display(),
            config.dataset,
            dataset.name()
        );
    }
    let tokenizer = loaded
        .tokenizer
        .clone()
        .context("the model has no tokenizer")?;
    let model = SequenceClassifier {
        lm: loaded.model,
        head,
        pool_include_padding: config.pool_include_padding,
    };
    for chunk in texts.chunks(args.batch_size) {
        let mut rows = Vec::with_capacity(chunk.len());
        for t in chunk {
            let mut ids = tokenizer.encode(t)?;
            ids.truncate(config.max_length);
            rows.push(ids);
        }
        let (ids, valid) = model.batch(&rows, tokenizer.pad_id, config.max_length);
        let logits = model.forward(TokenBatch {
            ids: &ids,
            valid: &valid,
        })?;
        let probs = burn::tensor::activation::softmax(logits, 1);
        let flat: Vec<f32> = probs
            .into_data()
            .try_to_vec()
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        for (text, p) in chunk.iter().zip(flat.chunks(config.labels.len())) {
            let p: Vec<f64> = p.iter().map(|&v| v as f64).collect();
            let label = argmax(&p);
            if args.json {
                let probabilities: serde_json::Map<String, serde_json::Value> = config
                    .labels
                    .iter()
                    .zip(&p)
                    .map(|(n, v)| (n.clone(), json!(v)))
                    .collect();
                println!(
                    "{}",
                    json!({ "task": dataset.name(), "text": text, "label": config.labels[label], "label_index": label, "probabilities": probabilities, "head": dir })
                );
            } else {
                let bars: Vec<String> = config
                    .labels
                    .iter()
                    .zip(&p)
                    .map(|(n, v)| format!("{n} {v:.3}"))
                    .collect();
                println!(
                    "{}: {} ({:.3})   [{}]",
                    dataset.name(),
                    config.labels[label],
                    p[label],
                    bars.join(" | ")
                );
            }
        }
    }
    eprintln!("For research and screening support only; not a diagnosis.");
    Ok(())
}
