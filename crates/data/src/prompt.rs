//! Chat prompts (ChatML, LLaMA-Factory's `qwen` template, and Llama-2's `[INST]` format),
//! MentaLLaMA's IMHI-completion prompts (MentalBART, MentalT5), and fitting long posts into a
//! token budget without losing the question.

use serde::Serialize;

/// LLaMA-Factory's default system prompt for the `qwen` template (PAPER.md).
pub const DEFAULT_SYSTEM: &str = "You are a helpful assistant.";

/// How a model writes its chat turns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub enum ChatFormat {
    /// `<|im_start|>role\n...<|im_end|>\n`: Qwen, SmolLM2, and the paper's template.
    #[default]
    ChatMl,
    /// Llama-2 chat (MentaLLaMA):
    /// `<s>[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{user} [/INST] {answer} </s>`.
    Llama2,
    /// MentaLLaMA's IMHI-completion data, which MentalBART and MentalT5 were trained on: no
    /// chat turns, the post and a cue the answer completes ([`completion_query`]).
    ImhiCompletion,
}

impl ChatFormat {
    pub fn name(self) -> &'static str {
        match self {
            Self::ChatMl => "ChatML",
            Self::Llama2 => "Llama-2",
            Self::ImhiCompletion => "IMHI-completion",
        }
    }

    /// The format a Jinja chat template writes, known by its markers; `None` for others.
    pub fn from_template(template: &str) -> Option<Self> {
        if template.contains("<|im_start|>") {
            Some(Self::ChatMl)
        } else if template.contains("[INST]") {
            Some(Self::Llama2)
        } else {
            None
        }
    }

    /// Strings of this format's markup, which user text must not contain.
    pub fn markers(self) -> &'static [&'static str] {
        match self {
            Self::ChatMl => &["<|im_start|>", "<|im_end|>"],
            Self::Llama2 => &["[INST]", "[/INST]", "<<SYS>>", "<</SYS>>", "<s>", "</s>"],
            Self::ImhiCompletion => &[],
        }
    }
}

/// A chat template: the system prompt and the model's format. ChatML is PAPER.md's:
/// `<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{query}<|im_end|>\n<|im_start|>assistant\n`
/// followed, for training, by `{answer}<|im_end|>\n`. Llama-2's is rendered as
/// transformers renders Llama-2-chat's Jinja template (an empty system prompt has no
/// `<<SYS>>` block).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatTemplate {
    pub system: String,
    pub format: ChatFormat,
}

impl Default for ChatTemplate {
    fn default() -> Self {
        Self::new(DEFAULT_SYSTEM)
    }
}

impl ChatTemplate {
    /// A ChatML template.
    pub fn new(system: impl Into<String>) -> Self {
        Self {
            system: system.into(),
            format: ChatFormat::ChatMl,
        }
    }

    pub fn with_format(mut self, format: ChatFormat) -> Self {
        self.format = format;
        self
    }

    /// The prompt up to and including the assistant header: what generation continues.
    pub fn prompt(&self, query: &str) -> String {
        self.conversation(&[("user", query)])
    }

    /// A conversation of `(role, content)` messages, up to and including the assistant
    /// header (ChatML) or the last `[/INST]` (Llama-2), as the models' chat templates render
    /// it. Without a system message first, this template's system prompt leads, so one user
    /// message gives [`Self::prompt`]. Llama-2 writes only user and assistant turns.
    pub fn conversation(&self, messages: &[(&str, &str)]) -> String {
        let (system, messages) = match messages.first() {
            Some(("system", content)) => (*content, &messages[1..]),
            _ => (self.system.as_str(), messages),
        };
        let mut text = String::new();
        match self.format {
            ChatFormat::ChatMl => {
                text.push_str(&format!("<|im_start|>system\n{system}<|im_end|>\n"));
                for (role, content) in messages {
                    text.push_str(&format!("<|im_start|>{role}\n{content}<|im_end|>\n"));
                }
                text.push_str("<|im_start|>assistant\n");
            }
            ChatFormat::Llama2 => {
                for (i, (role, content)) in messages.iter().enumerate() {
                    let content = if i == 0 && !system.is_empty() {
                        format!("<<SYS>>\n{system}\n<</SYS>>\n\n{content}")
                    } else {
                        content.to_string()
                    };
                    match *role {
                        "user" => text.push_str(&format!("<s>[INST] {} [/INST]", content.trim())),
                        "assistant" => text.push_str(&format!(" {} </s>", content.trim())),
                        _ => {}
                    }
                }
            }
            // No turns: the last user message, as a completion prompt.
            ChatFormat::ImhiCompletion => {
                if let Some((_, content)) = messages.iter().rev().find(|(r, _)| *r == "user") {
                    text.push_str(&completion_query(content));
                }
            }
        }
        text
    }

    /// The answer part of a training sequence: the answer and its end-of-turn marker.
    /// The loss covers these tokens only (PAPER.md, stage 1), so trainers tokenise the
    /// two parts separately and mask the prompt's.
    pub fn answer_part(&self, answer: &str) -> String {
        match self.format {
            ChatFormat::ChatMl => format!("{answer}<|im_end|>\n"),
            ChatFormat::Llama2 => format!(" {} </s>", answer.trim()),
            ChatFormat::ImhiCompletion => answer.to_string(),
        }
    }

    /// The whole training sequence: `prompt(query) + answer_part(answer)`.
    pub fn training_text(&self, query: &str, answer: &str) -> String {
        let mut text = self.prompt(query);
        text.push_str(&self.answer_part(answer));
        text
    }
}

/// An IMHI instruction query (`Consider this post: "{post}" Question: {question}`) as
/// MentaLLaMA's IMHI-completion data writes the same example, which MentalBART and MentalT5
/// complete: `Post: {post}  Question: {cue}`, ending in a space. The cue is the completion
/// files' own, wording included ("suffers", "shows", "exists"; Irf's colon; SAD's
/// statement). A question of no IMHI set gets the files' general form, and text that is not
/// an instruction query is taken as the post of an unnamed question.
pub fn completion_query(query: &str) -> String {
    let (post, question) = match query
        .strip_prefix("Consider this post: \"")
        .and_then(|rest| rest.rsplit_once("\" Question: "))
    {
        Some((post, question)) => (post, question.trim()),
        None => (query.trim(), ""),
    };
    let cue = if question == "What is the stress cause of this post?" {
        "This post shows the stress cause of ".to_string()
    } else if let Some(risk) = question.strip_prefix("Does the post show risk of ") {
        format!("The answer to the question: \"Does the post shows risk of {risk}\" is ")
    } else if let Some(rest) = question.strip_prefix("Does the poster suffer from ") {
        format!("The answer to the question \"Does the poster suffers from {rest}\" is ")
    } else if let Some(dim) = question
        .strip_prefix("Does the ")
        .and_then(|q| q.strip_suffix(" wellness dimension exist in the post?"))
    {
        format!(
            "The answer to the question \"Does the {dim} wellness dimension exists in the post?\" is "
        )
    } else if question.is_empty() {
        String::new()
    } else {
        format!("The answer to the question \"{question}\" is ")
    };
    if cue.is_empty() {
        format!("Post: {post}  ")
    } else {
        format!("Post: {post}  Question: {cue}")
    }
}

/// A prompt fitted to a token budget.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FittedPrompt {
    /// The chat prompt to feed the model.
    pub prompt: String,
    /// The query inside it (the original, or one with a shortened post).
    pub query: String,
    /// Whether the post was shortened.
    pub truncated: bool,
    /// How many characters of the post were kept.
    pub post_chars_kept: usize,
    /// The post's length in characters.
    pub post_chars: usize,
    /// The prompt's token count by the given counter.
    pub tokens: usize,
    /// False only when even an empty post leaves the prompt over budget (the system prompt
    /// and question alone are too long); the prompt is then the empty-post one.
    pub fits: bool,
}

/// Fits `prompt(query)` into `max_tokens` by shortening the post (the text between the
/// first and last `"` of the query) from its end, keeping the question and everything
/// around the post byte for byte. `count_tokens` is the model's tokenizer, which lives in
/// another crate. The number of post characters kept is found by binary search over
/// character boundaries, so the counter runs about `log2(post length) + 2` times; token
/// counts grow with the prefix almost always, and every kept candidate was measured.
/// A query without a quoted post is shortened as a whole. Never fails: a long post is
/// the normal case, not an error.
pub fn fit_query(
    template: &ChatTemplate,
    query: &str,
    max_tokens: usize,
    count_tokens: &dyn Fn(&str) -> usize,
) -> FittedPrompt {
    let (head, post, tail) = match (query.find('"'), query.rfind('"')) {
        (Some(first), Some(last)) if last > first => {
            (&query[..=first], &query[first + 1..last], &query[last..])
        }
        _ => ("", query, ""),
    };
    // Byte offsets of the character boundaries: keeping k characters keeps post[..ends[k]].
    let ends: Vec<usize> = post
        .char_indices()
        .map(|(i, _)| i)
        .chain([post.len()])
        .collect();
    let post_chars = ends.len() - 1;
    let build = |k: usize| -> (String, String) {
        let q = format!("{head}{}{tail}", &post[..ends[k]]);
        let p = template.prompt(&q);
        (q, p)
    };
    let result =
        |query: String, prompt: String, k: usize, tokens: usize, fits: bool| FittedPrompt {
            prompt,
            query,
            truncated: k < post_chars,
            post_chars_kept: k,
            post_chars,
            tokens,
            fits,
        };

    let full = template.prompt(query);
    let full_tokens = count_tokens(&full);
    if full_tokens <= max_tokens {
        return result(query.to_string(), full, post_chars, full_tokens, true);
    }
    let (q0, p0) = build(0);
    let t0 = count_tokens(&p0);
    if t0 > max_tokens || post_chars == 0 {
        return result(q0, p0, 0, t0, t0 <= max_tokens);
    }
    // Invariant: `lo` characters fit (measured as `best`), `hi` characters do not.
    let (mut lo, mut hi) = (0usize, post_chars);
    let mut best = (q0, p0, t0);
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        let (q, p) = build(mid);
        let t = count_tokens(&p);
        if t <= max_tokens {
            lo = mid;
            best = (q, p, t);
        } else {
            hi = mid;
        }
    }
    let (q, p, t) = best;
    result(q, p, lo, t, true)
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_conversation_of_one_user_message_is_the_prompt() {
        let t = ChatTemplate::default();
        assert_eq!(t.conversation(&[("user", "hi")]), t.prompt("hi"));
        let own = t.conversation(&[
            ("system", "Be brief."),
            ("user", "a"),
            ("assistant", "b"),
            ("user", "c"),
        ]);
        assert_eq!(
            own,
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\na<|im_end|>\n\
             <|im_start|>assistant\nb<|im_end|>\n<|im_start|>user\nc<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    use super::*;

    fn words(s: &str) -> usize {
        s.split_whitespace().count()
    }

    #[test]
    fn completion_queries_are_the_completion_files() {
        let cases = [
            (
                r#"Consider this post: "I can't sleep." Question: Does the poster suffer from depression?"#,
                r#"Post: I can't sleep.  Question: The answer to the question "Does the poster suffers from depression?" is "#,
            ),
            (
                r#"Consider this post: "a "quoted" word" Question: Does the post show risk of perceived burdensomeness?"#,
                r#"Post: a "quoted" word  Question: The answer to the question: "Does the post shows risk of perceived burdensomeness?" is "#,
            ),
            (
                r#"Consider this post: "x" Question: Does the social wellness dimension exist in the post?"#,
                r#"Post: x  Question: The answer to the question "Does the social wellness dimension exists in the post?" is "#,
            ),
            (
                r#"Consider this post: "rent" Question: What is the stress cause of this post?"#,
                "Post: rent  Question: This post shows the stress cause of ",
            ),
            (
                r#"Consider this post: "y" Question: Is it sad?"#,
                r#"Post: y  Question: The answer to the question "Is it sad?" is "#,
            ),
            ("just a post ", "Post: just a post  "),
        ];
        let template = ChatTemplate::default().with_format(ChatFormat::ImhiCompletion);
        for (query, want) in cases {
            assert_eq!(completion_query(query), want);
            assert_eq!(
                template.prompt(query),
                want,
                "the template ignores the system prompt"
            );
        }
    }

    #[test]
    fn chatml_layout() {
        let t = ChatTemplate::default();
        assert_eq!(
            t.training_text("Q", "A"),
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\nA<|im_end|>\n"
        );
        assert!(
            ChatTemplate::new("Be brief.")
                .prompt("Q")
                .starts_with("<|im_start|>system\nBe brief.<|im_end|>")
        );
    }

    #[test]
    fn short_query_is_untouched() {
        let t = ChatTemplate::default();
        let q = r#"Consider this post: "a b c" Question: Is it?"#;
        let f = fit_query(&t, q, 1000, &words);
        assert!(!f.truncated && f.fits);
        assert_eq!(f.prompt, t.prompt(q));
    }

    #[test]
    fn long_post_is_cut_question_kept() {
        let t = ChatTemplate::default();
        let post = "wörd ".repeat(500);
        let q = format!(
            r#"Consider this post: "{post}" Question: Does the poster suffer from stress?"#
        );
        let budget = 60;
        let f = fit_query(&t, &q, budget, &words);
        assert!(f.truncated && f.fits);
        assert!(f.tokens <= budget);
        assert!(
            f.query
                .ends_with(r#"" Question: Does the poster suffer from stress?"#)
        );
        assert!(f.query.starts_with(r#"Consider this post: "wörd"#));
        // One more character would not fit: the search found the largest prefix.
        let longer = format!(
            r#"Consider this post: "{}" Question: Does the poster suffer from stress?"#,
            post.chars().take(f.post_chars_kept + 1).collect::<String>()
        );
        assert!(words(&t.prompt(&longer)) > budget || f.post_chars_kept + 1 > f.post_chars);
    }

    #[test]
    fn hopeless_budget_gives_empty_post_not_error() {
        let t = ChatTemplate::default();
        let f = fit_query(
            &t,
            r#"Consider this post: "x y z" Question: why?"#,
            2,
            &words,
        );
        assert!(!f.fits && f.post_chars_kept == 0);
        assert!(f.query.contains("Question: why?"));
    }
}
