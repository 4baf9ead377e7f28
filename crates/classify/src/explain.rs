//! The model's own answer, `"<label>. Reasoning: <explanation>"` after instruction tuning:
//! greedy generation from fitted prompts, optionally streamed.

use formats::tokenizer::TextTokenizer;
use model::CausalLm;
use model::generate::{GenerateConfig, Sampling, generate_async};

use crate::{ClassifyError, Prompt};

/// Greedy answers to a batch of prompts, at most `max_new_tokens` tokens each.
/// `on_text(prompt, text_so_far)` is called after every token when given (for streaming;
/// it costs a decode per token).
pub async fn answers(
    lm: &CausalLm,
    tokenizer: &TextTokenizer,
    prompts: &[Prompt],
    max_new_tokens: usize,
    on_text: Option<&mut dyn FnMut(usize, &str)>,
) -> Result<Vec<String>, ClassifyError> {
    let config = GenerateConfig {
        max_new_tokens,
        sampling: Sampling::Greedy,
        seed: 0,
        stop_ids: tokenizer.stop_ids.clone(),
        pad_id: tokenizer.pad_id,
    };
    let ids: Vec<Vec<u32>> = prompts.iter().map(|p| p.ids.clone()).collect();
    let mut stream = TextStream::new(tokenizer, prompts.len(), on_text);
    let out = generate_async(lm, &ids, &config, |seq, id| stream.push(seq, id)).await?;
    out.iter().map(|ids| Ok(tokenizer.decode(ids)?)).collect()
}

/// Each answer's text so far, handed to `on_text(item, text)` after every token: the
/// whole answer is decoded each time, so characters split across tokens come out whole.
/// Without `on_text` it keeps and decodes nothing.
pub(crate) struct TextStream<'a, 'f> {
    tokenizer: &'a TextTokenizer,
    so_far: Vec<Vec<u32>>,
    on_text: Option<&'f mut dyn FnMut(usize, &str)>,
}

impl<'a, 'f> TextStream<'a, 'f> {
    pub(crate) fn new(
        tokenizer: &'a TextTokenizer,
        items: usize,
        on_text: Option<&'f mut dyn FnMut(usize, &str)>,
    ) -> Self {
        Self {
            tokenizer,
            so_far: vec![Vec::new(); items],
            on_text,
        }
    }

    pub(crate) fn push(&mut self, item: usize, id: u32) {
        if let Some(f) = self.on_text.as_deref_mut() {
            self.so_far[item].push(id);
            if let Ok(text) = self.tokenizer.decode(&self.so_far[item]) {
                f(item, &text);
            }
        }
    }
}

/// The explanation part of an answer: the text after "Reasoning:", or the whole answer.
pub fn reasoning(answer: &str) -> &str {
    match data::labels::reasoning_mark(answer) {
        Some(i) => answer[i + data::labels::REASONING_MARK.len()..].trim(),
        None => answer.trim(),
    }
}

#[cfg(test)]
mod tests {
    use super::reasoning;

    #[test]
    fn reasoning_is_the_text_after_the_mark() {
        assert_eq!(reasoning("depression. Reasoning: sleepless."), "sleepless.");
        assert_eq!(reasoning("stress. REASONING:  work "), "work");
        assert_eq!(reasoning("  no mark here "), "no mark here");
        // Multi-byte text before the mark keeps offsets valid.
        assert_eq!(reasoning("é déprimé. reasoning: ok"), "ok");
    }
}
