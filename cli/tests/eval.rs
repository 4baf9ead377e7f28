//! `mentalqlm eval` end to end on the tiny fixtures: the predictions, confusion pictures and
//! reports it writes in `choice` and `generate` mode.

mod common;

use common::*;

#[test]
fn eval_writes_predictions_and_report() {
    let model = fixture("tiny/qwen2");
    let data = fixture("data/imhi");
    let dep = fixture("data/dep-severity/english.csv");
    for mode in ["choice", "generate"] {
        let out = scratch(&format!("eval-{mode}"));
        let (stdout, _) = ok(&[
            "eval",
            "--device",
            "cpu",
            "--model",
            model.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "--dep-severity",
            dep.to_str().unwrap(),
            "--mode",
            mode,
            "--limit",
            "3",
            "--max-new-tokens",
            "6",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(stdout.contains("average weighted F1"), "{stdout}");
        for set in ["DR", "dreaddit", "Irf", "MultiWD", "SAD", "DEP-SEVERITY"] {
            let preds =
                std::fs::read_to_string(out.join(format!("predictions_{set}.jsonl"))).unwrap();
            let rows: Vec<serde_json::Value> = preds
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            assert_eq!(rows.len(), 3, "{set}: --limit 3");
            for r in &rows {
                assert!(
                    r["prompt"]
                        .as_str()
                        .unwrap()
                        .starts_with("<|im_start|>system")
                );
                assert!(r["label"].is_string() && r["predict"].is_string());
            }
            assert!(
                out.join(format!("confusion_{set}.svg")).exists(),
                "{set}: no confusion picture"
            );
        }
        let md = std::fs::read_to_string(out.join("report.md")).unwrap();
        assert!(
            md.contains("MentaLLaMA-chat-13B") && md.contains("not a diagnosis"),
            "{md}"
        );
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap())
                .unwrap();
        assert_eq!(json["results"].as_array().unwrap().len(), 6);
        assert!(json["paper_five_average_weighted_f1"].is_number());
        let method = if mode == "choice" {
            "choice"
        } else {
            "generation"
        };
        for r in json["results"].as_array().unwrap() {
            assert_eq!(r["method"], method);
        }
    }
}
