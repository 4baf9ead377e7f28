//! MentaLLaMA's encoder-decoder models (MentalBART, MentalT5) in the classify pipeline:
//! IMHI-completion prompts; labels by `choice` scoring (each label's completion answer,
//! [`data::tasks::completion_answers`], scored by the decoder after the answer prefix); and
//! explanations by the model's own generation (its generation_config.json's strategy).
//! The CLI and the web page call these, as they call [`crate::Pipeline`] for decoder-only
//! models.

use data::{ChatFormat, Dataset, tasks};
use formats::tokenizer::TextTokenizer;
use model::score::normalise;
use model::seq2seq::score::continuation_logprobs_async;
use model::seq2seq::{GenerationSettings, LoadedSeq2Seq, Seq2SeqLm};

use crate::explain::TextStream;
use crate::pipeline::{check_texts, classification};
use crate::{Classification, ClassifyError, Prompt, Prompter, Scorer};

/// An encoder-decoder model with its tokenizer, generation settings and prompt builder.
pub struct Seq2SeqPipeline {
    pub model: Seq2SeqLm,
    pub tokenizer: TextTokenizer,
    pub generation: GenerationSettings,
    pub prompter: Prompter,
}

impl Seq2SeqPipeline {
    /// IMHI-completion prompts of at most `max_prompt_tokens` tokens. A model without a
    /// tokenizer is refused, naming its folder.
    pub fn new(loaded: LoadedSeq2Seq, max_prompt_tokens: usize) -> Result<Self, ClassifyError> {
        let tokenizer = loaded.tokenizer.ok_or_else(|| {
            ClassifyError::Input(format!(
                "{}: the model has no tokenizer (tokenizer.json, spiece.model, or vocab.json \
                 with merges.txt)",
                loaded.origin.display()
            ))
        })?;
        // The encoder input adds up to two special tokens, and BART has a last position.
        let budget = match loaded.model.max_positions() {
            Some(max) => max_prompt_tokens.min(max.saturating_sub(2)),
            None => max_prompt_tokens,
        };
        Ok(Self {
            model: loaded.model,
            tokenizer,
            generation: loaded.generation,
            prompter: Prompter::new("", budget).with_format(ChatFormat::ImhiCompletion),
        })
    }

    /// IMHI-completion prompts of `(text, question)` pairs (the task's question when
    /// `None`); an empty list or text is refused.
    fn prompts(
        &self,
        dataset: Dataset,
        items: &[(&str, Option<&str>)],
    ) -> Result<Vec<Prompt>, ClassifyError> {
        check_texts(items)?;
        items
            .iter()
            .map(|(t, q)| self.prompter.for_text(&self.tokenizer, dataset, t, *q))
            .collect()
    }

    /// Classifies `(text, question)` pairs: per-label probabilities of the completion
    /// answers (method `choice`).
    pub async fn classify(
        &self,
        dataset: Dataset,
        items: &[(&str, Option<&str>)],
    ) -> Result<Vec<Classification>, ClassifyError> {
        let prompts = self.prompts(dataset, items)?;
        let probs = self.probabilities(dataset, &prompts).await?;
        Ok(probs
            .into_iter()
            .zip(&prompts)
            .map(|(p, prompt)| classification(Scorer::Choice, dataset, p, prompt.truncated))
            .collect())
    }

    /// Per-label probabilities of each prompt (label order), from the likelihood of each
    /// label's completion answer.
    pub async fn probabilities(
        &self,
        dataset: Dataset,
        prompts: &[Prompt],
    ) -> Result<Vec<Vec<f64>>, ClassifyError> {
        let candidates = tasks::completion_answers(dataset)
            .iter()
            .map(|a| self.tokenizer.encode(a))
            .collect::<Result<Vec<_>, _>>()?;
        let prefix = self.generation.answer_prefix();
        let mut out = Vec::with_capacity(prompts.len());
        for p in prompts {
            let input = self.model.encoder_input(&p.ids);
            let logprobs =
                continuation_logprobs_async(&self.model, &input, &prefix, &candidates).await?;
            out.push(normalise(&logprobs));
        }
        Ok(out)
    }

    /// The model's answers ("<label>. Reasoning: ...") to `(text, question)` pairs; see
    /// [`Self::answers`].
    pub async fn explain(
        &self,
        dataset: Dataset,
        items: &[(&str, Option<&str>)],
        max_new_tokens: usize,
        on_text: Option<&mut dyn FnMut(usize, &str)>,
    ) -> Result<Vec<String>, ClassifyError> {
        let prompts = self.prompts(dataset, items)?;
        self.answers(&prompts, max_new_tokens, on_text).await
    }

    /// The model's answers to prompts (IMHI-completion, see [`Self::prompter`]), by its
    /// generation settings with `max_new_tokens` as the length budget; `on_text(item,
    /// text_so_far)` after every token of greedy decoding (beam search gives each whole
    /// answer at once).
    pub async fn answers(
        &self,
        prompts: &[Prompt],
        max_new_tokens: usize,
        on_text: Option<&mut dyn FnMut(usize, &str)>,
    ) -> Result<Vec<String>, ClassifyError> {
        let mut settings = self.generation.clone();
        // The caller's budget replaces the model's max_length (often transformers' default
        // of 20, which would cut the reasoning short); the rest of its settings stay.
        settings.max_length = max_new_tokens + 1;
        let inputs: Vec<Vec<u32>> = prompts
            .iter()
            .map(|p| self.model.encoder_input(&p.ids))
            .collect();
        let mut stream = TextStream::new(&self.tokenizer, inputs.len(), on_text);
        let out =
            model::seq2seq::generation::generate_async(&self.model, &inputs, &settings, |i, id| {
                stream.push(i, id)
            })
            .await?;
        out.iter()
            .map(|ids| Ok(self.tokenizer.decode(ids)?))
            .collect()
    }
}
