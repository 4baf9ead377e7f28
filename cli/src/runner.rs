//! Turning posts into prompts and prompts into labels, shared by `eval` and `classify`:
//! free generation parsed by the MentaLLaMA rules, or `choice` scoring of each label's answer
//! sentence by likelihood.

use anyhow::{Context, Result};
use data::{ChatTemplate, Dataset, fit_query, tasks};
use formats::tokenizer::TextTokenizer;
use model::CausalLm;
use model::generate::{GenerateConfig, Sampling, generate};
use model::score::{continuation_logprobs, normalise};

pub struct Runner<'a> {
    pub model: &'a CausalLm,
    pub tokenizer: &'a TextTokenizer,
    pub template: ChatTemplate,
    /// Prompt budget: longer posts are cut from their end, the question kept.
    pub max_prompt_tokens: usize,
    pub max_new_tokens: usize,
}

/// One example's prompt after fitting.
pub struct Prompt {
    pub text: String,
    pub ids: Vec<u32>,
    pub truncated: bool,
}

impl<'a> Runner<'a> {
    /// A runner over a loaded model; its tokenizer is required.
    pub fn new(
        loaded: &'a model::LoadedModel,
        system: &str,
        max_prompt_tokens: usize,
        max_new_tokens: usize,
    ) -> Result<Self> {
        let tokenizer = loaded
            .tokenizer
            .as_ref()
            .context("the model has no tokenizer")?;
        Ok(Self {
            model: &loaded.model,
            tokenizer,
            template: ChatTemplate::new(system),
            max_prompt_tokens,
            max_new_tokens,
        })
    }

    pub fn prompt(&self, query: &str) -> Result<Prompt> {
        let count = |text: &str| {
            self.tokenizer
                .encode(text)
                .map(|ids| ids.len())
                .unwrap_or(usize::MAX)
        };
        let fitted = fit_query(&self.template, query, self.max_prompt_tokens, &count);
        let ids = self.tokenizer.encode(&fitted.prompt)?;
        Ok(Prompt {
            text: fitted.prompt,
            ids,
            truncated: fitted.truncated,
        })
    }

    /// Greedy answers for a batch of prompts.
    pub fn generate(&self, prompts: &[Prompt]) -> Result<Vec<String>> {
        let config = GenerateConfig {
            max_new_tokens: self.max_new_tokens,
            sampling: Sampling::Greedy,
            seed: 0,
            stop_ids: self.tokenizer.stop_ids.clone(),
            pad_id: self.tokenizer.pad_id,
        };
        let ids: Vec<Vec<u32>> = prompts.iter().map(|p| p.ids.clone()).collect();
        let out = generate(self.model, &ids, &config, |_, _| {})?;
        out.iter()
            .map(|ids| self.tokenizer.decode(ids).context("decoding an answer"))
            .collect()
    }

    /// Per-label probabilities for a batch of prompts (label order of the dataset).
    pub fn choose(&self, dataset: Dataset, prompts: &[Prompt]) -> Result<Vec<Vec<f64>>> {
        let sentences = tasks::answer_sentences(dataset);
        let candidates = sentences
            .iter()
            .map(|s| self.tokenizer.encode(s))
            .collect::<Result<Vec<_>, _>>()?;
        let ids: Vec<Vec<u32>> = prompts.iter().map(|p| p.ids.clone()).collect();
        let logprobs = continuation_logprobs(self.model, &ids, &candidates, self.tokenizer.pad_id)?;
        Ok(logprobs.iter().map(|l| normalise(l)).collect())
    }
}

pub fn argmax(p: &[f64]) -> usize {
    p.iter()
        .enumerate()
        .fold(0, |best, (i, v)| if *v > p[best] { i } else { best })
}

/// The explanation part of an answer: the text after "Reasoning:", or the whole answer.
pub fn reasoning(answer: &str) -> &str {
    const MARK: &str = "reasoning:";
    // ASCII-case-insensitive search on the original text, so byte offsets stay valid.
    let at = answer.char_indices().map(|(i, _)| i).find(|&i| {
        answer
            .get(i..i + MARK.len())
            .is_some_and(|s| s.eq_ignore_ascii_case(MARK))
    });
    match at {
        Some(i) => answer[i + MARK.len()..].trim(),
        None => answer.trim(),
    }
}

/// A progress line that shows in a terminal (above the bar) and in logs (where indicatif
/// hides the bar and everything it prints).
pub fn progress_line(bar: &indicatif::ProgressBar, line: String) {
    if bar.is_hidden() {
        eprintln!("{line}");
    } else {
        bar.println(line);
    }
}

/// An output folder must be new or empty: results are never mixed with an earlier run's.
pub fn require_empty_out(out: &std::path::Path) -> Result<()> {
    let used = out.exists()
        && std::fs::read_dir(out)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true);
    if used {
        anyhow::bail!(
            "{} exists and is not empty; choose another --out",
            out.display()
        );
    }
    Ok(())
}
