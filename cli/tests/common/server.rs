//! A `mentalqlm serve` on the tiny fixture model for the server's tests, and requests to it.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use super::{fixture, ok};

pub struct Server {
    pub child: Child,
    pub base: String,
    log: Arc<Mutex<String>>,
}

impl Server {
    pub fn start(extra: &[&str]) -> Server {
        Self::start_with(&fixture("tiny/qwen2"), extra)
    }

    /// The server of another model.
    pub fn start_with(model: &std::path::Path, extra: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_mentalqlm"))
            .args(["serve", "--device", "cpu", "--port", "0", "--model"])
            .arg(model)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start mentalqlm serve");
        let log = Arc::new(Mutex::new(String::new()));
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut base = None;
        for line in lines.by_ref() {
            let line = line.unwrap();
            log.lock().unwrap().push_str(&format!("{line}\n"));
            if let Some(rest) = line.strip_prefix("listening on ") {
                base = Some(
                    rest.split(' ')
                        .next()
                        .unwrap()
                        .trim_end_matches("/v1")
                        .to_string(),
                );
                break;
            }
        }
        let base =
            base.unwrap_or_else(|| panic!("the server did not start:\n{}", log.lock().unwrap()));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                sink.lock().unwrap().push_str(&format!("{line}\n"));
            }
        });
        Server { child, base, log }
    }

    pub fn agent() -> ureq::Agent {
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(120)))
            .build()
            .into()
    }

    /// POSTs `body` (JSON text, sent as is) to `path`: the status, Retry-After and the body.
    pub fn post_raw(
        &self,
        path: &str,
        body: &str,
        key: Option<&str>,
    ) -> (u16, Option<String>, String) {
        let mut req = Self::agent()
            .post(format!("{}{path}", self.base))
            .header("Content-Type", "application/json");
        if let Some(k) = key {
            req = req.header("Authorization", format!("Bearer {k}"));
        }
        let mut resp = req.send(body).expect("the request reaches the server");
        let retry = resp
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_string());
        let text = resp.body_mut().read_to_string().unwrap();
        (resp.status().as_u16(), retry, text)
    }

    pub fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let (status, _, text) = self.post_raw(path, &body.to_string(), None);
        let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        (status, v)
    }

    pub fn get(&self, path: &str, key: Option<&str>) -> (u16, String) {
        let mut req = Self::agent().get(format!("{}{path}", self.base));
        if let Some(k) = key {
            req = req.header("Authorization", format!("Bearer {k}"));
        }
        let mut resp = req.call().unwrap();
        (
            resp.status().as_u16(),
            resp.body_mut().read_to_string().unwrap(),
        )
    }

    /// A streamed request: the `data:` payloads in order.
    pub fn stream(&self, path: &str, body: &Value) -> Vec<String> {
        let mut resp = Self::agent()
            .post(format!("{}{path}", self.base))
            .header("Content-Type", "application/json")
            .send(body.to_string())
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        let mut text = String::new();
        resp.body_mut()
            .as_reader()
            .read_to_string(&mut text)
            .unwrap();
        text.lines()
            .filter_map(|l| l.strip_prefix("data: ").map(str::to_string))
            .collect()
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Whether the log comes to hold `needle` within 5 s (its lines are read by a thread).
    pub fn log_gets(&self, needle: &str) -> bool {
        for _ in 0..100 {
            if self.log().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn model_path() -> String {
    fixture("tiny/qwen2").display().to_string()
}

pub fn adapter(name: &str) -> PathBuf {
    fixture(&format!("lora/{name}"))
}

/// `mentalqlm generate --json` of one prompt: its text and token count.
pub fn generate(
    prompt: &str,
    adapter: Option<&PathBuf>,
    raw: bool,
    max_new: usize,
) -> (String, u64) {
    let model = model_path();
    let max = max_new.to_string();
    let mut args = vec![
        "generate",
        "--device",
        "cpu",
        "--model",
        &model,
        "--json",
        "--max-new-tokens",
        &max,
    ];
    let a;
    if let Some(dir) = adapter {
        a = dir.display().to_string();
        args.extend(["--adapter", &a]);
    }
    if raw {
        args.push("--raw");
    }
    args.push(prompt);
    let (stdout, _) = ok(&args);
    let v: Value = serde_json::from_str(stdout.lines().next().unwrap()).unwrap();
    (
        v["output"].as_str().unwrap().to_string(),
        v["tokens"].as_u64().unwrap(),
    )
}

pub fn chat(model: &str, prompt: &str, max_tokens: usize) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": prompt}],
           "max_tokens": max_tokens, "temperature": 0})
}
