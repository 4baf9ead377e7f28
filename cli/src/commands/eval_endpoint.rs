//! `eval --endpoint`: the paper's generation protocol through any OpenAI-compatible chat
//! endpoint (this project's `serve`, vLLM, SGLang), as the seed's `infer_vllm_thread.py`
//! runs it: the prompts are fitted here (the local model's tokenizer), sent as a system and
//! a user message, answered greedily, and scored as usual.

use std::time::Duration;

use anyhow::{Result, bail};
use clap::Args as ClapArgs;

use crate::endpoint::ChatClient;

#[derive(ClapArgs, Debug, Clone)]
pub struct EndpointArgs {
    /// `--mode generate` through this chat endpoint instead of the local model, e.g.
    /// http://127.0.0.1:8080/v1 (`mentalqlm serve`). The local --model still fits each post
    /// into --max-prompt-tokens with its tokenizer.
    #[arg(long, requires = "served_model")]
    pub endpoint: Option<String>,
    /// The endpoint's model id (see its /v1/models), e.g. `explainer`.
    #[arg(long)]
    pub served_model: Option<String>,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Sent as `Authorization: Bearer KEY`.
    #[arg(long, default_value = "EMPTY")]
    pub api_key: String,
    /// Seconds a request may take.
    #[arg(long, default_value_t = 600.0)]
    pub timeout_s: f64,
    /// Retries of a request that timed out or got 429/5xx.
    #[arg(long, default_value_t = 3)]
    pub retries: usize,
}

impl EndpointArgs {
    /// The client, when an endpoint is given; checks the settings.
    pub fn client(&self, max_new_tokens: usize) -> Result<Option<ChatClient>> {
        let Some(endpoint) = &self.endpoint else {
            return Ok(None);
        };
        if self.concurrency == 0 {
            bail!("--concurrency must be at least 1");
        }
        if !(self.timeout_s > 0.0 && self.timeout_s.is_finite()) {
            bail!("--timeout-s must be positive");
        }
        Ok(Some(ChatClient::new(
            crate::endpoint::chat_url(endpoint)?,
            self.served_model.clone().unwrap_or_default(),
            self.api_key.clone(),
            // Greedy, as the local protocol.
            0.0,
            max_new_tokens,
            self.retries,
            Duration::from_secs_f64(self.timeout_s),
        )))
    }

    /// What the answers came from, for the report and the journal's key.
    pub fn describe(&self) -> Option<String> {
        self.endpoint.as_ref().map(|e| {
            format!(
                "endpoint {e}, model {}",
                self.served_model.as_deref().unwrap_or("")
            )
        })
    }
}

/// The answers to `prompts`, one request each, all in flight at once (the caller sends
/// --concurrency at a time). A request that still fails after its retries stops the run;
/// the answers kept so far stay in the journal.
pub fn answers(
    client: &ChatClient,
    system: &str,
    prompts: &[classify::Prompt],
) -> Result<Vec<String>> {
    let results: Vec<Result<Result<String, String>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = prompts
            .iter()
            .map(|p| scope.spawn(move || client.ask(&[("system", system), ("user", &p.query)])))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Ok(Err("the request's thread failed".into())))
            })
            .collect()
    });
    results
        .into_iter()
        .map(|r| match r? {
            Ok(answer) => Ok(answer),
            Err(why) => bail!("the endpoint gave no answer: {why}"),
        })
        .collect()
}
