//! `choice` scoring: the likelihood of each label's answer sentence after the prompt,
//! normalised over the labels. Needs no training; with an untuned model it is the baseline.

use data::{Dataset, tasks};
use formats::tokenizer::TextTokenizer;
use model::CausalLm;
use model::score::{continuation_logprobs_async, normalise};

use crate::{ClassifyError, Prompt};

/// Per-label probabilities of each prompt, in the dataset's label order.
pub async fn probabilities(
    lm: &CausalLm,
    tokenizer: &TextTokenizer,
    dataset: Dataset,
    prompts: &[Prompt],
) -> Result<Vec<Vec<f64>>, ClassifyError> {
    let candidates = tasks::answer_sentences(dataset)
        .iter()
        .map(|s| tokenizer.encode(s))
        .collect::<Result<Vec<_>, _>>()?;
    let ids: Vec<Vec<u32>> = prompts.iter().map(|p| p.ids.clone()).collect();
    let logprobs = continuation_logprobs_async(lm, &ids, &candidates, tokenizer.pad_id).await?;
    Ok(logprobs.iter().map(|l| normalise(l)).collect())
}
