//! The readers on the synthetic files of tests/fixtures/data (gen_data_fixtures.py), and
//! every error they report.

mod common;

use common::{fixture, read_json, usizes};
use mentalqlm_data::imhi::{self, Split, load_file, load_json, load_split, split_path};
use mentalqlm_data::predictions::{PredictionRow, read_predictions, write_predictions};
use mentalqlm_data::{DataError, Dataset, dep_severity};

#[test]
fn imhi_folder_loads_every_split() {
    let expected = read_json("data/expected.json");
    let dir = fixture("data/imhi");
    for d in Dataset::PAPER_FIVE {
        for split in [Split::Test, Split::Train, Split::Val] {
            let key = format!("{}/{}", d.name(), split);
            let want = &expected["imhi"][&key];
            if want.is_null() {
                let err = load_split(&dir, d, split).unwrap_err();
                assert!(
                    matches!(err, DataError::MissingSplit { .. }),
                    "{key}: {err}"
                );
                let msg = err.to_string();
                assert!(msg.contains("`val`") && msg.contains(d.name()), "{msg}");
                continue;
            }
            let examples = load_split(&dir, d, split).unwrap_or_else(|e| panic!("{key}: {e}"));
            assert_eq!(
                examples.len() as u64,
                want["rows"].as_u64().unwrap(),
                "{key}"
            );
            let labels: Vec<usize> = examples.iter().map(|e| e.label.expect("scored")).collect();
            assert_eq!(labels, usizes(&want["labels"]), "{key} gold labels");
            for (e, post) in examples.iter().zip(want["posts"].as_array().unwrap()) {
                assert_eq!(e.post, post.as_str().unwrap(), "{key}");
                assert_eq!(e.question, want["question"].as_str().unwrap());
                assert_eq!(e.dataset, d);
                assert_eq!(imhi::build_query(&e.post, &e.question), e.query);
            }
            // Records start on increasing lines; multi-line posts push later records down.
            let lines: Vec<u64> = examples.iter().map(|e| e.at.line.unwrap()).collect();
            assert_eq!(lines[0], 2);
            assert!(lines.windows(2).all(|w| w[0] < w[1]));
        }
    }
}

#[test]
fn dataset_is_found_from_the_path() {
    let sad = load_file(&fixture("data/imhi/train/SAD/val.csv"), None).unwrap();
    assert!(sad.iter().all(|e| e.dataset == Dataset::Sad));
    let dr = load_file(&fixture("data/imhi/test/DR.csv"), None).unwrap();
    assert!(dr.iter().all(|e| e.dataset == Dataset::Dr));
}

#[test]
fn split_paths_follow_the_layout() {
    let dir = fixture("data/imhi");
    assert!(
        split_path(&dir, Dataset::Sad, Split::Train)
            .unwrap()
            .ends_with("train/SAD/train.csv")
    );
    assert!(
        split_path(&dir, Dataset::Irf, Split::Val)
            .unwrap()
            .ends_with("train/Irf/val.csv")
    );
    assert!(
        split_path(&dir, Dataset::MultiWd, Split::Test)
            .unwrap()
            .ends_with("test/MultiWD.csv")
    );
    let err = split_path(&dir, Dataset::Cams, Split::Test).unwrap_err();
    assert!(err.to_string().contains("CAMS.csv"), "{err}");
}

#[test]
fn imhi_json_list() {
    let expected = read_json("data/expected.json");
    let examples = load_json(&fixture("data/imhi_json/DR.json"), Dataset::Dr).unwrap();
    let labels: Vec<usize> = examples.iter().map(|e| e.label.unwrap()).collect();
    assert_eq!(labels, usizes(&expected["imhi_json"]["labels"]));
    assert_eq!(examples[1].at.record, 2);
    assert_eq!(examples[1].at.line, None);
    assert!(load_file(&fixture("data/imhi_json/DR.json"), None).is_ok());
}

#[test]
fn dep_severity_file() {
    let expected = read_json("data/expected.json");
    let rows = dep_severity::load(&fixture("data/dep-severity/english.csv")).unwrap();
    let labels: Vec<usize> = rows.iter().map(|r| r.label).collect();
    assert_eq!(labels, usizes(&expected["dep_severity"]["labels"]));
    assert!(rows[0].text.contains('\n') && rows[0].text.contains("\"quoted\""));
    let split = dep_severity::split(&rows, dep_severity::PAPER_SEED).unwrap();
    assert_eq!(
        split.train.len() + split.val.len() + split.test.len(),
        rows.len()
    );
}

/// Each malformed file gives its error kind and names the file and line (or record).
#[test]
fn malformed_files_give_clear_errors() {
    let expected = read_json("data/expected.json");
    for (name, want) in expected["errors"].as_object().unwrap() {
        let path = fixture(&format!("data/malformed/{name}"));
        let err = if name.starts_with("severity") {
            dep_severity::load(&path).map(|_| ()).unwrap_err()
        } else if name.starts_with("predictions") {
            read_predictions(&path).map(|_| ()).unwrap_err()
        } else if name.ends_with(".json") {
            load_json(&path, Dataset::Dr).map(|_| ()).unwrap_err()
        } else {
            imhi::load_csv(&path, Dataset::Dr).map(|_| ()).unwrap_err()
        };
        let kind = want["kind"].as_str().unwrap();
        let kind_ok = match &err {
            DataError::MissingColumn { .. } => kind == "MissingColumn",
            DataError::Csv { .. } => kind == "Csv",
            DataError::EmptyPost { .. } => kind == "EmptyPost",
            DataError::BadQuery { .. } => kind == "BadQuery",
            DataError::EmptyField { .. } => kind == "EmptyField",
            DataError::Json { .. } => kind == "Json",
            DataError::BadRecord { .. } => kind == "BadRecord",
            DataError::BadSeverityLabel { .. } => kind == "BadSeverityLabel",
            _ => false,
        };
        let msg = err.to_string();
        assert!(kind_ok, "{name}: expected {kind}, got {msg}");
        assert!(
            msg.contains(name.as_str()),
            "{name}: message does not name the file: {msg}"
        );
        if let Some(line) = want["line"].as_u64() {
            assert!(
                msg.contains(&format!("{name}:{line}")),
                "{name}: message lacks line {line}: {msg}"
            );
        }
        if let Some(record) = want["record"].as_u64() {
            assert!(msg.contains(&format!("record {record}")), "{name}: {msg}");
        }
    }
}

#[test]
fn missing_file_and_unknown_names() {
    let err = imhi::load_csv(&fixture("data/nope.csv"), Dataset::Dr).unwrap_err();
    assert!(matches!(err, DataError::Io { .. }) && err.to_string().contains("nope.csv"));
    let err = load_file(&fixture("data/malformed/missing_column.csv"), None).unwrap_err();
    assert!(matches!(err, DataError::UnknownDataset { .. }), "{err}");
    assert!(err.to_string().contains("DEP-SEVERITY"));
    assert!("holdout".parse::<Split>().is_err());
}

#[test]
fn predictions_round_trip() {
    let dir = common::scratch("predictions");
    let rows = vec![
        PredictionRow {
            prompt: "p\n\"q\"".into(),
            label: "Yes. Reasoning: x".into(),
            predict: "No.".into(),
        },
        PredictionRow {
            prompt: String::new(),
            label: "No.".into(),
            predict: "Ünïcödé 🙂".into(),
        },
    ];
    let path = dir.join("nested/generated_predictions.jsonl");
    write_predictions(&path, &rows).unwrap();
    assert_eq!(read_predictions(&path).unwrap(), rows);
    // LLaMA-Factory versions without `prompt` still read.
    std::fs::write(
        &path,
        "{\"label\": \"Yes.\", \"predict\": \"No.\", \"extra\": 1}\n",
    )
    .unwrap();
    assert_eq!(read_predictions(&path).unwrap()[0].prompt, "");
    let _ = std::fs::remove_dir_all(&dir);
}
