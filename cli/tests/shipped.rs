//! The shipped classifiers against real data: the guard on the DR classifier with the default
//! model.

mod common;

use common::*;

/// CI's guard on a shipped classifier with real data: the default model and the DR
/// classifier, on a fixed seeded slice of 64 DR test posts, stay within [`MARGIN`] of the
/// weighted F1 that classifier.json records for the full test set. A change to the model
/// code, the tokenizer, the pooling or the file that breaks the classifier fails here.
#[test]
fn shipped_dr_classifier_keeps_its_f1_on_real_posts() {
    /// 64 posts put the slice's F1 within about ±0.05 of the full set's by chance (one
    /// standard error near 0.87 is 0.04); twice that is the allowance.
    const MARGIN: f64 = 0.10;
    let model = root().join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        model.is_file(),
        "{} is missing: run scripts/setup-model.sh",
        model.display()
    );
    let data = root().join("../shared/data/imhi");
    assert!(
        data.is_dir(),
        "{} is missing: the IMHI data sits beside the clone",
        data.display()
    );
    let shipped = root().join("classifiers");
    let config = read_json(shipped.join("DR/classifier.json"));
    let full = config["metrics"]["test_weighted_f1"].as_f64().unwrap();
    let out = scratch("guard-dr");
    ok(&[
        "eval",
        "--device",
        "cpu",
        "--model",
        model.to_str().unwrap(),
        "--mode",
        "head",
        "--data",
        data.to_str().unwrap(),
        "--datasets",
        "DR",
        "--limit",
        "64",
        "--seed",
        "0",
        "--classifiers",
        shipped.to_str().unwrap(),
        "--no-cache",
        "--out",
        out.to_str().unwrap(),
    ]);
    let report = read_json(out.join("report.json"));
    let text = report.to_string();
    let rows = std::fs::read_to_string(out.join("predictions_DR.jsonl")).unwrap();
    assert_eq!(rows.lines().count(), 64);
    let (scored, _) = ok(&[
        "score",
        "--predictions",
        out.join("predictions_DR.jsonl").to_str().unwrap(),
        "--dataset",
        "DR",
        "--json",
    ]);
    let scored: serde_json::Value = serde_json::from_str(scored.trim()).unwrap();
    let f1 = scored["metrics"]["weighted_f1"].as_f64().unwrap();
    assert!(
        f1 >= full - MARGIN,
        "DR slice weighted F1 {f1:.4} is below the full test set's {full:.4} minus {MARGIN}: {text}"
    );
    let _ = std::fs::remove_dir_all(out);
}
