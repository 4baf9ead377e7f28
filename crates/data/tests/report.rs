//! Reports: Markdown, JSON and SVG files beside the published figures.

mod common;

use mentalqlm_data::predictions::read_predictions;
use mentalqlm_data::{Dataset, DatasetResult, EvalReport, published, score_predictions};

fn scored(set: &str) -> DatasetResult {
    let rows = read_predictions(&common::fixture(&format!(
        "metrics/predictions_{set}.jsonl"
    )))
    .unwrap();
    let s = score_predictions(Dataset::from_name(set).unwrap(), &rows).unwrap();
    DatasetResult::from_scored(&s, "test").unwrap()
}

#[test]
fn report_files_and_contents() {
    let mut report = EvalReport::new("tiny-model");
    report.notes.push("synthetic predictions".into());
    report.push(scored("DR"));
    report.push(scored("SAD"));
    report.push(scored("t-sid"));
    let sev = DatasetResult::from_labels(
        Dataset::DepSeverity,
        "test",
        &[0, 1, 2, 3, 0],
        &[0, 1, 1, 3, 0],
    )
    .unwrap()
    .with_variant("portuguese");
    report.push(sev);

    let md = report.to_markdown();
    assert!(
        md.contains("| MentaLLaMA-chat-13B | 85.68 | 75.79 | 76.49 | 75.11 | 63.62 | 75.34 |"),
        "{md}"
    );
    assert!(
        md.contains("| MentalQLM (0.5B) | – | – | – | – | – | 77.80 |"),
        "{md}"
    );
    assert!(md.contains("(2/5 sets)"), "{md}");
    assert!(
        md.contains("DEP-SEVERITY (portuguese)") && md.contains("42.84"),
        "{md}"
    );
    assert!(
        md.contains("confusion_t-sid.svg") && md.contains("confusion_DEP-SEVERITY-portuguese.svg")
    );
    let dr_f1 = 100.0 * report.results[0].metrics.weighted_f1;
    assert!(md.contains(&format!("{dr_f1:.2}")));

    let json = report.to_json();
    assert_eq!(json["results"][0]["dataset"], "DR");
    assert_eq!(json["results"][2]["dropped"], 5);
    assert!(json["paper_five_average_weighted_f1"].is_null());
    assert_eq!(json["published"]["systems"][0]["avg"], 75.34);

    let dir = common::scratch("report");
    let written = report.write(&dir).unwrap();
    let names: Vec<String> = written
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "report.md",
            "report.json",
            "confusion_DR.svg",
            "confusion_SAD.svg",
            "confusion_t-sid.svg",
            "confusion_DEP-SEVERITY-portuguese.svg"
        ]
    );
    let svg = std::fs::read_to_string(dir.join("confusion_SAD.svg")).unwrap();
    assert!(
        svg.contains("decision") && svg.contains("True label") && svg.contains("Predicted label")
    );
    // Nine classes: 81 cells.
    assert_eq!(svg.matches("<rect x=").count(), 81);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn five_set_average_when_complete() {
    let mut report = EvalReport::new("m");
    for (i, d) in Dataset::PAPER_FIVE.into_iter().enumerate() {
        let t = [0, 1, 0, 1];
        let p = if i % 2 == 0 {
            [0, 1, 0, 1]
        } else {
            [0, 1, 1, 1]
        };
        report.push(DatasetResult::from_labels(d, "test", &t, &p).unwrap());
    }
    let f_half = 100.0 * report.results[1].metrics.weighted_f1;
    let want = (3.0 * 100.0 + 2.0 * f_half) / 5.0;
    assert!((report.paper_five_average().unwrap() - want).abs() < 1e-9);
    assert!(report.to_markdown().contains(&format!("**{want:.2}**")));
    assert_eq!(
        published().score("ChatGPT zero-shot", Dataset::Irf),
        Some(41.33)
    );
}

/// The trained answer form: a recognised label before "Reasoning:" and some text after it.
#[test]
fn answer_form_needs_a_label_then_reasoning() {
    use mentalqlm_data::follows_answer_form;
    let ok = "Yes, the poster suffers from depression. Reasoning: sleepless for weeks.";
    assert!(follows_answer_form(Dataset::Dr, ok));
    assert!(follows_answer_form(
        Dataset::Sad,
        "This post shows the stress cause related to school. reasoning: exams"
    ));
    // No mark, nothing after it, no label before it, or the label only after it.
    assert!(!follows_answer_form(
        Dataset::Dr,
        "Yes, the poster suffers from depression."
    ));
    assert!(!follows_answer_form(
        Dataset::Dr,
        "Yes, the poster suffers from depression. Reasoning:  "
    ));
    assert!(!follows_answer_form(
        Dataset::Dr,
        "I think so. Reasoning: sad"
    ));
    assert!(!follows_answer_form(
        Dataset::Dr,
        "Reasoning: the poster suffers from depression."
    ));
    // Multi-byte text keeps offsets valid.
    assert!(follows_answer_form(
        Dataset::Dr,
        "No, the poster does not suffer from depression ☺. Reasoning: é"
    ));
}
