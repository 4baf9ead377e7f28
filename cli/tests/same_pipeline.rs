//! The CLI and the web page classify through the same `classify` crate: one text run through
//! `mentalqlm classify --json` and through the web crate's `Session` (natively, on the same
//! CPU backend) gets identical probabilities, for choice scoring and for a stage-2 head.

mod common;

use burn::tensor::Device;
use common::*;
use formats::Folder;
use mentalqlm_web::session::{Picked, Session};

const TEXT: &str = "I cannot sleep and nothing feels worth doing any more.";

/// The CLI's probabilities for `TEXT`, in label order.
fn cli_probabilities(model: &str, task: &str, extra: &[&str]) -> (Vec<String>, Vec<f64>) {
    let mut args = vec![
        "classify", "--device", "cpu", "--model", model, "--task", task, "--json",
    ];
    args.extend_from_slice(extra);
    args.push(TEXT);
    let (stdout, _) = ok(&args);
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let probs = v["probabilities"].as_object().unwrap();
    (
        probs.keys().cloned().collect(),
        probs.values().map(|p| p.as_f64().unwrap()).collect(),
    )
}

/// The web session's probabilities for `TEXT`, and its method.
fn web_probabilities(picked: &Picked, task: &str) -> (Vec<String>, Vec<f64>, &'static str) {
    let session = Session::load(picked, &Device::flex(), None).unwrap();
    let c = classify::blocking(async {
        session
            .classify(task, TEXT)
            .await
            .map_err(|e| classify::ClassifyError::Input(format!("{e:#}")))
    })
    .unwrap();
    (c.labels, c.probabilities, c.method)
}

/// Labels in the CLI's JSON map order (sorted by serde_json), with their probabilities.
fn sorted(labels: Vec<String>, probs: Vec<f64>) -> Vec<(String, f64)> {
    let mut pairs: Vec<(String, f64)> = labels.into_iter().zip(probs).collect();
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    pairs
}

#[test]
fn cli_and_web_session_give_identical_probabilities() {
    let model = fixture("tiny/qwen2");
    let m = model.to_str().unwrap();
    let picked = Picked {
        model: Folder::disk(&model),
        adapter: None,
        head: None,
    };

    // Choice scoring: the answer sentences' likelihood.
    let (labels, cli) = cli_probabilities(m, "SAD", &["--no-classifier"]);
    let (web_labels, web, method) = web_probabilities(&picked, "SAD");
    assert_eq!(method, "choice");
    assert_eq!(labels.len(), 9);
    assert_eq!(sorted(labels, cli), sorted(web_labels, web));

    // A stage-2 adapter and head, trained here on the fixture data.
    let out = scratch("same-pipeline-head");
    let cache = scratch("same-pipeline-cache");
    let data = fixture("data/imhi");
    ok(&[
        "train",
        "classifier",
        "--mode",
        "prefix",
        "--top-k",
        "1",
        "--device",
        "cpu",
        "--model",
        m,
        "--task",
        "DR",
        "--data",
        data.to_str().unwrap(),
        "--epochs",
        "1",
        "--batch-size",
        "4",
        "--lr",
        "1e-3",
        "--cache-dir",
        cache.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let (labels, cli) = cli_probabilities(m, "DR", &["--head", out.to_str().unwrap()]);
    let with_head = Picked {
        head: Some(Folder::disk(&out)),
        ..picked
    };
    let (web_labels, web, method) = web_probabilities(&with_head, "DR");
    assert_eq!(method, "head");
    assert_eq!(labels.len(), 2);
    assert_eq!(sorted(labels, cli), sorted(web_labels, web));
    for d in [out, cache] {
        let _ = std::fs::remove_dir_all(d);
    }
}
