//! `mentalqlm judge`: pairwise explanation quality by an LLM judge (the seed's "GPT-Score"),
//! against any OpenAI-compatible chat endpoint. For each example the judge sees the question
//! and two answers, rates each from 1 to 10 for helpfulness, relevance, accuracy and level of
//! detail, and puts the two scores on its first line. Every pair is asked twice, with the
//! answers' order swapped, and each side's score is the mean over both orders: a judge that
//! favours the first (or second) position favours both sides alike.
//!
//! The posts and answers are sent to the endpoint, so there is no default one: without
//! `--endpoint` the command refuses.

use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args as ClapArgs;
use data::predictions::{PredictionRow, read_predictions};
use indicatif::ProgressStyle;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::index::sample;
use serde_json::json;

use crate::endpoint::ChatClient;

const SYSTEM: &str = "You are a mental health expert and a helpful, precise assistant for \
checking the quality of answers to questions about mental health in social media posts.";

#[derive(ClapArgs, Debug)]
pub struct Args {
    /// Predictions of side A (JSONL from `eval`, or LLaMA-Factory's).
    #[arg(long)]
    pub a: PathBuf,
    /// Predictions of side B, for the same examples in the same order.
    #[arg(long)]
    pub b: PathBuf,
    /// The OpenAI-compatible base URL (e.g. http://127.0.0.1:8000/v1), or its
    /// /chat/completions address. Required: the posts and answers are sent there.
    #[arg(long)]
    pub endpoint: Option<String>,
    /// The `model` field of each request: the judge as the server names it.
    #[arg(long, default_value = "default")]
    pub served_model: String,
    /// Sent as a Bearer token (OpenAI clients send "EMPTY" to local servers).
    #[arg(long, default_value = "EMPTY")]
    pub api_key: String,
    /// Judge a seeded sample of N examples (the seed project judges 200 per set).
    #[arg(long)]
    pub limit: Option<usize>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Ask each pair once, in the files' order (A first), as the seed project does.
    #[arg(long)]
    pub no_swap: bool,
    /// Seconds a request may take before it is retried.
    #[arg(long, default_value_t = 120.0)]
    pub timeout_s: f64,
    /// Retries of a request that timed out, failed to connect, or got a 429 or 5xx answer;
    /// then the example is reported as an error.
    #[arg(long, default_value_t = 2)]
    pub retries: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f64,
    #[arg(long, default_value_t = 512)]
    pub max_tokens: usize,
    /// Output folder: judge.csv (per example) and judge.json (the summary).
    #[arg(long)]
    pub out: PathBuf,
}

/// The request text: the question, both answers, and what to rate and how to answer.
pub fn judge_prompt(question: &str, first: &str, second: &str) -> String {
    format!(
        "[Question]\n{question}\n\n\
         [The Start of Assistant 1's Answer]\n{first}\n\n[The End of Assistant 1's Answer]\n\n\
         [The Start of Assistant 2's Answer]\n{second}\n\n[The End of Assistant 2's Answer]\n\n\
         [System]\nPlease give your feedback on the two AI assistants' answers to the question \
         above. Rate the helpfulness, relevance, accuracy and level of detail of each answer, \
         and give each assistant one overall score from 1 to 10, higher being better.\n\
         On the first line, write only the two scores, for Assistant 1 and Assistant 2 in \
         that order, separated by a space. On the next line, explain your evaluation in full, \
         avoiding any bias and making sure the order in which the answers were shown does not \
         affect your judgement."
    )
}

/// The two scores on the first non-empty line of a judge's answer: exactly two numbers in
/// [0, 10] (a trailing "/10" is allowed). Anything else is `None`: never a guess.
pub fn parse_scores(answer: &str) -> Option<(f64, f64)> {
    let line = answer.lines().map(str::trim).find(|l| !l.is_empty())?;
    let values: Vec<f64> = line
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|t| !t.is_empty())
        .map(|t| t.strip_suffix("/10").unwrap_or(t).parse::<f64>().ok())
        .collect::<Option<_>>()?;
    match values[..] {
        [a, b] if (0.0..=10.0).contains(&a) && (0.0..=10.0).contains(&b) => Some((a, b)),
        _ => None,
    }
}

/// The user turn of a ChatML prompt (the IMHI question), or the whole prompt.
fn question_of(prompt: &str) -> &str {
    const USER: &str = "<|im_start|>user\n";
    match prompt.find(USER) {
        Some(at) => {
            let rest = &prompt[at + USER.len()..];
            rest[..rest.find("<|im_end|>").unwrap_or(rest.len())].trim()
        }
        None => prompt.trim(),
    }
}

/// One judged order: the scores (first shown, second shown) or why there are none.
type Verdict = Result<(f64, f64), String>;

/// The judge's scores for one order, retrying transient failures; an answer without
/// scores is reported, never retried.
fn judge(client: &ChatClient, prompt: &str) -> Result<Verdict> {
    Ok(match client.ask(&[("system", SYSTEM), ("user", prompt)])? {
        Ok(answer) => parse_scores(&answer).ok_or_else(|| {
            let first: String = answer
                .lines()
                .next()
                .unwrap_or("")
                .chars()
                .take(80)
                .collect();
            format!("unparseable first line: {first:?}")
        }),
        Err(why) => Err(why),
    })
}

/// One example's verdicts: A shown first, and (unless --no-swap) B shown first.
struct Judged {
    index: usize,
    a_first: Verdict,
    b_first: Option<Verdict>,
}

impl Judged {
    /// (A's score, B's score), the mean over both orders; `None` if any order failed.
    fn scores(&self) -> Option<(f64, f64)> {
        let (a1, b1) = self.a_first.clone().ok()?;
        match &self.b_first {
            None => Some((a1, b1)),
            Some(v) => {
                let (b2, a2) = v.clone().ok()?;
                Some(((a1 + a2) / 2.0, (b1 + b2) / 2.0))
            }
        }
    }

    fn error(&self) -> Option<String> {
        let mut errs = Vec::new();
        if let Err(e) = &self.a_first {
            errs.push(format!("A first: {e}"));
        }
        if let Some(Err(e)) = &self.b_first {
            errs.push(format!("B first: {e}"));
        }
        (!errs.is_empty()).then(|| errs.join("; "))
    }
}

fn mean_sd(v: &[f64]) -> (f64, f64) {
    let n = v.len().max(1) as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    (mean, var.sqrt())
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn read_pairs(args: &Args) -> Result<Vec<(usize, PredictionRow, PredictionRow)>> {
    let a = read_predictions(&args.a).with_context(|| format!("reading {}", args.a.display()))?;
    let b = read_predictions(&args.b).with_context(|| format!("reading {}", args.b.display()))?;
    if a.len() != b.len() {
        bail!(
            "{} holds {} predictions but {} holds {}: judge predictions of the same examples",
            args.a.display(),
            a.len(),
            args.b.display(),
            b.len()
        );
    }
    if a.is_empty() {
        bail!("{}: no predictions", args.a.display());
    }
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        if x.label != y.label {
            bail!(
                "prediction {} has another gold answer in {} than in {}: the files are not \
                 of the same examples in the same order",
                i + 1,
                args.a.display(),
                args.b.display()
            );
        }
        if question_of(&x.prompt).is_empty() {
            bail!(
                "{}: prediction {} has no prompt, so the judge would not see the question",
                args.a.display(),
                i + 1
            );
        }
    }
    let mut idx: Vec<usize> = (0..a.len()).collect();
    if let Some(n) = args.limit.filter(|&n| n < a.len()) {
        let mut rng = StdRng::seed_from_u64(args.seed);
        idx = sample(&mut rng, a.len(), n).into_vec();
        idx.sort_unstable();
    }
    Ok(idx
        .into_iter()
        .map(|i| (i, a[i].clone(), b[i].clone()))
        .collect())
}

pub fn run(args: Args) -> Result<()> {
    let Some(endpoint) = &args.endpoint else {
        bail!(
            "judge sends each post and both answers to a chat endpoint, so it never picks one \
             itself: give --endpoint URL (e.g. a local `mentalqlm serve` or vLLM) and \
             --served-model NAME"
        );
    };
    let url = crate::endpoint::chat_url(endpoint)?;
    if args.concurrency == 0 || args.limit == Some(0) {
        bail!("--concurrency and --limit must be at least 1");
    }
    if !(args.timeout_s > 0.0 && args.timeout_s.is_finite()) {
        bail!("--timeout-s must be positive");
    }
    let pairs = read_pairs(&args)?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let client = ChatClient::new(
        url.clone(),
        args.served_model.clone(),
        args.api_key.clone(),
        args.temperature,
        args.max_tokens,
        args.retries,
        Duration::from_secs_f64(args.timeout_s),
    );
    let bar = crate::runner::bar(pairs.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("judging [{bar:30}] {pos}/{len} {per_sec} ETA {eta}")
            .expect("static template")
            .progress_chars("=> "),
    );
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Judged>> = Mutex::new(Vec::with_capacity(pairs.len()));
    let fatal: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..args.concurrency.min(pairs.len()) {
            scope.spawn(|| {
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    let Some((index, a, b)) = pairs.get(k) else {
                        break;
                    };
                    if fatal.lock().map(|f| f.is_some()).unwrap_or(true) {
                        break;
                    }
                    let question = question_of(&a.prompt);
                    let judged = (|| -> Result<Judged> {
                        let a_first =
                            judge(&client, &judge_prompt(question, &a.predict, &b.predict))?;
                        let b_first = if args.no_swap {
                            None
                        } else {
                            Some(judge(
                                &client,
                                &judge_prompt(question, &b.predict, &a.predict),
                            )?)
                        };
                        Ok(Judged {
                            index: *index,
                            a_first,
                            b_first,
                        })
                    })();
                    match judged {
                        Ok(j) => {
                            if let Ok(mut r) = results.lock() {
                                r.push(j);
                            }
                            bar.inc(1);
                        }
                        Err(e) => {
                            if let Ok(mut f) = fatal.lock() {
                                f.get_or_insert(e);
                            }
                            break;
                        }
                    }
                }
            });
        }
    });
    bar.finish_and_clear();
    if let Some(e) = fatal.into_inner().ok().flatten() {
        return Err(e.context(format!("judging with {url}")));
    }
    let mut judged = results
        .into_inner()
        .map_err(|_| anyhow::anyhow!("a judging thread failed"))?;
    judged.sort_by_key(|j| j.index);

    let mut csv = String::from(
        "index,a_first_score_a,a_first_score_b,b_first_score_a,b_first_score_b,score_a,score_b,outcome,error\n",
    );
    let (mut sa, mut sb, mut bias) = (Vec::new(), Vec::new(), Vec::new());
    let (mut wins, mut ties, mut losses, mut errors) = (0, 0, 0, 0);
    let cell = |v: Option<f64>| v.map_or(String::new(), |x| format!("{x}"));
    for j in &judged {
        let a_first = j.a_first.as_ref().ok();
        let b_first = j.b_first.as_ref().and_then(|v| v.as_ref().ok());
        for (first, second) in a_first.into_iter().chain(b_first) {
            bias.push(first - second);
        }
        let outcome = match j.scores() {
            Some((a, b)) => {
                sa.push(a);
                sb.push(b);
                if a > b {
                    wins += 1;
                    "win"
                } else if a < b {
                    losses += 1;
                    "loss"
                } else {
                    ties += 1;
                    "tie"
                }
            }
            None => {
                errors += 1;
                "error"
            }
        };
        let _ = std::fmt::Write::write_fmt(
            &mut csv,
            format_args!(
                "{},{},{},{},{},{},{},{},{}\n",
                j.index + 1,
                cell(a_first.map(|s| s.0)),
                cell(a_first.map(|s| s.1)),
                cell(b_first.map(|s| s.1)),
                cell(b_first.map(|s| s.0)),
                cell(j.scores().map(|s| s.0)),
                cell(j.scores().map(|s| s.1)),
                outcome,
                csv_field(&j.error().unwrap_or_default())
            ),
        );
    }
    let ((mean_a, sd_a), (mean_b, sd_b)) = (mean_sd(&sa), mean_sd(&sb));
    let summary = json!({
        "a": args.a, "b": args.b, "endpoint": url, "served_model": args.served_model,
        "examples": judged.len(), "scored": sa.len(), "errors": errors,
        "swapped": !args.no_swap,
        "mean_a": mean_a, "sd_a": sd_a, "mean_b": mean_b, "sd_b": sd_b,
        "wins_a": wins, "ties": ties, "losses_a": losses,
        // Mean of (first shown − second shown) over every parsed verdict: the judge's
        // position bias, which the swap cancels.
        "position_bias": if bias.is_empty() { serde_json::Value::Null } else { json!(mean_sd(&bias).0) },
    });
    let csv_path = args.out.join("judge.csv");
    formats::atomic::write_atomic(&csv_path, csv.as_bytes())
        .with_context(|| format!("cannot write {}", csv_path.display()))?;
    let json_path = args.out.join("judge.json");
    formats::atomic::write_atomic(
        &json_path,
        serde_json::to_string_pretty(&summary)?.as_bytes(),
    )
    .with_context(|| format!("cannot write {}", json_path.display()))?;
    println!("{summary}");
    eprintln!(
        "A {mean_a:.2} ± {sd_a:.2}, B {mean_b:.2} ± {sd_b:.2} over {} examples: A wins {wins}, \
         ties {ties}, loses {losses}; {errors} errors. Wrote {}",
        sa.len(),
        args.out.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_parse_only_from_a_clean_first_line() {
        assert_eq!(parse_scores("8 6\nA is better"), Some((8.0, 6.0)));
        assert_eq!(parse_scores("\n 7.5, 9 \n"), Some((7.5, 9.0)));
        assert_eq!(parse_scores("8/10 6/10"), Some((8.0, 6.0)));
        assert_eq!(parse_scores("Assistant 1: 8, Assistant 2: 6"), None);
        assert_eq!(parse_scores("8"), None);
        assert_eq!(parse_scores("8 6 7"), None);
        assert_eq!(parse_scores("11 3"), None);
        assert_eq!(parse_scores(""), None);
    }

    #[test]
    fn the_question_is_the_user_turn() {
        let p = "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nConsider this post: \"x\" \
                 Question: Q?<|im_end|>\n<|im_start|>assistant\n";
        assert_eq!(question_of(p), "Consider this post: \"x\" Question: Q?");
        assert_eq!(question_of("  plain  "), "plain");
    }
}
