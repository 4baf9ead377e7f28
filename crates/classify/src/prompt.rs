//! A text and its question as the ChatML prompt the model sees, with the post cut from its
//! end to fit the prompt budget (the question is always kept).

use data::{ChatTemplate, Dataset, fit_query, tasks};
use formats::tokenizer::TextTokenizer;

use crate::ClassifyError;

/// How prompts are built: the system prompt and the token budget.
#[derive(Debug, Clone)]
pub struct Prompter {
    pub template: ChatTemplate,
    /// Prompt budget in tokens: longer posts are cut from their end.
    pub max_prompt_tokens: usize,
}

/// One example's prompt after fitting.
#[derive(Debug, Clone)]
pub struct Prompt {
    pub text: String,
    /// The query inside `text` (its post cut when `truncated`): what a chat endpoint is sent.
    pub query: String,
    pub ids: Vec<u32>,
    /// Whether the post was cut to fit.
    pub truncated: bool,
}

impl Prompter {
    pub fn new(system: &str, max_prompt_tokens: usize) -> Self {
        Self {
            template: ChatTemplate::new(system),
            max_prompt_tokens,
        }
    }

    /// The prompt of a full query (post and question, as in the IMHI files).
    pub fn prompt(&self, tokenizer: &TextTokenizer, query: &str) -> Result<Prompt, ClassifyError> {
        let count = |text: &str| tokenizer.encode(text).map_or(usize::MAX, |ids| ids.len());
        let fitted = fit_query(&self.template, query, self.max_prompt_tokens, &count);
        let ids = tokenizer.encode(&fitted.prompt)?;
        Ok(Prompt {
            text: fitted.prompt,
            query: fitted.query,
            ids,
            truncated: fitted.truncated,
        })
    }

    /// The prompt asking `question` (the task's default when `None`) about `text`.
    pub fn for_text(
        &self,
        tokenizer: &TextTokenizer,
        dataset: Dataset,
        text: &str,
        question: Option<&str>,
    ) -> Result<Prompt, ClassifyError> {
        self.prompt(tokenizer, &tasks::query_for_text(dataset, text, question))
    }
}
