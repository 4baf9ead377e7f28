//! How an answer goes back: OpenAI's JSON for a whole answer, its chunks as server-sent
//! events, and the log line of each request (without its text unless --log-text).

use std::collections::VecDeque;
use std::time::Instant;

use axum::response::sse::{Event as SseEvent, Sse};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::api::{self, ApiError};
use super::engine::Event;

pub fn log_done(
    route: &str,
    shape: &Shape,
    completion: usize,
    started: Instant,
    prompt: Option<&str>,
    answer: Option<&str>,
) {
    let mut line = format!(
        "{route} 200 {} model {} prompt {} tokens, answer {completion} tokens ({:.0} ms)",
        shape.id,
        shape.model,
        shape.prompt_tokens,
        started.elapsed().as_secs_f64() * 1e3
    );
    // The text of a request is logged only when asked for (--log-text).
    if let Some(p) = prompt {
        line.push_str(&format!("\n  prompt: {p:?}"));
        if let Some(a) = answer {
            line.push_str(&format!("\n  answer: {a:?}"));
        }
    }
    eprintln!("{line}");
}

/// The constant parts of one answer's JSON.
pub struct Shape {
    pub id: String,
    pub created: u64,
    pub model: String,
    pub chat: bool,
    pub prompt_tokens: usize,
}

impl Shape {
    pub fn whole(&self, text: &str, finish_reason: &str, completion: usize) -> Value {
        let choice = if self.chat {
            json!({"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": null, "finish_reason": finish_reason})
        } else {
            json!({"index": 0, "text": text, "logprobs": null, "finish_reason": finish_reason})
        };
        json!({
            "id": self.id, "object": if self.chat { "chat.completion" } else { "text_completion" },
            "created": self.created, "model": self.model, "choices": [choice],
            "usage": api::usage(self.prompt_tokens, completion),
        })
    }

    fn chunk(&self, delta: Value, finish_reason: Option<&str>) -> String {
        let choice = if self.chat {
            json!({"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish_reason})
        } else {
            json!({"index": 0, "text": delta.get("content").cloned().unwrap_or(json!("")), "logprobs": null, "finish_reason": finish_reason})
        };
        json!({
            "id": self.id, "object": if self.chat { "chat.completion.chunk" } else { "text_completion" },
            "created": self.created, "model": self.model, "choices": [choice],
        })
        .to_string()
    }

    fn usage_chunk(&self, completion: usize) -> String {
        json!({
            "id": self.id, "object": if self.chat { "chat.completion.chunk" } else { "text_completion" },
            "created": self.created, "model": self.model, "choices": [],
            "usage": api::usage(self.prompt_tokens, completion),
        })
        .to_string()
    }
}

struct StreamState {
    rx: mpsc::UnboundedReceiver<Event>,
    pending: VecDeque<String>,
    finished: bool,
    shape: Shape,
    include_usage: bool,
    route: &'static str,
    prompt: Option<String>,
    started: Instant,
}

/// Server-sent events: the role (chat), the text as it comes, the finish reason, the usage
/// when asked (`stream_options.include_usage`), then `[DONE]`.
pub fn stream(
    shape: Shape,
    rx: mpsc::UnboundedReceiver<Event>,
    include_usage: bool,
    route: &'static str,
    prompt: Option<String>,
    started: Instant,
) -> Sse<impl futures_util::Stream<Item = Result<SseEvent, std::convert::Infallible>>> {
    let mut pending = VecDeque::new();
    if shape.chat {
        pending.push_back(shape.chunk(json!({"role": "assistant", "content": ""}), None));
    }
    let state = StreamState {
        rx,
        pending,
        finished: false,
        shape,
        include_usage,
        route,
        prompt,
        started,
    };
    Sse::new(futures_util::stream::unfold(state, |mut s| async move {
        loop {
            if let Some(data) = s.pending.pop_front() {
                return Some((Ok(SseEvent::default().data(data)), s));
            }
            if s.finished {
                return None;
            }
            match s.rx.recv().await {
                Some(Event::Delta(t)) => {
                    let chunk = s.shape.chunk(json!({"content": t}), None);
                    s.pending.push_back(chunk);
                }
                Some(Event::Done {
                    finish_reason,
                    completion_tokens,
                }) => {
                    let last = s.shape.chunk(json!({}), Some(finish_reason));
                    s.pending.push_back(last);
                    if s.include_usage {
                        let usage = s.shape.usage_chunk(completion_tokens);
                        s.pending.push_back(usage);
                    }
                    s.pending.push_back("[DONE]".into());
                    s.finished = true;
                    log_done(
                        s.route,
                        &s.shape,
                        completion_tokens,
                        s.started,
                        s.prompt.as_deref(),
                        None,
                    );
                }
                other => {
                    let why = match other {
                        Some(Event::Error(why)) => why,
                        _ => "the model thread stopped".to_string(),
                    };
                    let e = ApiError::new(500, "server_error", why);
                    eprintln!("{} {} {}", s.route, e.status, e.message);
                    s.pending.push_back(e.body().to_string());
                    s.pending.push_back("[DONE]".into());
                    s.finished = true;
                }
            }
        }
    }))
}
