//! The CLI and the web page classify through the same `classify` crate: one text run through
//! `mentalqlm classify --json` and through the web crate's `Session` (natively, on the same
//! CPU backend) gets the same probabilities, for choice scoring, a head-only classifier (as
//! shipped) and a stage-2 head. "The same" is to 1e-9: Burn's CPU backend sums in parallel
//! with rayon, whose work splitting follows the machine's load, so two runs of one pipeline
//! can differ in the last bit (seen once, 2e-16 relative, on a loaded machine); two
//! different pipelines differ by far more.

mod common;

use std::path::Path;

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
    let session = Session::load(picked, &Device::flex(), None, None).unwrap();
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

/// The same labels with probabilities equal to 1e-9.
fn assert_same(cli: Vec<(String, f64)>, web: Vec<(String, f64)>) {
    assert_eq!(cli.len(), web.len(), "{cli:?} vs {web:?}");
    for ((a, p), (b, q)) in cli.iter().zip(&web) {
        assert_eq!(a, b);
        assert!((p - q).abs() <= 1e-9, "{a}: CLI {p} vs web {q}");
    }
}

/// The model's files, with a stage-2 head and head-only classifiers, as the page hands them.
fn picked(model: &Path, head: Option<&Path>, classifiers: &[&Path]) -> Picked {
    Picked {
        model: Folder::disk(model),
        adapter: None,
        head: head.map(Folder::disk),
        classifiers: classifiers.iter().map(|c| Folder::disk(*c)).collect(),
        explainer: None,
    }
}

/// `train classifier` for DR on `model` and the fixture data into `out`, then `extra`.
fn train_dr(model: &str, cache: &Path, out: &Path, extra: &[&str]) {
    let data = fixture("data/imhi");
    let mut args = vec![
        "train",
        "classifier",
        "--device",
        "cpu",
        "--model",
        model,
        "--task",
        "DR",
        "--data",
        data.to_str().unwrap(),
        "--cache-dir",
        cache.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    ok(&args);
}

#[test]
fn cli_and_web_session_give_the_same_probabilities() {
    let model = fixture("tiny/qwen2");
    let m = model.to_str().unwrap();
    let plain = picked(&model, None, &[]);

    // Choice scoring: the answer sentences' likelihood.
    let (labels, cli) = cli_probabilities(m, "SAD", &["--no-classifier"]);
    let (web_labels, web, method) = web_probabilities(&plain, "SAD");
    assert_eq!(method, "choice");
    assert_eq!(labels.len(), 9);
    assert_same(sorted(labels, cli), sorted(web_labels, web));

    // A head-only classifier (the kind shipped in classifiers/), trained here.
    let probe = scratch("same-pipeline-probe");
    let cache = scratch("same-pipeline-cache");
    train_dr(m, &cache, &probe, &["--mode", "head", "--l2", "0.1"]);
    let (labels, cli) = cli_probabilities(m, "DR", &["--head", probe.to_str().unwrap()]);
    let with_probe = picked(&model, None, &[&probe]);
    let (web_labels, web, method) = web_probabilities(&with_probe, "DR");
    assert_eq!(method, "probe");
    assert_eq!(labels.len(), 2);
    assert_same(sorted(labels, cli), sorted(web_labels, web));
    // A task without a classifier is scored untuned, and says so.
    let (_, _, method) = web_probabilities(&with_probe, "SAD");
    assert_eq!(method, "choice");
    // A classifier made for another model is passed over with the reason, as the CLI does.
    let other = picked(&fixture("tiny/llama"), None, &[&probe]);
    let session = Session::load(&other, &Device::flex(), None, None).unwrap();
    assert!(
        session.info.classifiers[0].contains("not used")
            && session.info.classifiers[0].contains("sha256"),
        "{:?}",
        session.info.classifiers
    );
    let (_, _, method) = web_probabilities(&other, "DR");
    assert_eq!(method, "choice");

    // A stage-2 adapter and head, trained here on the fixture data.
    let out = scratch("same-pipeline-head");
    train_dr(
        m,
        &cache,
        &out,
        &[
            "--mode",
            "prefix",
            "--top-k",
            "1",
            "--epochs",
            "1",
            "--batch-size",
            "4",
            "--lr",
            "1e-3",
        ],
    );
    let (labels, cli) = cli_probabilities(m, "DR", &["--head", out.to_str().unwrap()]);
    let with_head = picked(&model, Some(&out), &[]);
    let (web_labels, web, method) = web_probabilities(&with_head, "DR");
    assert_eq!(method, "head");
    assert_eq!(labels.len(), 2);
    assert_same(sorted(labels, cli), sorted(web_labels, web));
    for d in [out, cache, probe] {
        let _ = std::fs::remove_dir_all(d);
    }
}

/// BART and T5 (MentalBART / MentalT5 layouts): the page's session scores each label's
/// completion answer as `classify` does, and its explanation is the CLI's answer (with a
/// note when that answer states another label than the one given).
#[test]
fn encoder_decoder_models_classify_and_explain_alike() {
    for name in ["bart", "t5"] {
        let model = fixture(&format!("tiny/{name}"));
        let m = model.to_str().unwrap();
        let (labels, probs) = cli_probabilities(m, "DR", &[]);
        let (web_labels, web_probs, method) = web_probabilities(&picked(&model, None, &[]), "DR");
        assert_eq!(method, "choice");
        assert_same(sorted(labels, probs), sorted(web_labels, web_probs));

        let (stdout, _) = ok(&[
            "classify",
            "--device",
            "cpu",
            "--model",
            m,
            "--task",
            "DR",
            "--json",
            "--explain",
            TEXT,
        ]);
        let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
        let cli_answer = v["answer"].as_str().unwrap().to_string();
        let chosen = v["label_index"].as_u64().unwrap() as usize;
        let session =
            Session::load(&picked(&model, None, &[]), &Device::flex(), None, None).unwrap();
        let mut streamed = 0;
        let answer = classify::blocking(async {
            session
                .explain("DR", TEXT, Some(chosen), 160, |_| streamed += 1)
                .await
                .map_err(|e| classify::ClassifyError::Input(format!("{e:#}")))
        })
        .unwrap();
        assert!(
            answer.starts_with(&cli_answer),
            "{name}: {answer:?} vs {cli_answer:?}"
        );
        let agrees = v["answer_agrees"].as_bool().unwrap();
        assert_eq!(
            answer.contains("Note: this answer states"),
            !agrees,
            "{name}: {answer}"
        );
    }
    // Adapters are refused, naming the model.
    let model = fixture("tiny/bart");
    let mut with_adapter = picked(&model, None, &[]);
    with_adapter.adapter = Some(Folder::disk(&fixture("lora/qwen2-adapter")));
    let err = match Session::load(&with_adapter, &Device::flex(), None, None) {
        Ok(_) => panic!("an adapter on BART loaded"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        err.contains("encoder-decoder") && err.contains("adapters"),
        "{err}"
    );
}
