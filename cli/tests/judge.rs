//! `mentalqlm judge` against a small fake OpenAI-compatible server started here: scores come
//! from both orders (the fake judge favours whichever answer it sees first, and the swap
//! cancels that), an answer it cannot parse is an error and never a score, a server that
//! answers 500 or too slowly is retried a bounded number of times and then reported, and
//! without --endpoint nothing is sent.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;

const GOOD: &str = "Yes, the poster suffers from depression. Reasoning: GOOD detailed reasons.";
const BAD: &str = "Yes, the poster suffers from depression. Reasoning: BAD.";

/// Serves chat completions: GOOD scores 8 and BAD 3, plus 1 for the answer shown first; a
/// question holding FAIL500 gets HTTP 500, SLOW an answer after 3 s, GARBAGE a first line
/// that is not two scores. Counts the requests about FAIL500 and all requests.
fn fake_judge() -> (String, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let (fails, total) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (f, t) = (fails.clone(), total.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let (f, t) = (f.clone(), t.clone());
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut len = 0;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let lower = line.to_ascii_lowercase();
                    if let Some(v) = lower.strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap();
                    }
                    if line == "\r\n" {
                        break;
                    }
                }
                let mut body = vec![0; len];
                reader.read_exact(&mut body).unwrap();
                let request: serde_json::Value = serde_json::from_slice(&body).unwrap();
                t.fetch_add(1, Ordering::SeqCst);
                let user = request["messages"][1]["content"]
                    .as_str()
                    .unwrap()
                    .to_string();
                let (status, content) = if user.contains("FAIL500") {
                    f.fetch_add(1, Ordering::SeqCst);
                    (500, String::new())
                } else if user.contains("GARBAGE") {
                    (200, "Both answers are fine.\n".to_string())
                } else {
                    if user.contains("SLOW") {
                        std::thread::sleep(std::time::Duration::from_secs(3));
                    }
                    let first_good = user.find("GOOD").unwrap() < user.find("BAD").unwrap();
                    let (one, two) = if first_good { (9, 4) } else { (4, 8) };
                    (200, format!("{one} {two}\nThe first is more detailed."))
                };
                let body = serde_json::json!({
                    "id": "x", "object": "chat.completion",
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
                })
                .to_string();
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    (url, fails, total)
}

fn predictions(path: &std::path::Path, answers: &[(&str, &str)]) {
    let lines: Vec<String> = answers
        .iter()
        .enumerate()
        .map(|(i, (question, predict))| {
            serde_json::json!({
                "prompt": format!("<|im_start|>user\nConsider this post: \"{question}\" Question: Does the poster suffer from depression?<|im_end|>\n<|im_start|>assistant\n"),
                "label": format!("gold {i}"),
                "predict": predict,
            })
            .to_string()
        })
        .collect();
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

#[test]
fn judge_swaps_orders_and_reports_failures() {
    let dir = scratch("judge");
    std::fs::create_dir_all(&dir).unwrap();
    let (a, b) = (dir.join("a.jsonl"), dir.join("b.jsonl"));
    let questions = [
        "post one",
        "post two",
        "FAIL500 post",
        "GARBAGE post",
        "SLOW post",
    ];
    predictions(&a, &questions.map(|q| (q, GOOD)));
    predictions(&b, &questions.map(|q| (q, BAD)));
    let (url, fails, total) = fake_judge();
    let out = dir.join("out");
    let (stdout, _) = ok(&[
        "judge",
        "--a",
        a.to_str().unwrap(),
        "--b",
        b.to_str().unwrap(),
        "--endpoint",
        &url,
        "--served-model",
        "fake",
        "--retries",
        "2",
        "--timeout-s",
        "1",
        "--out",
        out.to_str().unwrap(),
    ]);
    let summary: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    // Two clean examples: A = (9 + 8) / 2, B = (4 + 4) / 2 in each; the fake's +1 for the
    // first position cancels, and is measured.
    assert_eq!(summary["scored"], 2, "{summary}");
    assert_eq!(summary["mean_a"], 8.5);
    assert_eq!(summary["mean_b"], 4.0);
    assert_eq!(
        (
            summary["wins_a"].as_u64(),
            summary["ties"].as_u64(),
            summary["losses_a"].as_u64()
        ),
        (Some(2), Some(0), Some(0))
    );
    assert_eq!(
        summary["errors"], 3,
        "500, garbage and timeout: errors, never scores"
    );
    assert_eq!(summary["position_bias"], 0.5);
    // 500s: 1 + 2 retries per order, both orders; then reported.
    assert_eq!(fails.load(Ordering::SeqCst), 6);
    let csv = std::fs::read_to_string(out.join("judge.csv")).unwrap();
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows.len(), 6, "{csv}");
    assert!(rows[1].starts_with("1,9,4,8,4,8.5,4,win,"), "{csv}");
    assert!(
        rows[3].contains("error")
            && rows[3].contains("after 3 attempts")
            && rows[3].contains("500"),
        "{csv}"
    );
    assert!(rows[4].contains("unparseable first line"), "{csv}");
    assert!(
        rows[5].contains("error") && rows[5].contains("after 3 attempts"),
        "{csv}"
    );

    // --no-swap asks once per example, A first: the position bias stays in the scores.
    let before = total.load(Ordering::SeqCst);
    let (stdout, _) = ok(&[
        "judge",
        "--a",
        a.to_str().unwrap(),
        "--b",
        b.to_str().unwrap(),
        "--endpoint",
        &url,
        "--no-swap",
        "--limit",
        "2",
        "--seed",
        "1",
        "--retries",
        "0",
        "--timeout-s",
        "1",
        "--out",
        out.to_str().unwrap(),
    ]);
    let summary: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(summary["examples"], 2);
    let asked = total.load(Ordering::SeqCst) - before;
    assert!(
        asked <= 2,
        "{asked} requests for 2 examples, one order each"
    );

    // No endpoint: refused before anything is read or sent.
    fails_with(
        &[
            "judge",
            "--a",
            a.to_str().unwrap(),
            "--b",
            b.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        &["--endpoint", "never picks one"],
    );
    // Files of other examples, or of other lengths, are refused by name.
    let c = dir.join("c.jsonl");
    predictions(&c, &[("post one", BAD)]);
    fails_with(
        &[
            "judge",
            "--a",
            a.to_str().unwrap(),
            "--b",
            c.to_str().unwrap(),
            "--endpoint",
            &url,
            "--out",
            out.to_str().unwrap(),
        ],
        &["c.jsonl", "holds 1"],
    );
    let _ = std::fs::remove_dir_all(dir);
}

fn fails_with(args: &[&str], needles: &[&str]) {
    fails(args, needles);
}
