//! Text-overlap scores of generated explanations against gold ones: ROUGE-L and BLEU-4.
//!
//! - ROUGE-L is the sentence-level LCS F-measure (β = 1) of Google's `rouge-score`
//!   package (`rouge_scorer.RougeScorer(["rougeL"])`, what Hugging Face `evaluate`'s
//!   "rouge" and so MentaLLaMA's `score.py` report): `P = lcs/|hyp|`, `R = lcs/|ref|`,
//!   `F = 2PR/(P+R)`, 0 when either side has no tokens. The corpus figure is the mean of
//!   the per-pair F (`evaluate` reports a bootstrap estimate of the same mean). Note that
//!   the older `rouge` package (pltrdy) computes a summary-level LCS with a different β,
//!   so its "rouge-l f" differs; we do not reproduce it.
//! - BLEU-4 is NLTK's: `sentence_bleu` / `corpus_bleu` with uniform weights (¼ each),
//!   clipped n-gram precisions, the closest reference length (ties to the shorter) for the
//!   brevity penalty, and `SmoothingFunction().method1` (a zero n-gram count becomes
//!   0.1 / its denominator). No unigram match at all gives 0, as in NLTK.
//!
//! Tokens come from [`Tokenizer`]: by default lowercased whitespace-separated words; the
//! `RougeScore` variant reproduces `rouge-score`'s own tokenizer (non-`[a-z0-9]` runs
//! become spaces), which drops every non-ASCII letter and so suits English only.

use std::collections::HashMap;

use serde::Serialize;

use crate::error::{DataError, Result};

/// How text becomes tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub enum Tokenizer {
    /// Lowercase, then split on whitespace.
    #[default]
    Whitespace,
    /// `rouge-score`'s default: lowercase, runs of characters outside `[a-z0-9]` become a
    /// space, split (no stemming).
    RougeScore,
}

pub fn tokenize(text: &str, tokenizer: Tokenizer) -> Vec<String> {
    let lower = text.to_lowercase();
    match tokenizer {
        Tokenizer::Whitespace => lower.split_whitespace().map(str::to_string).collect(),
        Tokenizer::RougeScore => lower
            .split(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit()))
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect(),
    }
}

/// ROUGE-L precision, recall and F-measure of one pair.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RougeL {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

fn lcs_len<T: PartialEq>(a: &[T], b: &[T]) -> usize {
    // One row of the DP table at a time: O(|a|·|b|) time, O(|b|) memory.
    let mut row = vec![0usize; b.len() + 1];
    for x in a {
        let mut diagonal = 0;
        for (j, y) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = if x == y {
                diagonal + 1
            } else {
                above.max(row[j])
            };
            diagonal = above;
        }
    }
    row[b.len()]
}

/// ROUGE-L of token sequences.
pub fn rouge_l_tokens<T: PartialEq>(hypothesis: &[T], reference: &[T]) -> RougeL {
    if hypothesis.is_empty() || reference.is_empty() {
        return RougeL {
            precision: 0.0,
            recall: 0.0,
            f1: 0.0,
        };
    }
    let lcs = lcs_len(reference, hypothesis) as f64;
    let precision = lcs / hypothesis.len() as f64;
    let recall = lcs / reference.len() as f64;
    let f1 = if precision + recall > 0.0 {
        2.0 * precision * recall / (precision + recall)
    } else {
        0.0
    };
    RougeL {
        precision,
        recall,
        f1,
    }
}

/// ROUGE-L of two texts.
pub fn rouge_l(hypothesis: &str, reference: &str, tokenizer: Tokenizer) -> RougeL {
    rouge_l_tokens(
        &tokenize(hypothesis, tokenizer),
        &tokenize(reference, tokenizer),
    )
}

/// Mean ROUGE-L F over aligned pairs.
pub fn rouge_l_mean(hypotheses: &[&str], references: &[&str], tokenizer: Tokenizer) -> Result<f64> {
    pair_check(hypotheses.len(), references.len(), "ROUGE-L")?;
    let sum: f64 = hypotheses
        .iter()
        .zip(references)
        .map(|(h, r)| rouge_l(h, r, tokenizer).f1)
        .sum();
    Ok(sum / hypotheses.len() as f64)
}

fn pair_check(hyps: usize, refs: usize, what: &'static str) -> Result<()> {
    if hyps != refs {
        return Err(DataError::LengthMismatch {
            what,
            left_name: "hypotheses",
            left: hyps,
            right_name: "references",
            right: refs,
        });
    }
    if hyps == 0 {
        return Err(DataError::Empty { what });
    }
    Ok(())
}

const BLEU_ORDER: usize = 4;
const METHOD1_EPSILON: f64 = 0.1;

/// NLTK's `modified_precision`: clipped n-gram matches and `max(1, hypothesis n-grams)`.
fn modified_precision<T: Eq + std::hash::Hash>(
    references: &[&[T]],
    hypothesis: &[T],
    n: usize,
) -> (usize, usize) {
    let counts = ngram_counts(hypothesis, n);
    let reference_counts: Vec<_> = references.iter().map(|r| ngram_counts(r, n)).collect();
    let mut numerator = 0;
    for (ngram, &count) in &counts {
        let max_ref = reference_counts
            .iter()
            .map(|rc| rc.get(ngram).copied().unwrap_or(0))
            .max();
        numerator += count.min(max_ref.unwrap_or(0));
    }
    let total: usize = counts.values().sum();
    (numerator, total.max(1))
}

fn ngram_counts<T: Eq + std::hash::Hash>(tokens: &[T], n: usize) -> HashMap<&[T], usize> {
    let mut counts: HashMap<&[T], usize> = HashMap::new();
    if tokens.len() >= n {
        for window in tokens.windows(n) {
            *counts.entry(window).or_default() += 1;
        }
    }
    counts
}

/// NLTK's `closest_ref_length`: the reference length nearest the hypothesis', shorter on ties.
fn closest_ref_length<T>(references: &[&[T]], hyp_len: usize) -> usize {
    references
        .iter()
        .map(|r| r.len())
        .min_by_key(|&len| (len.abs_diff(hyp_len), len))
        .unwrap_or(0)
}

/// Corpus BLEU-4 over token sequences, each hypothesis with one or more references.
pub fn corpus_bleu<T: Eq + std::hash::Hash>(
    hypotheses: &[&[T]],
    references: &[Vec<&[T]>],
) -> Result<f64> {
    pair_check(hypotheses.len(), references.len(), "BLEU")?;
    let mut numerators = [0usize; BLEU_ORDER];
    let mut denominators = [0usize; BLEU_ORDER];
    let (mut hyp_len, mut ref_len) = (0usize, 0usize);
    for (hyp, refs) in hypotheses.iter().zip(references) {
        if refs.is_empty() {
            return Err(DataError::Invalid(
                "BLEU: a hypothesis has no reference".into(),
            ));
        }
        for n in 1..=BLEU_ORDER {
            let (num, den) = modified_precision(refs, hyp, n);
            numerators[n - 1] += num;
            denominators[n - 1] += den;
        }
        hyp_len += hyp.len();
        ref_len += closest_ref_length(refs, hyp.len());
    }
    if numerators[0] == 0 {
        return Ok(0.0);
    }
    let brevity = if hyp_len > ref_len {
        1.0
    } else if hyp_len == 0 {
        0.0
    } else {
        (1.0 - ref_len as f64 / hyp_len as f64).exp()
    };
    let log_sum: f64 = numerators
        .iter()
        .zip(&denominators)
        .map(|(&num, &den)| {
            let p = if num == 0 {
                METHOD1_EPSILON / den as f64
            } else {
                num as f64 / den as f64
            };
            p.ln() / BLEU_ORDER as f64
        })
        .sum();
    Ok(brevity * log_sum.exp())
}

/// Sentence BLEU-4 (NLTK `sentence_bleu` with method1 smoothing) over token sequences.
pub fn sentence_bleu<T: Eq + std::hash::Hash>(
    hypothesis: &[T],
    references: &[&[T]],
) -> Result<f64> {
    corpus_bleu(&[hypothesis], &[references.to_vec()])
}

/// Sentence BLEU-4 of two texts with one reference.
pub fn bleu4(hypothesis: &str, reference: &str, tokenizer: Tokenizer) -> f64 {
    let h = tokenize(hypothesis, tokenizer);
    let r = tokenize(reference, tokenizer);
    // One hypothesis with one reference cannot fail the pairing checks.
    sentence_bleu(&h, &[&r[..]]).unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rouge_l_hand_case() {
        // LCS("the cat sat on the mat", "the cat on a mat") = "the cat on mat" = 4.
        let s = rouge_l(
            "The cat sat on the mat",
            "the cat on a mat",
            Tokenizer::Whitespace,
        );
        assert!((s.precision - 4.0 / 6.0).abs() < 1e-12 && (s.recall - 4.0 / 5.0).abs() < 1e-12);
        assert_eq!(rouge_l("", "x", Tokenizer::Whitespace).f1, 0.0);
    }

    #[test]
    fn rouge_score_tokenizer() {
        assert_eq!(
            tokenize("Don't-stop, OK?", Tokenizer::RougeScore),
            ["don", "t", "stop", "ok"]
        );
    }

    #[test]
    fn bleu_identity_and_no_overlap() {
        let t = "a b c d e f";
        assert!((bleu4(t, t, Tokenizer::Whitespace) - 1.0).abs() < 1e-12);
        assert_eq!(bleu4("x y z", t, Tokenizer::Whitespace), 0.0);
    }
}
