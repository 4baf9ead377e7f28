//! The HTTP side: routes, the API key, body limits, and turning engine events into OpenAI's
//! JSON and server-sent events. Nothing here touches the model; jobs go to the engine thread
//! through a bounded queue, and a full queue is a 429.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use data::ChatTemplate;
use formats::tokenizer::TextTokenizer;
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

use super::answer::{Shape, log_done, stream};
use super::api::{self, ApiError, ChatRequest, ClassifyRequest, Common, CompletionRequest};
use super::engine::{Event, GenJob, Job, Params};

pub struct App {
    pub jobs: SyncSender<Job>,
    /// Model ids, by engine index: the base first, then the adapters.
    pub ids: Vec<String>,
    /// The base model's path as given, also accepted as its id (vLLM's convention).
    pub base_path: String,
    pub tokenizer: TextTokenizer,
    pub template: ChatTemplate,
    pub context: usize,
    pub max_prompt_tokens: usize,
    pub default_max_tokens: usize,
    pub max_texts: usize,
    pub api_key: Option<String>,
    pub log_text: bool,
    pub next_id: AtomicU64,
}

type Shared = State<Arc<App>>;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST);
        let mut response = (status, json_body(&self.body())).into_response();
        if self.status == 429 {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

fn json_body(v: &Value) -> ([(header::HeaderName, &'static str); 1], String) {
    ([(header::CONTENT_TYPE, "application/json")], v.to_string())
}

fn ok_json(v: &Value) -> Response {
    (StatusCode::OK, json_body(v)).into_response()
}

/// The Bearer token, when the server has a key. Compared in constant time.
fn authorize(app: &App, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(key) = &app.api_key else {
        return Ok(());
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let same = given.len() == key.len()
        && given
            .bytes()
            .zip(key.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if same {
        Ok(())
    } else {
        Err(ApiError::new(
            401,
            "authentication_error",
            "a valid API key is required (Authorization: Bearer KEY)",
        ))
    }
}

fn body(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|r| {
        ApiError::new(
            r.status().as_u16(),
            "invalid_request_error",
            format!("the body could not be read: {}", r.body_text()),
        )
    })
}

fn resolve(app: &App, name: &str) -> Result<usize, ApiError> {
    if name == app.base_path {
        return Ok(0);
    }
    app.ids
        .iter()
        .position(|id| id == name)
        .ok_or_else(|| ApiError {
            status: 404,
            message: format!(
                "the model `{name}` is not served here; known: {}",
                app.ids.join(", ")
            ),
            kind: "invalid_request_error",
            code: Some("model_not_found"),
        })
}

pub async fn health(State(app): Shared) -> Response {
    ok_json(&json!({"status": "ok", "models": app.ids}))
}

pub async fn models(State(app): Shared, headers: HeaderMap) -> Response {
    if let Err(e) = authorize(&app, &headers) {
        return e.into_response();
    }
    let created = api::now();
    let data: Vec<Value> = app
        .ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            json!({
                "id": id, "object": "model", "created": created, "owned_by": "mentalqlm",
                "root": app.ids[0], "parent": if i == 0 { Value::Null } else { json!(app.ids[0]) },
            })
        })
        .collect();
    ok_json(&json!({"object": "list", "data": data}))
}

pub async fn not_found() -> Response {
    ApiError::new(
        404,
        "invalid_request_error",
        "no such route; see GET /v1/models",
    )
    .into_response()
}

/// What both completion routes queue, and how their answers are shaped.
struct Prepared {
    model: usize,
    prompt: Vec<u32>,
    params: Params,
    stream: bool,
    include_usage: bool,
    chat: bool,
    text: String,
}

fn prepare(app: &App, common: &Common, text: String, chat: bool) -> Result<Prepared, ApiError> {
    let model = resolve(app, &common.model)?;
    let d = common.decoding()?;
    let prompt = app
        .tokenizer
        .encode(&text)
        .map_err(|e| ApiError::bad(format!("the prompt could not be tokenized: {e}")))?;
    if prompt.is_empty() {
        return Err(ApiError::bad("the prompt is empty"));
    }
    if prompt.len() > app.max_prompt_tokens {
        return Err(ApiError::bad(format!(
            "the prompt has {} tokens; this server takes at most {} (--max-prompt-tokens)",
            prompt.len(),
            app.max_prompt_tokens
        )));
    }
    let room = app.context.saturating_sub(prompt.len());
    let max_tokens = match d.max_tokens {
        Some(n) if n > room => {
            return Err(ApiError::bad(format!(
                "the prompt has {} tokens and `max_tokens` is {n}: beyond the model's context of {} tokens",
                prompt.len(),
                app.context
            )));
        }
        Some(n) => n,
        None => app.default_max_tokens.min(room),
    };
    if max_tokens == 0 {
        return Err(ApiError::bad(format!(
            "the prompt fills the model's context of {} tokens",
            app.context
        )));
    }
    let seed = d.seed.unwrap_or_else(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |t| t.as_nanos() as u64);
        nanos ^ app.next_id.load(Ordering::Relaxed).rotate_left(32)
    });
    Ok(Prepared {
        model,
        prompt,
        params: Params {
            max_tokens,
            sampling: d.sampling,
            seed,
            stop: d.stop,
        },
        stream: d.stream,
        include_usage: d.include_usage,
        chat,
        text,
    })
}

pub async fn chat(
    State(app): Shared,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Response {
    generation(app, &headers, raw, true, |app, body| {
        let req: ChatRequest = api::parse(body)?;
        let messages = req.messages(app.template.format.markers())?;
        let pairs: Vec<(&str, &str)> = messages.iter().map(|(r, t)| (*r, t.as_str())).collect();
        let text = app.template.conversation(&pairs);
        Ok((req.common, text))
    })
    .await
}

pub async fn completions(
    State(app): Shared,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Response {
    generation(app, &headers, raw, false, |_, body| {
        let req: CompletionRequest = api::parse(body)?;
        let text = req.prompt()?.to_string();
        Ok((req.common, text))
    })
    .await
}

fn route(chat: bool) -> &'static str {
    if chat {
        "/v1/chat/completions"
    } else {
        "/v1/completions"
    }
}

/// Both completion routes: the key, the body read into the shared fields and the prompt's
/// text, the checks, then the answer.
async fn generation(
    app: Arc<App>,
    headers: &HeaderMap,
    raw: Result<Bytes, BytesRejection>,
    chat: bool,
    read: impl FnOnce(&App, &[u8]) -> Result<(Common, String), ApiError>,
) -> Response {
    let started = Instant::now();
    let prepared = authorize(&app, headers)
        .and_then(|()| body(raw))
        .and_then(|bytes| read(&app, &bytes))
        .and_then(|(common, text)| prepare(&app, &common, text, chat));
    match prepared {
        Ok(p) => complete(app, p, started).await,
        Err(e) => log_error(route(chat), e, started),
    }
}

fn log_error(route: &str, e: ApiError, started: Instant) -> Response {
    eprintln!(
        "{route} {} {} ({:.0} ms)",
        e.status,
        e.message,
        started.elapsed().as_secs_f64() * 1e3
    );
    e.into_response()
}

fn queue(app: &App, job: Job) -> Result<(), ApiError> {
    app.jobs.try_send(job).map_err(|e| match e {
        TrySendError::Full(_) => ApiError::new(
            429,
            "rate_limit_error",
            "the server's queue is full; retry shortly",
        ),
        TrySendError::Disconnected(_) => {
            ApiError::new(503, "server_error", "the server is shutting down")
        }
    })
}

async fn complete(app: Arc<App>, p: Prepared, started: Instant) -> Response {
    let n = app.next_id.fetch_add(1, Ordering::Relaxed);
    let route = route(p.chat);
    let (tx, rx) = mpsc::unbounded_channel();
    let job = Job::Generate(GenJob {
        model: p.model,
        prompt: p.prompt.clone(),
        params: p.params.clone(),
        events: tx,
    });
    if let Err(e) = queue(&app, job) {
        return log_error(route, e, started);
    }
    let shape = Shape {
        id: if p.chat {
            format!("chatcmpl-{n}")
        } else {
            format!("cmpl-{n}")
        },
        created: api::now(),
        model: app.ids[p.model].clone(),
        chat: p.chat,
        prompt_tokens: p.prompt.len(),
    };
    let logged = app.log_text.then(|| p.text.clone());
    if p.stream {
        return stream(shape, rx, p.include_usage, route, logged, started).into_response();
    }
    let mut rx = rx;
    let mut text = String::new();
    loop {
        match rx.recv().await {
            Some(Event::Delta(t)) => text.push_str(&t),
            Some(Event::Done {
                finish_reason,
                completion_tokens,
            }) => {
                log_done(
                    route,
                    &shape,
                    completion_tokens,
                    started,
                    logged.as_deref(),
                    Some(&text),
                );
                return ok_json(&shape.whole(&text, finish_reason, completion_tokens));
            }
            Some(Event::Error(why)) => {
                return log_error(route, ApiError::new(500, "server_error", why), started);
            }
            None => {
                let e = ApiError::new(500, "server_error", "the model thread stopped");
                return log_error(route, e, started);
            }
        }
    }
}

pub async fn classify(
    State(app): Shared,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Response {
    let started = Instant::now();
    let prepared = (|| {
        authorize(&app, &headers)?;
        let req: ClassifyRequest = api::parse(&body(raw)?)?;
        let task = data::Dataset::from_name(&req.task).map_err(|e| ApiError::bad(e.to_string()))?;
        if req.texts.is_empty() {
            return Err(ApiError::bad("`texts` is empty"));
        }
        if req.texts.len() > app.max_texts {
            return Err(ApiError::bad(format!(
                "`texts` has {} texts; at most {} per request",
                req.texts.len(),
                app.max_texts
            )));
        }
        if let Some(i) = req.texts.iter().position(|t| t.trim().is_empty()) {
            return Err(ApiError::bad(format!("texts[{i}] is empty")));
        }
        Ok((task, req))
    })();
    let (task, req) = match prepared {
        Ok(x) => x,
        Err(e) => return log_error("/v1/classify", e, started),
    };
    let (tx, rx) = oneshot::channel();
    let job = Job::Classify(super::engine::ClassifyJob {
        task,
        texts: req.texts.clone(),
        question: req.question.clone(),
        reply: tx,
    });
    if let Err(e) = queue(&app, job) {
        return log_error("/v1/classify", e, started);
    }
    let results = match rx.await {
        Ok(Ok(r)) => r,
        Ok(Err(why)) => {
            return log_error(
                "/v1/classify",
                ApiError::new(500, "server_error", why),
                started,
            );
        }
        Err(_) => {
            let e = ApiError::new(500, "server_error", "the model thread stopped");
            return log_error("/v1/classify", e, started);
        }
    };
    let rows: Vec<Value> = results
        .iter()
        .map(|c| {
            let probabilities: serde_json::Map<String, Value> = c
                .labels
                .iter()
                .zip(&c.probabilities)
                .map(|(n, v)| (n.clone(), json!(v)))
                .collect();
            json!({
                "label": c.label, "label_index": c.label_index, "probabilities": probabilities,
                "truncated": c.truncated, "method": c.method, "classifier": c.classifier,
            })
        })
        .collect();
    eprintln!(
        "/v1/classify 200 task {} {} texts ({:.0} ms){}",
        task.name(),
        rows.len(),
        started.elapsed().as_secs_f64() * 1e3,
        if app.log_text {
            format!("\n  texts: {:?}", req.texts)
        } else {
            String::new()
        }
    );
    ok_json(&json!({
        "object": "classification", "task": task.name(), "results": rows, "note": classify::NOTE,
    }))
}
