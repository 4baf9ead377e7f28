//! `mentalqlm serve`: an OpenAI-compatible server (`/v1/models`, `/v1/chat/completions`,
//! `/v1/completions`) with this project's `/v1/classify`, the base model and its adapters
//! resident at once, and continuous batching. The HTTP side is `http.rs`, the request
//! shapes `api.rs`, the model's thread `engine.rs`.

mod answer;
mod api;
mod engine;
mod http;

use std::collections::HashMap;
use std::net::ToSocketAddrs;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use anyhow::{Context, Result, bail};
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use clap::Args as ClapArgs;
use classify::{Pipeline, Prompter};

use crate::model_arg::{ModelArgs, Weights};

#[derive(ClapArgs, Debug)]
pub struct Args {
    /// The address to listen on. Any address but loopback needs --api-key.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// The port (0: any free one; the address is printed).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// A HF model folder or a .gguf file. Default: $MENTALQLM_MODEL, else
    /// models/SmolLM2-135M-Instruct.Q4_1.gguf.
    #[arg(long, short = 'm')]
    pub model: Option<PathBuf>,
    /// Where to run.
    #[arg(long, value_enum, default_value_t = crate::device::DeviceArg::Auto)]
    pub device: crate::device::DeviceArg,
    /// How the weights are held: a GGUF's codes kept or converted, a HF folder's quantized
    /// to Q8_0 (`q8`).
    #[arg(long, value_enum, default_value_t = Weights::Auto)]
    pub weights: Weights,
    /// A PEFT LoRA adapter to serve as model NAME: `--adapter NAME=DIR`, repeatable. All stay
    /// resident on the one base, never merged.
    #[arg(long = "adapter", value_name = "NAME=DIR")]
    pub adapters: Vec<String>,
    /// Where the shipped classifiers (and explainer) are (default: classifiers/ here).
    #[arg(long)]
    pub classifiers: Option<PathBuf>,
    /// Do not serve the shipped explainer (otherwise model `explainer` when it fits).
    #[arg(long)]
    pub no_explainer: bool,
    /// Requests must carry `Authorization: Bearer KEY`. Required off loopback.
    #[arg(long)]
    pub api_key: Option<String>,
    /// Sequences decoding together, over all models.
    #[arg(long, default_value_t = 8)]
    pub max_batch: usize,
    /// Requests waiting for a slot; one more gets 429 with Retry-After.
    #[arg(long, default_value_t = 64)]
    pub max_queue: usize,
    /// The largest request body, in bytes (413 beyond).
    #[arg(long, default_value_t = 1 << 20)]
    pub max_body_bytes: usize,
    /// The longest prompt, in tokens (400 beyond).
    #[arg(long, default_value_t = 4096)]
    pub max_prompt_tokens: usize,
    /// New tokens when a request gives no max_tokens (capped by the context).
    #[arg(long, default_value_t = 512)]
    pub max_tokens: usize,
    /// Texts per /v1/classify request.
    #[arg(long, default_value_t = 64)]
    pub max_texts: usize,
    /// The system prompt of a chat without one.
    #[arg(long, default_value = data::prompt::DEFAULT_SYSTEM)]
    pub system: String,
    /// Put the text of requests and answers in the log (never done otherwise).
    #[arg(long)]
    pub log_text: bool,
}

/// `NAME=DIR`, with a usable name.
fn parse_adapter(spec: &str) -> Result<(String, PathBuf)> {
    let (name, dir) = spec
        .split_once('=')
        .with_context(|| format!("--adapter {spec}: expected NAME=DIR"))?;
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:/".contains(c))
    {
        bail!("--adapter {spec}: the name must be letters, digits or -_.:/");
    }
    if dir.is_empty() {
        bail!("--adapter {spec}: no folder after `=`");
    }
    Ok((name.to_string(), PathBuf::from(dir)))
}

/// Every address `host` names is loopback.
fn loopback_only(host: &str, port: u16) -> Result<bool> {
    let addrs: Vec<_> = (host, port)
        .to_socket_addrs()
        .with_context(|| format!("--host {host}: not an address this machine can resolve"))?
        .collect();
    Ok(!addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback()))
}

pub fn run(args: Args) -> Result<()> {
    if args.max_batch == 0 || args.max_queue == 0 || args.max_texts == 0 {
        bail!("--max-batch, --max-queue and --max-texts must be at least 1");
    }
    if args.api_key.as_deref() == Some("") {
        bail!("--api-key is empty");
    }
    if !loopback_only(&args.host, args.port)? && args.api_key.is_none() {
        bail!(
            "--host {} is reachable from other machines: give --api-key KEY (clients send \
             `Authorization: Bearer KEY`), or serve on 127.0.0.1",
            args.host
        );
    }
    let adapters = args
        .adapters
        .iter()
        .map(|s| parse_adapter(s))
        .collect::<Result<Vec<_>>>()?;
    let margs = ModelArgs {
        model: args.model.clone(),
        adapter: None,
        device: args.device,
        weights: args.weights,
    };
    let path = margs.model_path()?;
    let (loaded, _) = margs.load()?;
    let tokenizer = loaded
        .tokenizer
        .context("the model has no tokenizer (tokenizer.json or tokenizer.model)")?;
    let base = loaded.model;
    let format = crate::model_arg::chat_format(&base, &tokenizer);
    let base_id = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().to_string(),
    );
    let mut ids = vec![base_id];
    let mut models = vec![base.clone()];
    for (name, dir) in &adapters {
        if ids.contains(name) {
            bail!("--adapter {name}=...: the name `{name}` is already taken");
        }
        let mut lm = base.clone();
        let config = model::lora::peft_io::load_adapter(&mut lm, &formats::Folder::disk(dir))
            .map_err(|e| {
                anyhow::anyhow!(e).context(format!("loading adapter {}", dir.display()))
            })?;
        eprintln!(
            "model {name}: adapter {} (r {}, alpha {})",
            dir.display(),
            config.r,
            config.lora_alpha
        );
        ids.push(name.clone());
        models.push(lm);
    }
    let root = crate::paths::shipped_root(args.classifiers.as_deref());
    if !args.no_explainer && !ids.iter().any(|i| i == "explainer") {
        let sha_path = path.clone();
        match crate::explainer::choose(root.as_deref(), &base, || {
            crate::classifiers::model_sha256(&sha_path)
        })? {
            crate::explainer::Choice::Shipped(tuned, dir, info) => {
                eprintln!(
                    "model explainer: {}",
                    info.describe(&dir.display().to_string())
                );
                ids.push("explainer".into());
                models.push(tuned);
            }
            crate::explainer::Choice::Untuned(why) => eprintln!("no explainer model: {why}"),
        }
    }
    let context = base.config.max_position_embeddings;
    let hidden = base.model.hidden_size();
    let probe_root = root.clone();
    let probe_path = path.clone();
    let mut sha: Option<String> = None;
    let probes = engine::ShippedProbes {
        load: Box::new(move |task| {
            let dir = crate::classifiers::task_dir(probe_root.as_ref()?, task);
            if !dir.join("classifier.json").is_file() {
                eprintln!(
                    "/v1/classify {}: no trained classifier; scoring answer likelihoods with the base model",
                    task.name()
                );
                return None;
            }
            if sha.is_none() {
                sha = crate::classifiers::model_sha256(&probe_path).ok();
            }
            match crate::classifiers::load(&dir, sha.as_deref()?, hidden, task) {
                Ok(p) => {
                    eprintln!("/v1/classify {}: {}", task.name(), p.describe());
                    Some(p)
                }
                Err(e) => {
                    eprintln!(
                        "/v1/classify {}: {} does not fit this model ({e:#})",
                        task.name(),
                        dir.display()
                    );
                    None
                }
            }
        }),
        loaded: HashMap::new(),
    };
    let engine = engine::Engine {
        pipeline: Pipeline {
            lm: base.clone(),
            tokenizer: tokenizer.clone(),
            // `classify`'s defaults, so both give the same numbers.
            prompter: Prompter::new(data::prompt::DEFAULT_SYSTEM, 512).with_format(format),
            batch_size: 8,
        },
        models,
        tokenizer: tokenizer.clone(),
        max_batch: args.max_batch,
        probes,
    };
    let (jobs, queue) = std::sync::mpsc::sync_channel(args.max_queue);
    let app = Arc::new(http::App {
        jobs,
        ids: ids.clone(),
        base_path: path.display().to_string(),
        tokenizer,
        template: data::ChatTemplate::new(args.system.clone()).with_format(format),
        context,
        max_prompt_tokens: args.max_prompt_tokens,
        default_max_tokens: args.max_tokens,
        max_texts: args.max_texts,
        api_key: args.api_key.clone(),
        log_text: args.log_text,
        next_id: AtomicU64::new(0),
    });
    let router = Router::new()
        .route("/health", get(http::health))
        .route("/v1/models", get(http::models))
        .route("/v1/chat/completions", post(http::chat))
        .route("/v1/completions", post(http::completions))
        .route("/v1/classify", post(http::classify))
        .fallback(http::not_found)
        .layer(DefaultBodyLimit::max(args.max_body_bytes))
        .with_state(app);
    let (host, port) = (args.host.clone(), args.port);
    // The HTTP side on a thread of its own; the model stays on this one, a worker of the
    // CPU backend's pool (see main.rs). When the server stops, the queue's senders go with
    // it and the engine returns once the sequences in flight are done.
    let http = std::thread::Builder::new()
        .name("http".into())
        .spawn(move || -> Result<()> {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            runtime.block_on(async {
                let listener = tokio::net::TcpListener::bind((host.as_str(), port))
                    .await
                    .with_context(|| format!("cannot listen on {host}:{port}"))?;
                let addr = listener.local_addr()?;
                eprintln!("models: {}", ids.join(", "));
                eprintln!("listening on http://{addr}/v1 (Ctrl-C drains and stops)");
                eprintln!("{}", classify::NOTE);
                axum::serve(listener, router)
                    .with_graceful_shutdown(shutdown())
                    .await
                    .context("the server failed")
            })
        })
        .context("cannot start the HTTP thread")?;
    engine.run(queue);
    http.join()
        .map_err(|_| anyhow::anyhow!("the HTTP thread failed"))??;
    eprintln!("stopped");
    Ok(())
}

/// Ctrl-C or SIGTERM: stop taking connections, finish the open ones.
async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    eprintln!("draining: finishing the requests in flight");
}
