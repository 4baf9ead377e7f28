//! `mentalqlm classify` end to end on the tiny fixtures: plain and `--json` output, and
//! `--explain`.

mod common;

use common::*;

#[test]
fn classify_plain_and_json() {
    let model = fixture("tiny/qwen2");
    let (stdout, _) = ok(&[
        "classify",
        "--device",
        "cpu",
        "--model",
        model.to_str().unwrap(),
        "--task",
        "SAD",
        "--json",
        "I failed my exam",
        "My boss yells at me",
    ]);
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    for l in &lines {
        let probs = l["probabilities"].as_object().unwrap();
        assert_eq!(probs.len(), 9);
        let total: f64 = probs.values().map(|v| v.as_f64().unwrap()).sum();
        assert!((total - 1.0).abs() < 1e-9);
        let best = probs
            .iter()
            .max_by(|a, b| a.1.as_f64().unwrap().total_cmp(&b.1.as_f64().unwrap()))
            .unwrap()
            .0;
        assert_eq!(l["label"].as_str().unwrap(), best);
    }
    let (stdout, _) = ok(&[
        "classify",
        "--device",
        "cpu",
        "--model",
        model.to_str().unwrap(),
        "--task",
        "DR",
        "--explain",
        "--max-new-tokens",
        "4",
        "I feel empty",
    ]);
    assert!(
        stdout.starts_with("DR: ") && stdout.contains("reasoning:"),
        "{stdout}"
    );
}
