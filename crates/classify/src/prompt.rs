//! A text and its question as the chat prompt the model sees, with the post cut from its
//! end to fit the prompt budget (the question is always kept), and which chat format a
//! model takes.

use data::{ChatFormat, ChatTemplate, Dataset, fit_query, tasks};
use formats::tokenizer::TextTokenizer;
use model::config::ModelType;

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
    /// ChatML prompts; [`Self::with_format`] for another model's format.
    pub fn new(system: &str, max_prompt_tokens: usize) -> Self {
        Self {
            template: ChatTemplate::new(system),
            max_prompt_tokens,
        }
    }

    pub fn with_format(mut self, format: ChatFormat) -> Self {
        self.template.format = format;
        self
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

/// How a chat format was chosen, for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormatSource {
    /// The model's own chat template has the format's markers.
    Template,
    /// The model has no chat template (or one of neither format); the reason is given.
    Fallback(String),
}

/// The chat format of a model: its chat template's, known by the markers; without one (or
/// with one of neither format), ChatML when the vocabulary has `<|im_start|>`, else by
/// model type (`llama` → Llama-2, `qwen2` → ChatML).
pub fn chat_format(model_type: ModelType, tokenizer: &TextTokenizer) -> (ChatFormat, FormatSource) {
    let why = match &tokenizer.chat_template {
        Some(t) => match ChatFormat::from_template(t) {
            Some(format) => return (format, FormatSource::Template),
            None => "its chat template is neither ChatML nor Llama-2",
        },
        None => "it has no chat template",
    };
    if tokenizer.token_to_id("<|im_start|>").is_some() {
        return (
            ChatFormat::ChatMl,
            FormatSource::Fallback(format!("{why}; its vocabulary has <|im_start|>")),
        );
    }
    let (format, name) = match model_type {
        ModelType::Llama => (ChatFormat::Llama2, "llama"),
        ModelType::Qwen2 => (ChatFormat::ChatMl, "qwen2"),
    };
    (
        format,
        FormatSource::Fallback(format!("{why}; chosen by model_type {name}")),
    )
}
