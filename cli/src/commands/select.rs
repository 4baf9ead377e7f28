//! `mentalqlm select`: MentalQLM's training-data pruning. Per dataset: answer perplexity given
//! the instruction (or the IFD ratio), removal of non-finite scores and 1.5×IQR outliers,
//! then k-center greedy over mean-pooled post embeddings keeping `keep × n`. Scores and
//! embeddings are cached on disk, so another `--keep` takes seconds.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args as ClapArgs, ValueEnum};
use data::imhi::{self, Example};
use data::{ChatTemplate, Dataset};
use indicatif::{ProgressBar, ProgressStyle};
use model::score::{answer_nll, answer_nll_and_states, mean_pooled};
use rand::rngs::StdRng;
use rand::seq::index::sample;
use rand::{Rng, SeedableRng};
use serde_json::json;
use train::select::{k_center_greedy, remove_outliers};

use crate::model_arg::ModelArgs;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Hash)]
pub enum Score {
    /// Answer perplexity given the instruction (the paper's score).
    Ppl,
    /// Instruction-following difficulty: perplexity with the instruction / without it.
    Ifd,
}

#[derive(ClapArgs, Debug)]
pub struct Args {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The IMHI folder (holding train/<set>/train.csv or val.csv).
    #[arg(long)]
    pub data: PathBuf,
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "DR,dreaddit,Irf,MultiWD,SAD"
    )]
    pub datasets: Vec<String>,
    /// Fraction of each dataset (after outlier removal) to keep, in (0, 1].
    #[arg(long, default_value_t = 0.75)]
    pub keep: f64,
    /// Output folder (must not exist or be empty); written only when everything succeeded.
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, value_enum, default_value_t = Score::Ppl)]
    pub score: Score,
    /// Work on a seeded sample of N examples per dataset.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Seeds the sample and the first k-center centre.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Sequences per forward pass (batched by length, so padding stays small).
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// Instruction + answer are cut to this many tokens, as the paper's 512.
    #[arg(long, default_value_t = 512)]
    pub max_tokens: usize,
    /// Rows per device chunk in k-center greedy.
    #[arg(long, default_value_t = 4096)]
    pub chunk: usize,
    /// Where scores and embeddings are cached (default ~/.cache/mentalqlm/select, or the
    /// system's temporary folder without a home).
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    #[arg(long, default_value = data::prompt::DEFAULT_SYSTEM)]
    pub system: String,
    /// Also keep, from the scoring pass, each sequence's hidden states below the top K
    /// layers: the cached prefix `train sft --top-k K` trains over, so it need not run the
    /// frozen layers again. 0 keeps none.
    #[arg(long, default_value_t = 0)]
    pub prefix_top_k: usize,
    /// Where those states are kept (default ~/.cache/mentalqlm/features, as train sft).
    #[arg(long)]
    pub prefix_cache: Option<PathBuf>,
    /// Write again the selection earlier runs recorded in their select_report.json (its
    /// `kept_rows`), without a model: seconds instead of the scoring pass. Repeat it for
    /// runs over different sets; each set is taken from the first report that has it. Each
    /// data file must be the one that run read (its sha256); the scoring options are not used.
    #[arg(long, value_name = "REPORT")]
    pub rows_from: Vec<PathBuf>,
}

fn file_fingerprint(path: &Path, h: &mut DefaultHasher) -> Result<()> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    bytes.hash(h);
    Ok(())
}

/// Scores and embeddings of one dataset's examples (cached).
struct Features {
    scores: Vec<f64>,
    embeddings: Vec<Vec<f32>>,
}

fn cache_paths(args: &Args, dataset: Dataset, key: u64) -> (PathBuf, PathBuf) {
    let dir = args
        .cache_dir
        .clone()
        .or_else(|| crate::paths::user_cache("select"))
        .unwrap_or_else(|| std::env::temp_dir().join("mentalqlm-select"));
    let stem = format!("{}-{key:016x}", dataset.name());
    (
        dir.join(format!("{stem}.json")),
        dir.join(format!("{stem}.f32")),
    )
}

fn load_cache(json_path: &Path, bin_path: &Path) -> Option<Features> {
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(json_path).ok()?).ok()?;
    let scores: Vec<f64> = meta["scores"]
        .as_array()?
        .iter()
        .map(|v| v.as_f64().unwrap_or(f64::NAN))
        .collect();
    let dim = meta["dim"].as_u64()? as usize;
    let bytes = std::fs::read(bin_path).ok()?;
    if dim == 0 || bytes.len() != scores.len() * dim * 4 {
        return None;
    }
    let flat: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Some(Features {
        scores,
        embeddings: flat.chunks(dim).map(<[f32]>::to_vec).collect(),
    })
}

fn save_cache(json_path: &Path, bin_path: &Path, f: &Features) -> Result<()> {
    if let Some(dir) = json_path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let dim = f.embeddings.first().map_or(0, Vec::len);
    let bytes: Vec<u8> = f
        .embeddings
        .iter()
        .flatten()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let scores: Vec<serde_json::Value> = f
        .scores
        .iter()
        .map(|s| {
            if s.is_finite() {
                json!(s)
            } else {
                serde_json::Value::Null
            }
        })
        .collect();
    // Data first, then the index that makes it valid: a killed run leaves no half cache.
    // Each file whole under a unique temporary name: two runs filling one cache at once
    // each rename a complete file, and the last one wins.
    formats::atomic::write_atomic(bin_path, &bytes)
        .with_context(|| format!("cannot write {}", bin_path.display()))?;
    formats::atomic::write_atomic(
        json_path,
        json!({ "scores": scores, "dim": dim })
            .to_string()
            .as_bytes(),
    )
    .with_context(|| format!("cannot write {}", json_path.display()))?;
    Ok(())
}

/// Model passes per example: the scored sequence and the post, and for IFD the answer alone.
fn passes(score: Score) -> u64 {
    match score {
        Score::Ppl => 2,
        Score::Ifd => 3,
    }
}

/// `f(batch)` over the rows of `rows` not yet in `known`, in batches of similar length
/// (longest first, so little of a batch is padding), each result put back at its row's
/// place and handed to `keep` (the journal) as soon as its batch is done. Advances `bar` by
/// one per row, known rows included.
fn by_length<T: Clone>(
    rows: &[Vec<u32>],
    mut known: Vec<Option<T>>,
    batch_size: usize,
    bar: &ProgressBar,
    mut f: impl FnMut(&[Vec<u32>], &[usize]) -> Result<Vec<T>>,
    mut keep: impl FnMut(&[usize], &[T]) -> Result<()>,
) -> Result<Vec<T>> {
    known.resize(rows.len(), None);
    let mut order: Vec<usize> = (0..rows.len()).filter(|&i| known[i].is_none()).collect();
    bar.inc((rows.len() - order.len()) as u64);
    order.sort_by_key(|&i| std::cmp::Reverse(rows[i].len()));
    for batch in order.chunks(batch_size.max(1)) {
        let seqs: Vec<Vec<u32>> = batch.iter().map(|&i| rows[i].clone()).collect();
        let values = f(&seqs, batch)?;
        keep(batch, &values)?;
        for (&i, v) in batch.iter().zip(values) {
            known[i] = Some(v);
        }
        bar.inc(batch.len() as u64);
    }
    Ok(known
        .into_iter()
        .map(|v| v.expect("every row computed"))
        .collect())
}

/// An append-only file of fixed-size records `(u32 row, values)`: what a pass has computed
/// so far, so a run killed in the middle of a set resumes where it stopped. A torn last
/// record (a kill during a write) is ignored.
struct Journal {
    file: std::fs::File,
    path: PathBuf,
    width: usize,
}

impl Journal {
    /// Opens (or starts) the journal at `path` of records holding `width` f32 values, and
    /// the values it already holds by row (rows at or past `rows` are ignored).
    fn open(path: &Path, width: usize, rows: usize) -> Result<(Self, Vec<Option<Vec<f32>>>)> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let record = 4 + 4 * width;
        let mut known = vec![None; rows];
        if let Ok(bytes) = std::fs::read(path) {
            for r in bytes.chunks_exact(record) {
                let row = u32::from_le_bytes([r[0], r[1], r[2], r[3]]) as usize;
                if row < rows {
                    known[row] = Some(
                        r[4..]
                            .chunks_exact(4)
                            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                            .collect(),
                    );
                }
            }
            // Drop a torn tail so the next records line up.
            let whole = (bytes.len() / record * record) as u64;
            if whole != bytes.len() as u64 {
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .open(path)
                    .with_context(|| format!("cannot open {}", path.display()))?;
                f.set_len(whole)
                    .with_context(|| format!("cannot truncate {}", path.display()))?;
            }
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        Ok((
            Self {
                file,
                path: path.to_path_buf(),
                width,
            },
            known,
        ))
    }

    fn append(&mut self, rows: &[usize], values: &[Vec<f32>]) -> Result<()> {
        use std::io::Write;
        let mut bytes = Vec::with_capacity(rows.len() * (4 + 4 * self.width));
        for (&row, v) in rows.iter().zip(values) {
            if v.len() != self.width {
                bail!(
                    "{}: a record of {} values, not {}",
                    self.path.display(),
                    v.len(),
                    self.width
                );
            }
            bytes.extend_from_slice(&(row as u32).to_le_bytes());
            for x in v {
                bytes.extend_from_slice(&x.to_le_bytes());
            }
        }
        self.file
            .write_all(&bytes)
            .with_context(|| format!("cannot write {}", self.path.display()))
    }
}

fn compute(
    args: &Args,
    loaded: &model::LoadedModel,
    examples: &[Example],
    prefix: Option<&train::prefix::PrefixSpec>,
    journal: &Path,
    bar: &ProgressBar,
) -> Result<Features> {
    let tok = loaded
        .tokenizer
        .as_ref()
        .context("the model has no tokenizer")?;
    let template = ChatTemplate::new(args.system.clone())
        .with_format(crate::model_arg::chat_format(&loaded.model, tok));
    let max = args.max_tokens;
    let (mut seqs, mut answer_lens, mut alone, mut alone_lens, mut posts) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for e in examples {
        // The sequence as `train sft` trains on it (the answer with its end-of-turn token),
        // so the frozen layers' states kept here are its cached prefix.
        let prompt = tok.encode(&template.prompt(&e.query))?;
        let answer = tok.encode(&template.answer_part(&e.answer))?;
        // Instruction + answer cut to `max` tokens: a long instruction leaves less (or none)
        // of the answer to score; none gives a non-finite score, removed and counted.
        let mut seq = [prompt.clone(), answer.clone()].concat();
        seq.truncate(max);
        answer_lens.push(seq.len().saturating_sub(prompt.len()));
        seqs.push(seq);
        let mut a = answer;
        a.truncate(max);
        alone_lens.push(a.len().saturating_sub(1));
        alone.push(if a.is_empty() { vec![tok.pad_id] } else { a });
        let mut post = tok.encode(&e.post)?;
        post.truncate(max);
        posts.push(if post.is_empty() {
            vec![tok.pad_id]
        } else {
            post
        });
    }
    // Each pass keeps what it has computed in a journal under `journal`, so a killed run
    // resumes where it stopped.
    let nll_pass = |name: &str, rows: &[Vec<u32>], lens: &[usize], states: bool| {
        let (mut log, known) = Journal::open(&journal.join(name), 1, rows.len())?;
        let known = known.into_iter().map(|v| v.map(|v| v[0] as f64)).collect();
        by_length(
            rows,
            known,
            args.batch_size,
            bar,
            |batch, idx| {
                let scored: Vec<usize> = idx.iter().map(|&i| lens[i]).collect();
                // Rounded to f32 as the journal keeps them, so a resumed run selects the
                // same rows as an uninterrupted one.
                let round = |v: Vec<f64>| v.into_iter().map(|x| x as f32 as f64).collect();
                match prefix.filter(|_| states) {
                    None => Ok(round(answer_nll(
                        &loaded.model,
                        batch,
                        &scored,
                        tok.pad_id,
                    )?)),
                    Some(spec) => {
                        let (nll, states, _) = answer_nll_and_states(
                            &loaded.model,
                            batch,
                            &scored,
                            tok.pad_id,
                            spec.depth,
                        )?;
                        train::prefix::store(spec, batch, states)?;
                        Ok(round(nll))
                    }
                }
            },
            |idx, values: &[f64]| {
                let v: Vec<Vec<f32>> = values.iter().map(|&x| vec![x as f32]).collect();
                log.append(idx, &v)
            },
        )
    };
    let nll = nll_pass("scores", &seqs, &answer_lens, true)?;
    let scores: Vec<f64> = match args.score {
        Score::Ppl => nll.iter().map(|l| l.exp()).collect(),
        Score::Ifd => {
            let base = nll_pass("alone", &alone, &alone_lens, false)?;
            nll.iter().zip(&base).map(|(c, a)| (c - a).exp()).collect()
        }
    };
    // A post asked several questions (Irf, MultiWD) is embedded once.
    let mut distinct: Vec<Vec<u32>> = Vec::new();
    let mut slot = std::collections::HashMap::new();
    let of_post: Vec<usize> = posts
        .into_iter()
        .map(|p| {
            *slot.entry(p.clone()).or_insert_with(|| {
                distinct.push(p);
                distinct.len() - 1
            })
        })
        .collect();
    let repeats = (of_post.len() - distinct.len()) as u64;
    let hidden = loaded.model.model.hidden_size();
    let (mut log, known) = Journal::open(&journal.join("posts"), hidden, distinct.len())?;
    let pooled = by_length(
        &distinct,
        known,
        args.batch_size,
        bar,
        |batch, _| Ok(mean_pooled(&loaded.model, batch, tok.pad_id)?),
        |idx, values| log.append(idx, values),
    )?;
    bar.inc(repeats);
    let embeddings = of_post.iter().map(|&j| pooled[j].clone()).collect();
    Ok(Features { scores, embeddings })
}

pub fn run(args: Args) -> Result<()> {
    if !(args.keep > 0.0 && args.keep <= 1.0) {
        bail!("--keep must be in (0, 1], got {}", args.keep);
    }
    if args.batch_size == 0 || args.limit == Some(0) {
        bail!("--batch-size and --limit must be at least 1");
    }
    crate::runner::require_empty_out(&args.out)?;
    // Read everything first: a bad file fails before any model work.
    let mut sets = Vec::new();
    for name in &args.datasets {
        let dataset = Dataset::from_name(name)?;
        let (file, split) = imhi::training_file(&args.data, dataset)?;
        let mut examples = imhi::load_file(&file, Some(dataset))?;
        if examples.is_empty() {
            bail!("{}: no examples", file.display());
        }
        // Each example's row in the file, which the report records for what it keeps.
        let mut rows: Vec<usize> = (0..examples.len()).collect();
        if let Some(n) = args.limit.filter(|&n| n < examples.len()) {
            let mut rng = StdRng::seed_from_u64(args.seed);
            let mut keep = sample(&mut rng, examples.len(), n).into_vec();
            keep.sort_unstable();
            examples = keep.iter().map(|&i| examples[i].clone()).collect();
            rows = keep;
        }
        sets.push(Set {
            dataset,
            file,
            split,
            examples,
            rows,
        });
    }
    if !args.rows_from.is_empty() {
        return write_recorded(&args, &sets);
    }
    let model_path = args.model.model_path()?;
    let (loaded, chosen) = args.model.load()?;
    let prefix = prefix_spec(&args, &model_path, &loaded)?;
    let staging = staging_dir(&args.out);
    let result = (|| -> Result<serde_json::Value> {
        let mut report = serde_json::Map::new();
        let total: u64 =
            sets.iter().map(|s| s.examples.len() as u64).sum::<u64>() * passes(args.score);
        let bar = crate::runner::bar(total);
        bar.set_style(
            ProgressStyle::with_template(
                "{msg:>10} [{bar:30}] {pos}/{len} passes {per_sec} ETA {eta}",
            )
            .expect("static template")
            .progress_chars("=> "),
        );
        for Set {
            dataset,
            file,
            split,
            examples,
            rows: file_rows,
        } in &sets
        {
            bar.set_message(dataset.name());
            let mut h = DefaultHasher::new();
            (
                "mentalqlm-select-v2",
                args.score,
                args.max_tokens,
                &args.system,
                args.limit,
                args.seed,
            )
                .hash(&mut h);
            model_path
                .canonicalize()
                .unwrap_or(model_path.clone())
                .hash(&mut h);
            file_fingerprint(&model_path_file(&model_path), &mut h).ok();
            file_fingerprint(file, &mut h)?;
            let (json_path, bin_path) = cache_paths(&args, *dataset, h.finish());
            let cached =
                load_cache(&json_path, &bin_path).filter(|f| f.scores.len() == examples.len());
            let from_cache = cached.is_some();
            let features = match cached {
                Some(f) => {
                    bar.inc(examples.len() as u64 * passes(args.score));
                    f
                }
                None => {
                    // What the passes have done so far, kept until the cache is written.
                    let journal = json_path.with_extension("partial");
                    let f = compute(&args, &loaded, examples, prefix.as_ref(), &journal, &bar)?;
                    save_cache(&json_path, &bin_path, &f)?;
                    let _ = std::fs::remove_dir_all(&journal);
                    f
                }
            };
            let (kept, outliers) = remove_outliers(&features.scores);
            if kept.is_empty() {
                bail!(
                    "{}: every score was removed as an outlier or non-finite",
                    dataset.name()
                );
            }
            let k = ((args.keep * kept.len() as f64) as usize).max(1);
            let rows: Vec<Vec<f32>> = kept
                .iter()
                .map(|&i| features.embeddings[i].clone())
                .collect();
            let first = StdRng::seed_from_u64(args.seed).random_range(0..rows.len());
            let kc = k_center_greedy(&rows, k, first, args.chunk, &chosen.device)?;
            let mut chosen_rows: Vec<usize> = kc.selected.iter().map(|&j| kept[j]).collect();
            chosen_rows.sort_unstable();
            let subset: Vec<Example> = chosen_rows.iter().map(|&i| examples[i].clone()).collect();
            let rel = file.strip_prefix(&args.data).unwrap_or(file.as_path());
            imhi::write_examples(&staging.join(rel), &subset)?;
            let kept_rows: Vec<usize> = chosen_rows.iter().map(|&i| file_rows[i]).collect();
            report.insert(
                dataset.name().to_string(),
                json!({
                    "file": file, "split": split.name(), "score": format!("{:?}", args.score).to_lowercase(),
                    "from_cache": from_cache, "rows": examples.len(), "outliers": outliers,
                    "keep": args.keep, "k": k, "selected": subset.len(),
                    "coverage_radius": kc.coverage_radius, "output": rel,
                    "file_sha256": formats::fingerprint::sha256_file(file)?,
                    "kept_rows": kept_rows,
                }),
            );
            crate::runner::progress_line(
                &bar,
                format!(
                    "{:>10}: {} rows → {} after outliers ({} non-finite, {} outliers) → {} kept",
                    dataset.name(),
                    examples.len(),
                    outliers.after,
                    outliers.non_finite,
                    outliers.outliers,
                    subset.len()
                ),
            );
        }
        bar.finish_and_clear();
        Ok(json!({ "model": model_path, "device": chosen.description, "datasets": report }))
    })();
    finish(&args.out, &staging, result)
}

/// One dataset's examples as read (or sampled by `--limit`), with each one's row in its file.
struct Set {
    dataset: Dataset,
    file: PathBuf,
    split: imhi::Split,
    examples: Vec<Example>,
    rows: Vec<usize>,
}

/// Where a selection is written before it moves to `out`: beside it, named per process.
fn staging_dir(out: &Path) -> PathBuf {
    out.with_extension(format!("partial-{}", std::process::id()))
}

/// Writes the report into `staging` and moves it to `out`, or removes `staging` when the
/// selection failed: `out` holds a whole selection or nothing.
fn finish(out: &Path, staging: &Path, result: Result<serde_json::Value>) -> Result<()> {
    let report = match result {
        Ok(report) => report,
        Err(e) => {
            let _ = std::fs::remove_dir_all(staging);
            return Err(e);
        }
    };
    let written = (|| -> Result<()> {
        std::fs::create_dir_all(staging)
            .with_context(|| format!("cannot create {}", staging.display()))?;
        std::fs::write(
            staging.join("select_report.json"),
            serde_json::to_string_pretty(&report)?,
        )
        .with_context(|| format!("cannot write into {}", staging.display()))?;
        if out.exists() {
            std::fs::remove_dir(out)
                .with_context(|| format!("cannot replace {}", out.display()))?;
        }
        std::fs::rename(staging, out)
            .with_context(|| format!("cannot move {} to {}", staging.display(), out.display()))
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_dir_all(staging);
        return Err(e);
    }
    println!("{}", serde_json::to_string_pretty(&report)?);
    eprintln!("wrote {}", out.display());
    Ok(())
}

/// `--rows-from`: the rows earlier runs kept (their reports' `kept_rows`), written again
/// from the same files, checked by their sha256.
fn write_recorded(args: &Args, sets: &[Set]) -> Result<()> {
    let mut reports = Vec::new();
    for from in &args.rows_from {
        let text = std::fs::read_to_string(from)
            .with_context(|| format!("cannot read --rows-from {}", from.display()))?;
        let recorded: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a select report (JSON)", from.display()))?;
        reports.push((from, recorded));
    }
    let staging = staging_dir(&args.out);
    let result = (|| -> Result<serde_json::Value> {
        let mut report = serde_json::Map::new();
        let mut models = Vec::new();
        for set in sets {
            let name = set.dataset.name();
            let Some((from, recorded, entry)) = reports
                .iter()
                .find_map(|(f, r)| r["datasets"].get(name).map(|e| (f, r, e)))
            else {
                bail!(
                    "no --rows-from report has an entry for {name} under \"datasets\" ({})",
                    args.rows_from
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            };
            if !models.contains(&recorded["model"]) {
                models.push(recorded["model"].clone());
            }
            let sha = formats::fingerprint::sha256_file(&set.file)?;
            match entry["file_sha256"].as_str() {
                Some(want) if want == sha => {}
                Some(want) => bail!(
                    "{}: {name} was selected from a file with sha256 {want}, but {} has {sha}",
                    from.display(),
                    set.file.display()
                ),
                None => bail!(
                    "{}: {name} has no \"file_sha256\" (a report from before rows were recorded)",
                    from.display()
                ),
            }
            let rows = entry["kept_rows"]
                .as_array()
                .with_context(|| format!("{}: {name} has no \"kept_rows\" list", from.display()))?;
            let mut subset = Vec::with_capacity(rows.len());
            let mut last = None;
            for (i, v) in rows.iter().enumerate() {
                let row = v.as_u64().map(|r| r as usize);
                let Some(at) = row.and_then(|r| set.rows.binary_search(&r).ok()) else {
                    bail!(
                        "{}: {name}.kept_rows[{i}] = {v} is not a row of {} ({} rows{})",
                        from.display(),
                        set.file.display(),
                        set.rows.len(),
                        if args.limit.is_some() {
                            " in the --limit sample"
                        } else {
                            ""
                        }
                    );
                };
                if last.is_some_and(|l| l >= at) {
                    bail!(
                        "{}: {name}.kept_rows is not in increasing order at [{i}]",
                        from.display()
                    );
                }
                last = Some(at);
                subset.push(set.examples[at].clone());
            }
            let rel = set
                .file
                .strip_prefix(&args.data)
                .unwrap_or(set.file.as_path());
            imhi::write_examples(&staging.join(rel), &subset)?;
            let mut entry = entry.clone();
            entry["file"] = json!(set.file);
            entry["output"] = json!(rel);
            entry["from_cache"] = json!(false);
            report.insert(name.to_string(), entry);
        }
        // One model in every report (each run scored with its own).
        let model = match models.as_slice() {
            [one] => one.clone(),
            _ => json!(models),
        };
        Ok(json!({
            "model": model, "device": null, "rows_from": args.rows_from,
            "datasets": report,
        }))
    })();
    finish(&args.out, &staging, result)
}

/// Where and at which depth the scoring pass keeps the frozen layers' states, when asked.
fn prefix_spec(
    args: &Args,
    model_path: &Path,
    loaded: &model::LoadedModel,
) -> Result<Option<train::prefix::PrefixSpec>> {
    if args.prefix_top_k == 0 {
        return Ok(None);
    }
    let layers = loaded.model.model.layers.len();
    if args.prefix_top_k >= layers {
        bail!(
            "--prefix-top-k must be within 1..{layers} (layers above the kept states), got {}",
            args.prefix_top_k
        );
    }
    let cache = args
        .prefix_cache
        .clone()
        .or_else(crate::paths::default_cache)
        .context("no cache folder: give --prefix-cache")?;
    Ok(Some(train::prefix::PrefixSpec {
        model_sha256: crate::classifiers::model_sha256(model_path)?,
        depth: layers - args.prefix_top_k,
        hidden_size: loaded.model.model.hidden_size(),
        pad_id: loaded.tokenizer.as_ref().map_or(0, |t| t.pad_id),
        batch_size: args.batch_size,
        cache,
        f32: false,
    }))
}

/// The file whose bytes identify the model: the GGUF itself, or a folder's config.
fn model_path_file(path: &Path) -> PathBuf {
    if path.is_dir() {
        path.join("config.json")
    } else {
        path.to_path_buf()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_by_length_and_puts_results_back_in_place() {
        let rows: Vec<Vec<u32>> = [3, 1, 4, 1, 5, 9, 2].iter().map(|&n| vec![7; n]).collect();
        let bar = ProgressBar::hidden();
        let mut batches = Vec::new();
        let mut kept = Vec::new();
        let out = by_length(
            &rows,
            Vec::new(),
            3,
            &bar,
            |batch, idx| {
                batches.push(batch.iter().map(Vec::len).collect::<Vec<_>>());
                Ok(idx.iter().map(|&i| rows[i].len() * 10).collect())
            },
            |idx, v| {
                kept.extend(idx.iter().copied().zip(v.iter().copied()));
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(out, vec![30, 10, 40, 10, 50, 90, 20]);
        assert_eq!(batches, vec![vec![9, 5, 4], vec![3, 2, 1], vec![1]]);
        assert_eq!(kept.len(), 7, "every batch handed to the journal");
        assert_eq!(bar.position(), 7);
        // Known rows are not computed again.
        let mut known = vec![None; 7];
        known[5] = Some(1);
        known[0] = Some(2);
        let mut computed = Vec::new();
        let out = by_length(
            &rows,
            known,
            8,
            &ProgressBar::hidden(),
            |_, idx| {
                computed.extend_from_slice(idx);
                Ok(vec![0; idx.len()])
            },
            |_, _| Ok(()),
        )
        .unwrap();
        assert_eq!(out[5], 1);
        assert_eq!(out[0], 2);
        computed.sort_unstable();
        assert_eq!(computed, vec![1, 2, 3, 4, 6]);
    }

    #[test]
    fn a_journal_resumes_and_drops_a_torn_record() {
        let dir = std::env::temp_dir().join(format!("mq-journal-{}", std::process::id()));
        let path = dir.join("j");
        let (mut j, known) = Journal::open(&path, 2, 4).unwrap();
        assert!(known.iter().all(Option::is_none));
        j.append(&[2, 0], &[vec![1.0, 2.0], vec![3.0, 4.0]])
            .unwrap();
        assert!(
            j.append(&[1], &[vec![1.0]]).is_err(),
            "a record of the wrong width"
        );
        drop(j);
        // A kill in the middle of a record: 5 stray bytes.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend_from_slice(&[1, 0, 0, 0, 9]);
        std::fs::write(&path, &bytes).unwrap();
        let (mut j, known) = Journal::open(&path, 2, 4).unwrap();
        assert_eq!(known[2], Some(vec![1.0, 2.0]));
        assert_eq!(known[0], Some(vec![3.0, 4.0]));
        assert_eq!((known[1].is_none(), known[3].is_none()), (true, true));
        j.append(&[3], &[vec![5.0, 6.0]]).unwrap();
        drop(j);
        let (_, known) = Journal::open(&path, 2, 4).unwrap();
        assert_eq!(
            known[3],
            Some(vec![5.0, 6.0]),
            "appended after the torn tail was cut"
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
