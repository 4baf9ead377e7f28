//! A client of OpenAI-compatible chat endpoints (this project's `serve`, vLLM, SGLang), for
//! `judge` and `eval --endpoint`: blocking requests, with transient failures (timeouts,
//! refused connections, 429, 5xx, unreadable answers) retried a bounded number of times.

use std::time::Duration;

use anyhow::{Result, bail};
use serde_json::json;

/// `URL/chat/completions` for a base URL such as `http://127.0.0.1:8080/v1`.
pub fn chat_url(endpoint: &str) -> Result<String> {
    let e = endpoint.trim().trim_end_matches('/');
    if !(e.starts_with("http://") || e.starts_with("https://")) {
        bail!("--endpoint must be an http:// or https:// URL, got {endpoint:?}");
    }
    Ok(if e.ends_with("/chat/completions") {
        e.to_string()
    } else {
        format!("{e}/chat/completions")
    })
}

pub struct ChatClient {
    agent: ureq::Agent,
    url: String,
    model: String,
    key: String,
    temperature: f64,
    max_tokens: usize,
    retries: usize,
}

/// Why a request failed: worth retrying, or not (any other answer, which every request
/// would get: the run stops).
pub enum Failure {
    Transient(String),
    Fatal(String),
}

impl ChatClient {
    pub fn new(
        url: String,
        model: String,
        key: String,
        temperature: f64,
        max_tokens: usize,
        retries: usize,
        timeout: Duration,
    ) -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .build()
            .into();
        Self {
            agent,
            url,
            model,
            key,
            temperature,
            max_tokens,
            retries,
        }
    }

    /// One request with `(role, content)` messages: the answer's text.
    pub fn once(&self, messages: &[(&str, &str)]) -> Result<String, Failure> {
        let messages: Vec<_> = messages
            .iter()
            .map(|(role, content)| json!({"role": role, "content": content}))
            .collect();
        let body = json!({
            "model": self.model,
            "messages": messages,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "n": 1,
        });
        let mut response = self
            .agent
            .post(&self.url)
            .header("Content-Type", "application/json")
            .header("Authorization", &format!("Bearer {}", self.key))
            .send(body.to_string().as_bytes())
            .map_err(|e| Failure::Transient(format!("{e}")))?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .with_config()
            .limit(16 << 20)
            .read_to_string()
            .map_err(|e| Failure::Transient(format!("reading the answer: {e}")))?;
        let excerpt: String = text.chars().take(200).collect();
        if status == 429 || status >= 500 {
            return Err(Failure::Transient(format!("HTTP {status}: {excerpt}")));
        }
        if status != 200 {
            return Err(Failure::Fatal(format!(
                "{} answered HTTP {status}: {excerpt}",
                self.url
            )));
        }
        let value: serde_json::Value = serde_json::from_str(&text)
            .map_err(|_| Failure::Transient(format!("not a JSON answer: {excerpt}")))?;
        value["choices"][0]["message"]["content"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| {
                Failure::Transient(format!("no choices[0].message.content in: {excerpt}"))
            })
    }

    /// The answer, retrying transient failures `retries` times: `Ok(Err(why))` once they
    /// are spent, `Err` for a fatal one.
    pub fn ask(&self, messages: &[(&str, &str)]) -> Result<Result<String, String>> {
        let mut last = String::new();
        for attempt in 0..=self.retries {
            if attempt > 0 {
                std::thread::sleep(Duration::from_millis(250 * attempt as u64));
            }
            match self.once(messages) {
                Ok(answer) => return Ok(Ok(answer)),
                Err(Failure::Fatal(why)) => bail!("{why}"),
                Err(Failure::Transient(why)) => last = why,
            }
        }
        Ok(Err(format!(
            "failed after {} attempts: {last}",
            self.retries + 1
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chat_url_is_the_base_and_its_route() {
        assert_eq!(
            chat_url("http://h:1/v1/").unwrap(),
            "http://h:1/v1/chat/completions"
        );
        assert_eq!(
            chat_url("https://h/v1/chat/completions").unwrap(),
            "https://h/v1/chat/completions"
        );
        assert!(chat_url("h:1/v1").is_err());
    }
}
