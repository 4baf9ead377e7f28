//! `mentalqlm serve` under bad input and load: every bad request gets its status and the
//! next good one is served, a full queue gets 429 with Retry-After, the API key is enforced
//! (and required off loopback), and SIGINT lets the answers in flight finish.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::Command;
use std::sync::Arc;

use common::server::*;
use common::*;
use serde_json::{Value, json};

#[test]
fn bad_requests_get_their_status_and_the_server_goes_on() {
    let server = Server::start(&[
        "--no-explainer",
        "--max-prompt-tokens",
        "80",
        "--max-body-bytes",
        "4000",
    ]);
    let good = chat("qwen2", "hi", 3);
    let cases: Vec<(&str, String, u16, &str)> = vec![
        ("/v1/chat/completions", "{not json".into(), 400, "not valid JSON"),
        ("/v1/chat/completions", r#"{"model": "qwen2"}"#.into(), 400, "missing field `messages`"),
        ("/v1/chat/completions", r#"{"model": "qwen2", "messages": "hi"}"#.into(), 400, "invalid type"),
        ("/v1/chat/completions", chat("nope", "hi", 3).to_string(), 404, "known: qwen2"),
        ("/v1/chat/completions", json!({"model": "qwen2", "messages": []}).to_string(), 400, "`messages` is empty"),
        ("/v1/chat/completions", json!({"model": "qwen2", "messages": [{"role": "robot", "content": "x"}]}).to_string(), 400, "messages[0].role"),
        ("/v1/chat/completions", json!({"model": "qwen2", "n": 2, "messages": [{"role": "user", "content": "x"}]}).to_string(), 400, "`n` must be 1"),
        ("/v1/chat/completions", json!({"model": "qwen2", "temperature": 9, "messages": [{"role": "user", "content": "x"}]}).to_string(), 400, "`temperature`"),
        ("/v1/chat/completions", chat("qwen2", &"word ".repeat(100), 3).to_string(), 400, "--max-prompt-tokens"),
        ("/v1/chat/completions", chat("qwen2", "hi", 100_000).to_string(), 400, "context"),
        ("/v1/chat/completions", json!({"model": "qwen2", "messages": [{"role": "user", "content": "<|im_end|>"}]}).to_string(), 400, "chat marker"),
        ("/v1/chat/completions", chat("qwen2", &"x".repeat(5000), 3).to_string(), 413, "length limit"),
        ("/v1/completions", json!({"model": "qwen2", "prompt": ["a", "b"]}).to_string(), 400, "one string"),
        ("/v1/classify", json!({"task": "NOPE", "texts": ["x"]}).to_string(), 400, "NOPE"),
        ("/v1/classify", json!({"task": "DR", "texts": []}).to_string(), 400, "`texts` is empty"),
        ("/v1/classify", json!({"task": "DR", "texts": ["ok", "  "]}).to_string(), 400, "texts[1] is empty"),
        ("/v1/nothing", "{}".into(), 404, "no such route"),
    ];
    for (path, body, status, needle) in cases {
        let (got, _, text) = server.post_raw(path, &body, None);
        assert_eq!(got, status, "{path} {body:.80}: {text}");
        let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        let message = v["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(needle),
            "{path}: `{needle}` not in {message}"
        );
        assert!(v["error"]["type"].is_string());
        let (ok_status, v) = server.post("/v1/chat/completions", &good);
        assert_eq!(ok_status, 200, "after {path} {body:.60}: {v}");
    }
    assert!(!server.log().contains("panicked"));
}

#[test]
fn a_full_queue_gets_429_with_retry_after() {
    let server = Arc::new(Server::start(&[
        "--no-explainer",
        "--max-batch",
        "1",
        "--max-queue",
        "1",
    ]));
    let threads: Vec<_> = (0..24)
        .map(|i| {
            let s = server.clone();
            std::thread::spawn(move || {
                let body = chat("qwen2", &format!("question {i}"), 40);
                s.post_raw("/v1/chat/completions", &body.to_string(), None)
            })
        })
        .collect();
    let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let refused: Vec<_> = results.iter().filter(|r| r.0 == 429).collect();
    assert!(
        !refused.is_empty(),
        "24 requests at once, one slot and a queue of one: none refused"
    );
    assert!(
        refused.iter().all(|r| r.1.as_deref() == Some("1")),
        "Retry-After missing"
    );
    assert!(results.iter().all(|r| r.0 == 200 || r.0 == 429));
    assert!(results.iter().any(|r| r.0 == 200));
}

#[test]
fn the_api_key_is_enforced_and_required_off_loopback() {
    let server = Server::start(&["--no-explainer", "--api-key", "sesame"]);
    let body = chat("qwen2", "hi", 3).to_string();
    assert_eq!(server.post_raw("/v1/chat/completions", &body, None).0, 401);
    assert_eq!(
        server
            .post_raw("/v1/chat/completions", &body, Some("wrong"))
            .0,
        401
    );
    assert_eq!(
        server
            .post_raw("/v1/chat/completions", &body, Some("sesame"))
            .0,
        200
    );
    assert_eq!(server.get("/v1/models", None).0, 401);
    assert_eq!(server.get("/v1/models", Some("sesame")).0, 200);
    assert_eq!(server.get("/health", None).0, 200);
    drop(server);
    let model = model_path();
    fails(
        &[
            "serve", "--device", "cpu", "--model", &model, "--host", "0.0.0.0", "--port", "0",
        ],
        &["--api-key"],
    );
    fails(
        &[
            "serve",
            "--device",
            "cpu",
            "--model",
            &model,
            "--adapter",
            "noequals",
        ],
        &["NAME=DIR"],
    );
}

#[test]
fn sigint_drains_the_requests_in_flight() {
    let mut server = Server::start(&["--no-explainer"]);
    let mut body = chat("qwen2", "tell me a long story", 150);
    body["stream"] = json!(true);
    let mut resp = Server::agent()
        .post(format!("{}/v1/chat/completions", server.base))
        .send(body.to_string())
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let mut reader = BufReader::new(resp.body_mut().as_reader());
    let mut first = String::new();
    while !first.starts_with("data: ") {
        first.clear();
        reader.read_line(&mut first).unwrap();
    }
    // The answer has begun: stop the server, then read the rest of it.
    let pid = server.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let mut rest = String::new();
    reader.read_to_string(&mut rest).unwrap();
    assert!(rest.trim_end().ends_with("data: [DONE]"), "{rest}");
    let status = server.child.wait().unwrap();
    assert!(status.success(), "the server exited with {status}");
    assert!(server.log_gets("draining"), "{}", server.log());
}

/// `eval --endpoint` with nothing listening, or with a mode it cannot serve, fails with a
/// message, not a panic.
#[test]
fn eval_against_a_dead_endpoint_fails_clearly() {
    let model = model_path();
    let data = fixture("data/imhi").display().to_string();
    let out = scratch("dead-endpoint").display().to_string();
    let base = [
        "eval",
        "--device",
        "cpu",
        "--model",
        &model,
        "--data",
        &data,
        "--datasets",
        "DR",
        "--max-new-tokens",
        "4",
        "--no-explainer",
        "--out",
        &out,
        "--served-model",
        "x",
    ];
    let mut dead = base.to_vec();
    dead.extend([
        "--endpoint",
        "http://127.0.0.1:9/v1",
        "--retries",
        "1",
        "--timeout-s",
        "5",
    ]);
    fails(
        &dead,
        &["the endpoint gave no answer", "failed after 2 attempts"],
    );
    let mut choice = base.to_vec();
    choice.extend(["--endpoint", "http://127.0.0.1:9/v1", "--mode", "choice"]);
    fails(&choice, &["--mode generate only"]);
    let mut bad = base.to_vec();
    bad.extend(["--endpoint", "localhost:9"]);
    fails(&bad, &["http:// or https://"]);
    let _ = std::fs::remove_dir_all(out);
}

/// A client that leaves in the middle of a streamed answer frees its slot at once: the
/// engine stops that sequence long before its `max_tokens` (the default model would write
/// for many seconds), says so, and serves the next request.
#[test]
fn a_client_that_leaves_frees_its_slot() {
    use std::io::{Read, Write};
    let model = root().join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(model.is_file(), "run scripts/setup-model.sh");
    let server = Server::start_with(&model, &["--no-explainer", "--max-batch", "1"]);
    let body = json!({
        "model": "SmolLM2-135M-Instruct.Q4_1.gguf",
        "messages": [{"role": "user", "content": "Write a very long story about a cat who travels the world."}],
        "max_tokens": 1000,
        "stream": true,
    })
    .to_string();
    let host = server.base.trim_start_matches("http://").to_string();
    let mut socket = std::net::TcpStream::connect(&host).unwrap();
    write!(
        socket,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    // Read until the first streamed chunk, then leave.
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains("data: ") {
        let n = socket.read(&mut buf).unwrap();
        assert!(n > 0, "the server closed before streaming");
        seen.extend_from_slice(&buf[..n]);
    }
    socket.shutdown(std::net::Shutdown::Both).unwrap();
    drop(socket);
    assert!(
        server.log_gets("generation stopped: the client left after"),
        "the server never noticed:\n{}",
        server.log()
    );
    let log = server.log();
    let line = log
        .lines()
        .find(|l| l.contains("the client left after"))
        .unwrap();
    let after: usize = line
        .split("left after ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(after < 200, "it kept generating for {after} tokens: {line}");
    // The one slot serves the next request.
    let (status, answer) = server.post(
        "/v1/chat/completions",
        &json!({"model": "SmolLM2-135M-Instruct.Q4_1.gguf", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}),
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["usage"]["completion_tokens"], 4);
}
