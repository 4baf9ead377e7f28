//! What `eval` reads before it answers: the examples of each set (or a seeded sample), the
//! key of what a set's answers depend on (for the answer journal), and the classifiers of
//! `--mode head`.

use anyhow::{Context, Result, bail};
use data::{Dataset, Split, dep_severity, imhi, tasks};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::index::sample;

use super::eval::Args;

/// One example to score: its query and gold answer, and the post and question in it.
pub struct Item {
    pub query: String,
    pub gold: String,
    pub post: String,
    pub question: String,
}

pub fn load_items(args: &Args, dataset: Dataset, split: Split) -> Result<Vec<Item>> {
    if dataset == Dataset::DepSeverity {
        let path = args
            .dep_severity
            .as_ref()
            .context("DEP-SEVERITY needs --dep-severity FILE.csv")?;
        let rows = dep_severity::load(path)?;
        let parts = dep_severity::split(&rows, dep_severity::PAPER_SEED)?;
        let idx = match split {
            Split::Test => parts.test,
            Split::Val => parts.val,
            Split::Train => parts.train,
        };
        let sentences = tasks::answer_sentences(dataset);
        return Ok(idx
            .into_iter()
            .map(|i| Item {
                query: tasks::query_for_text(dataset, &rows[i].text, None),
                gold: sentences[rows[i].label].clone(),
                post: rows[i].text.clone(),
                question: tasks::default_question(dataset).to_string(),
            })
            .collect());
    }
    let dir = args
        .data
        .as_ref()
        .context("--data DIR (the IMHI folder) is required")?;
    let examples = imhi::load_split(dir, dataset, split)?;
    Ok(examples
        .into_iter()
        .map(|e| Item {
            query: e.query,
            gold: e.answer,
            post: e.post,
            question: e.question,
        })
        .collect())
}

pub fn sample_items(items: Vec<Item>, limit: Option<usize>, seed: u64) -> Vec<Item> {
    match limit {
        Some(n) if n < items.len() => {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut keep = sample(&mut rng, items.len(), n).into_vec();
            keep.sort_unstable();
            let mut slots: Vec<Option<Item>> = items.into_iter().map(Some).collect();
            keep.into_iter().filter_map(|i| slots[i].take()).collect()
        }
        _ => items,
    }
}

/// What one set's answers depend on: the journal's key.
pub fn journal_key(
    args: &Args,
    model: &str,
    adapter: Option<&std::path::Path>,
    split: Split,
    dataset: Dataset,
    prompts: &[classify::Prompt],
) -> String {
    let size = args
        .model
        .model_path()
        .ok()
        .and_then(|p| std::fs::metadata(p).ok())
        .map(|m| m.len().to_string())
        .unwrap_or_default();
    // The adapter's weights file, by path, size and time: a retrained one starts over.
    let adapter = adapter
        .map(|dir| {
            let file = dir.join("adapter_model.safetensors");
            let meta = std::fs::metadata(&file).ok();
            format!(
                "{} {:?} {:?}",
                file.display(),
                meta.as_ref().map(std::fs::Metadata::len),
                meta.and_then(|m| m.modified().ok())
            )
        })
        .unwrap_or_default();
    let mut parts = vec![
        format!("{:?}", args.mode),
        model.to_string(),
        size,
        adapter,
        split.name().to_string(),
        dataset.name().to_string(),
        args.max_new_tokens.to_string(),
    ];
    // Only when given, so journals of local runs keep their keys.
    parts.extend(args.endpoint.describe());
    parts.extend(prompts.iter().map(|p| format!("{:?}", p.ids)));
    let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
    crate::answer_journal::key(&refs)
}

/// `--mode head`: the classifier of every set, each checked against the loaded model.
pub fn load_probes(
    args: &Args,
    sets: &[Dataset],
    loaded: &model::LoadedModel,
) -> Result<Vec<classify::LoadedProbe>> {
    use crate::classifiers;
    let sha = classifiers::model_sha256(&args.model.model_path()?)?;
    let hidden = loaded.model.model.hidden_size();
    if let Some(dir) = &args.head {
        let [d] = sets else {
            bail!("--head DIR scores one set: give --datasets with that set alone");
        };
        let probe = classifiers::load(dir, &sha, hidden, *d)?;
        eprintln!("classifier: {}", probe.describe());
        return Ok(vec![probe]);
    }
    let root = crate::paths::shipped_root(args.classifiers.as_deref()).context(
        "--mode head needs trained classifiers: none shipped here, give --classifiers DIR",
    )?;
    sets.iter()
        .map(|&d| {
            let dir = classifiers::task_dir(&root, d);
            let probe = classifiers::load(&dir, &sha, hidden, d)?;
            eprintln!("classifier: {}", probe.describe());
            Ok(probe)
        })
        .collect()
}
