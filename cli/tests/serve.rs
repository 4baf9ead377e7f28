//! `mentalqlm serve` answers as the CLI does: greedy chat completions equal `generate`
//! (streamed or not), completions equal `generate --raw`, `/v1/classify` equals `classify
//! --json`, adapters mixed in one batch answer as alone, and 64 concurrent requests succeed.
//! Its limits and failures: serve_limits.rs.

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use common::server::*;
use common::*;
use serde_json::{Value, json};

#[test]
fn greedy_answers_equal_generate_streamed_or_not() {
    let server = Server::start(&["--no-explainer"]);
    let (status, models) = server.get("/v1/models", None);
    assert_eq!(status, 200);
    let models: Value = serde_json::from_str(&models).unwrap();
    let id = models["data"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(id, "qwen2");

    for prompt in ["I have not slept properly in weeks.", "hello"] {
        let (want, tokens) = generate(prompt, None, false, 24);
        let (status, v) = server.post("/v1/chat/completions", &chat(&id, prompt, 24));
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["object"], "chat.completion");
        assert_eq!(
            v["choices"][0]["message"]["content"].as_str().unwrap(),
            want
        );
        assert_eq!(v["usage"]["completion_tokens"].as_u64().unwrap(), tokens);
        let finish = v["choices"][0]["finish_reason"].as_str().unwrap();
        assert_eq!(finish, if tokens == 24 { "length" } else { "stop" });

        let mut body = chat(&id, prompt, 24);
        body["stream"] = json!(true);
        body["stream_options"] = json!({"include_usage": true});
        let events = server.stream("/v1/chat/completions", &body);
        assert_eq!(events.last().unwrap(), "[DONE]");
        let chunks: Vec<Value> = events[..events.len() - 1]
            .iter()
            .map(|e| serde_json::from_str(e).unwrap())
            .collect();
        assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
        let text: String = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert_eq!(text, want, "streamed text");
        let usage = &chunks.last().unwrap()["usage"];
        assert_eq!(usage["completion_tokens"].as_u64().unwrap(), tokens);
        assert_eq!(
            chunks[chunks.len() - 2]["choices"][0]["finish_reason"],
            finish
        );

        // /v1/completions sends the prompt as is, as `generate --raw` does.
        let (want_raw, _) = generate(prompt, None, true, 10);
        let (status, v) = server.post(
            "/v1/completions",
            &json!({"model": model_path(), "prompt": prompt, "max_tokens": 10, "temperature": 0}),
        );
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["choices"][0]["text"].as_str().unwrap(), want_raw);
    }
    // The prompt's text is not in the log without --log-text.
    assert!(server.log_gets("/v1/completions 200"), "{}", server.log());
    assert!(!server.log().contains("slept properly"), "{}", server.log());
}

#[test]
fn adapters_mixed_in_one_batch_answer_as_alone() {
    let a = format!("a={}", adapter("qwen2-adapter").display());
    let b = format!("b={}", adapter("head-adapter").display());
    let server = Arc::new(Server::start(&[
        "--no-explainer",
        "--adapter",
        &a,
        "--adapter",
        &b,
        "--log-text",
    ]));
    let cases: Vec<(&str, Option<PathBuf>, &str)> = vec![
        ("qwen2", None, "first post"),
        (
            "a",
            Some(adapter("qwen2-adapter")),
            "a second, longer post about sleep and work",
        ),
        ("b", Some(adapter("head-adapter")), "third"),
        ("a", Some(adapter("qwen2-adapter")), "fourth one"),
        (
            "qwen2",
            None,
            "the fifth post, which is long enough to pad the others",
        ),
    ];
    let wanted: Vec<String> = cases
        .iter()
        .map(|(_, dir, p)| generate(p, dir.as_ref(), false, 16).0)
        .collect();
    // Adapters change the answers (else this test could not fail).
    assert_ne!(generate(cases[1].2, None, false, 16).0, wanted[1]);
    let threads: Vec<_> = cases
        .iter()
        .map(|(model, _, prompt)| {
            let (s, body) = (server.clone(), chat(model, prompt, 16));
            std::thread::spawn(move || s.post("/v1/chat/completions", &body))
        })
        .collect();
    for ((t, want), case) in threads.into_iter().zip(&wanted).zip(&cases) {
        let (status, v) = t.join().unwrap();
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["model"], case.0);
        assert_eq!(
            v["choices"][0]["message"]["content"].as_str().unwrap(),
            want,
            "{}",
            case.0
        );
    }
    // With --log-text the prompts are logged.
    assert!(server.log_gets("fourth one"), "{}", server.log());
}

#[test]
fn classify_equals_the_cli() {
    let server = Server::start(&["--no-explainer"]);
    let texts = [
        "I feel hopeless and tired of everything.",
        "Great day at the beach with friends!",
    ];
    let (status, v) = server.post("/v1/classify", &json!({"task": "DR", "texts": texts}));
    assert_eq!(status, 200, "{v}");
    assert!(v["note"].as_str().unwrap().contains("not a diagnosis"));
    let model = model_path();
    let mut args = vec![
        "classify", "--device", "cpu", "--model", &model, "--task", "DR", "--json",
    ];
    args.extend(texts);
    let (stdout, _) = ok(&args);
    for (line, got) in stdout.lines().zip(v["results"].as_array().unwrap()) {
        let want: Value = serde_json::from_str(line).unwrap();
        assert_eq!(got["label"], want["label"]);
        assert_eq!(got["method"], want["method"]);
        for (label, p) in want["probabilities"].as_object().unwrap() {
            let q = got["probabilities"][label].as_f64().unwrap();
            assert!(
                (q - p.as_f64().unwrap()).abs() < 1e-9,
                "{label}: {q} vs {p}"
            );
        }
    }
}

#[test]
fn sixty_four_concurrent_requests_all_succeed() {
    let server = Arc::new(Server::start(&[
        "--no-explainer",
        "--max-batch",
        "8",
        "--max-queue",
        "64",
    ]));
    let threads: Vec<_> = (0..64)
        .map(|i| {
            let s = server.clone();
            std::thread::spawn(move || {
                let body = chat("qwen2", &format!("request number {i}"), 6);
                s.post("/v1/chat/completions", &body)
            })
        })
        .collect();
    for t in threads {
        let (status, v) = t.join().unwrap();
        assert_eq!(status, 200, "{v}");
        assert!(v["usage"]["completion_tokens"].as_u64().unwrap() >= 1);
    }
}

/// `eval --endpoint` against this server gives the local eval's predictions (greedy).
#[test]
fn eval_through_the_server_equals_the_local_eval() {
    let server = Server::start(&["--no-explainer"]);
    let model = model_path();
    let data = fixture("data/imhi").display().to_string();
    let root = scratch("serve-eval");
    let run = |out: &str, extra: &[&str]| {
        let out = root.join(out).display().to_string();
        let mut args = vec![
            "eval",
            "--device",
            "cpu",
            "--model",
            &model,
            "--data",
            &data,
            "--datasets",
            "DR,Irf",
            "--mode",
            "generate",
            "--max-new-tokens",
            "12",
            "--no-explainer",
            "--out",
            &out,
        ];
        args.extend(extra);
        ok(&args);
        ["DR", "Irf"].map(|set| {
            std::fs::read_to_string(format!("{out}/predictions_{set}.jsonl"))
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str::<Value>(l).unwrap()["predict"].clone())
                .collect::<Vec<_>>()
        })
    };
    let local = run("local", &[]);
    let endpoint = format!("{}/v1", server.base);
    let served = run(
        "served",
        &[
            "--endpoint",
            &endpoint,
            "--served-model",
            "qwen2",
            "--concurrency",
            "3",
        ],
    );
    assert_eq!(served, local);
    assert!(
        local[0]
            .iter()
            .all(|p| p.as_str().is_some_and(|s| !s.is_empty()))
    );
    let _ = std::fs::remove_dir_all(root);
}
