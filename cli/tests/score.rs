//! `mentalqlm score` end to end: metrics over a predictions file equal scikit-learn's.

mod common;

use common::*;

#[test]
fn score_equals_scikit_learn() {
    let expected: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("metrics/predictions_expected.json")).unwrap(),
    )
    .unwrap();
    for set in ["DR", "SAD", "CAMS", "DEP-SEVERITY", "t-sid"] {
        let file = fixture(&format!("metrics/predictions_{set}.jsonl"));
        let (stdout, _) = ok(&[
            "score",
            "--predictions",
            file.to_str().unwrap(),
            "--dataset",
            set,
            "--json",
        ]);
        let got: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
        let sk = &expected[set]["sklearn"];
        for key in ["accuracy", "weighted_f1", "macro_f1", "micro_f1"] {
            let (a, b) = (
                got["metrics"][key].as_f64().unwrap(),
                sk[key].as_f64().unwrap(),
            );
            assert!((a - b).abs() < 1e-9, "{set} {key}: {a} vs scikit-learn {b}");
        }
    }
}
