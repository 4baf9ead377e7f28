//! OpenAI's request and response shapes (chat completions, completions, models, errors) and
//! this server's `/v1/classify`, with the checks every request passes before it is queued.

use serde::Deserialize;
use serde_json::{Value, json};

use model::generate::Sampling;

/// An error as OpenAI sends it: an HTTP status and `{"error": {"message", "type", "code"}}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: u16,
    pub message: String,
    pub kind: &'static str,
    pub code: Option<&'static str>,
}

impl ApiError {
    pub fn bad(message: impl Into<String>) -> Self {
        Self {
            status: 400,
            message: message.into(),
            kind: "invalid_request_error",
            code: None,
        }
    }

    pub fn new(status: u16, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            kind,
            code: None,
        }
    }

    pub fn body(&self) -> Value {
        json!({"error": {"message": self.message, "type": self.kind, "param": null, "code": self.code}})
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Parts(Vec<Part>),
}

#[derive(Deserialize)]
pub struct Part {
    #[serde(rename = "type")]
    pub kind: String,
    pub text: Option<String>,
}

#[derive(Deserialize)]
pub struct Message {
    pub role: String,
    pub content: Content,
}

#[derive(Deserialize)]
#[serde(untagged)]
pub enum Stop {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize, Default)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: bool,
}

/// The fields chat completions and completions share. Others (`user`, `logprobs`, penalties
/// at their defaults...) are accepted and ignored, as clients send them unasked.
#[derive(Deserialize)]
pub struct Common {
    pub model: String,
    pub max_tokens: Option<usize>,
    pub max_completion_tokens: Option<usize>,
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub seed: Option<u64>,
    pub stop: Option<Stop>,
    pub n: Option<usize>,
    #[serde(default)]
    pub stream: bool,
    pub stream_options: Option<StreamOptions>,
}

#[derive(Deserialize)]
pub struct ChatRequest {
    pub messages: Vec<Message>,
    #[serde(flatten)]
    pub common: Common,
}

#[derive(Deserialize)]
#[serde(untagged)]
pub enum PromptField {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
pub struct CompletionRequest {
    pub prompt: PromptField,
    #[serde(flatten)]
    pub common: Common,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassifyRequest {
    pub task: String,
    pub texts: Vec<String>,
    pub question: Option<String>,
}

/// Parses a JSON body, naming what is wrong with it.
pub fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        let what = if e.is_syntax() || e.is_eof() {
            "the body is not valid JSON"
        } else {
            "the request does not fit the API"
        };
        ApiError::bad(format!("{what}: {e}"))
    })
}

/// Decoding settings of a request, checked against the server's limits.
pub struct Decoding {
    pub sampling: Sampling,
    pub seed: Option<u64>,
    pub stop: Vec<String>,
    /// Asked for; `None` means as many as fit, up to the server's default.
    pub max_tokens: Option<usize>,
    pub stream: bool,
    pub include_usage: bool,
}

impl Common {
    pub fn decoding(&self) -> Result<Decoding, ApiError> {
        if let Some(n) = self.n
            && n != 1
        {
            return Err(ApiError::bad(format!("`n` must be 1 here, got {n}")));
        }
        // OpenAI's defaults: temperature 1, top_p 1.
        let temperature = self.temperature.unwrap_or(1.0);
        if !(0.0..=2.0).contains(&temperature) {
            return Err(ApiError::bad(format!(
                "`temperature` must be in [0, 2], got {temperature}"
            )));
        }
        let top_p = self.top_p.unwrap_or(1.0);
        if !(top_p > 0.0 && top_p <= 1.0) {
            return Err(ApiError::bad(format!(
                "`top_p` must be in (0, 1], got {top_p}"
            )));
        }
        let stop = match &self.stop {
            None => Vec::new(),
            Some(Stop::One(s)) => vec![s.clone()],
            Some(Stop::Many(v)) => v.clone(),
        };
        if stop.len() > 4 || stop.iter().any(String::is_empty) {
            return Err(ApiError::bad(
                "`stop` takes up to 4 non-empty strings".to_string(),
            ));
        }
        let max_tokens = self.max_completion_tokens.or(self.max_tokens);
        if max_tokens == Some(0) {
            return Err(ApiError::bad("`max_tokens` must be at least 1"));
        }
        Ok(Decoding {
            sampling: if temperature == 0.0 {
                Sampling::Greedy
            } else {
                Sampling::TopP { temperature, top_p }
            },
            seed: self.seed,
            stop,
            max_tokens,
            stream: self.stream,
            include_usage: self
                .stream_options
                .as_ref()
                .is_some_and(|o| o.include_usage),
        })
    }
}

impl ChatRequest {
    /// The messages as `(role, text)`, checked: none may hold `markers`, the served
    /// model's chat markup.
    pub fn messages(&self, markers: &[&str]) -> Result<Vec<(&str, String)>, ApiError> {
        if self.messages.is_empty() {
            return Err(ApiError::bad("`messages` is empty"));
        }
        self.messages
            .iter()
            .enumerate()
            .map(|(i, m)| {
                if !matches!(m.role.as_str(), "system" | "user" | "assistant") {
                    return Err(ApiError::bad(format!(
                        "messages[{i}].role must be system, user or assistant, got `{}`",
                        m.role
                    )));
                }
                let text = match &m.content {
                    Content::Text(t) => t.clone(),
                    Content::Parts(parts) => {
                        let mut text = String::new();
                        for (k, p) in parts.iter().enumerate() {
                            match (p.kind.as_str(), &p.text) {
                                ("text", Some(t)) => text.push_str(t),
                                _ => {
                                    return Err(ApiError::bad(format!(
                                        "messages[{i}].content[{k}]: only text parts are served"
                                    )));
                                }
                            }
                        }
                        text
                    }
                };
                if let Some(marker) = markers.iter().find(|m| text.contains(*m)) {
                    return Err(ApiError::bad(format!(
                        "messages[{i}].content holds a chat marker ({marker})"
                    )));
                }
                Ok((m.role.as_str(), text))
            })
            .collect()
    }
}

impl CompletionRequest {
    pub fn prompt(&self) -> Result<&str, ApiError> {
        match &self.prompt {
            PromptField::One(p) => Ok(p),
            PromptField::Many(v) if v.len() == 1 => Ok(&v[0]),
            PromptField::Many(v) => Err(ApiError::bad(format!(
                "`prompt` must be one string here, got {}",
                v.len()
            ))),
        }
    }
}

pub fn usage(prompt: usize, completion: usize) -> Value {
    json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion})
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
