//! The shipped classifiers against real data: the guard on the DR classifier with the default
//! model.

mod common;

use common::*;

/// The default model, which CI fetches (scripts/setup-model.sh).
fn default_model() -> std::path::PathBuf {
    let model = root().join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        model.is_file(),
        "{} is missing: run scripts/setup-model.sh",
        model.display()
    );
    model
}

/// CI's guard on a shipped classifier with real data: the default model and the DR
/// classifier, on a fixed seeded slice of 64 DR test posts, stay within [`MARGIN`] of the
/// weighted F1 that classifier.json records for the full test set. A change to the model
/// code, the tokenizer, the pooling or the file that breaks the classifier fails here.
#[test]
fn shipped_dr_classifier_keeps_its_f1_on_real_posts() {
    /// 64 posts put the slice's F1 within about ±0.05 of the full set's by chance (one
    /// standard error near 0.87 is 0.04); twice that is the allowance.
    const MARGIN: f64 = 0.10;
    let model = default_model();
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

/// `classify --explain` with the default model, the shipped classifiers and the shipped
/// explainer, on a few posts of two tasks: every explanation is written by the explainer,
/// states the classifier's label in the trained form (`"<label sentence>. Reasoning: …"`),
/// gives a reasoning of its own for each post, and ends before the token budget.
#[test]
fn shipped_explainer_agrees_with_the_classifier_on_real_posts() {
    let model = default_model();
    let posts = [
        "I haven't left my bed in days. Nothing I used to love means anything now, I can't \
         sleep, I can't eat, and I keep thinking everyone would be better off without me.",
        "Had a great weekend hiking with my brother. We finally made it to the summit and the \
         view was amazing. Looking forward to the next trip!",
        "My landlord just told me I have two weeks to move out and I have no savings. I can't \
         focus at work, my chest is tight all the time and I don't know what to do.",
    ];
    for task in ["DR", "dreaddit"] {
        let mut args = vec![
            "classify",
            "--device",
            "cpu",
            "--model",
            model.to_str().unwrap(),
            "--task",
            task,
            "--explain",
            "--max-new-tokens",
            "160",
            "--json",
        ];
        args.extend(posts);
        let (stdout, stderr) = ok(&args);
        assert!(
            stderr.contains("explainer: ") && !stderr.contains("untuned"),
            "{task}: the shipped explainer was not used:\n{stderr}"
        );
        let rows: Vec<serde_json::Value> = stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(rows.len(), posts.len(), "{task}: {stdout}");
        let mut reasonings = Vec::new();
        for r in &rows {
            let answer = r["answer"].as_str().unwrap();
            assert_eq!(r["answer_agrees"], true, "{task}: {r}");
            assert!(
                r["explainer"].as_str().unwrap().contains("explainer"),
                "{task}: {r}"
            );
            let (_, reasoning) = answer
                .split_once("Reasoning:")
                .unwrap_or_else(|| panic!("{task}: not in the trained form: {answer}"));
            let words = reasoning.split_whitespace().count();
            assert!(
                (8..150).contains(&words),
                "{task}: a reasoning of {words} words: {answer}"
            );
            assert!(
                r["note"].as_str().unwrap().contains("not a diagnosis"),
                "{task}: {r}"
            );
            reasonings.push(reasoning.trim().to_string());
        }
        reasonings.dedup();
        assert_eq!(
            reasonings.len(),
            posts.len(),
            "{task}: the same reasoning for different posts"
        );
    }
}
