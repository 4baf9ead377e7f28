//! Head-only classifiers end to end: `train classifier --mode head` on the tiny fixtures, its
//! files and cache, `classify` and `eval --mode head` with it, and the clear errors for a
//! classifier that does not fit (the shipped ones on real data: `shipped.rs`).

mod common;

use std::path::Path;

use common::*;

fn train_head(
    model: &str,
    task: &str,
    out: &Path,
    cache: &Path,
    extra: &[&str],
) -> (String, String) {
    let data = fixture("data/imhi");
    let dep = fixture("data/dep-severity/english.csv");
    let mut args = vec![
        "train",
        "classifier",
        "--mode",
        "head",
        "--device",
        "cpu",
        "--model",
        model,
        "--task",
        task,
        "--data",
        data.to_str().unwrap(),
        "--dep-severity",
        dep.to_str().unwrap(),
        "--l2",
        "0.1,0.01",
        "--score-test",
        "--cache-dir",
        cache.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    ok(&args)
}

/// `eval --mode head` on `model` and the fixture data, then `rest`.
fn eval_head(model: &str, rest: &[&str]) -> Vec<String> {
    let data = fixture("data/imhi");
    let head = [
        "eval", "--device", "cpu", "--model", model, "--mode", "head", "--data",
    ];
    let mut args: Vec<String> = head.iter().map(|s| s.to_string()).collect();
    args.push(data.to_str().unwrap().to_string());
    args.extend(rest.iter().map(|s| s.to_string()));
    args
}

fn refs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

#[test]
fn train_head_writes_a_classifier_that_classify_and_eval_use() {
    let model = fixture("tiny/qwen2");
    let m = model.to_str().unwrap();
    let out = scratch("head-all");
    let cache = scratch("head-cache");
    let (stdout, stderr) = train_head(m, "all", &out, &cache, &["--refit"]);
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 6, "one summary per task: {stdout}");
    assert!(stderr.contains("validation weighted F1"), "{stderr}");
    for task in ["DR", "dreaddit", "Irf", "MultiWD", "SAD", "DEP-SEVERITY"] {
        let dir = out.join(task);
        for f in [
            "classifier.json",
            "probe.safetensors",
            "log.jsonl",
            "curves.svg",
        ] {
            assert!(dir.join(f).is_file(), "{task}: {f} missing");
        }
        let config = read_json(dir.join("classifier.json"));
        assert_eq!(config["kind"], "probe");
        assert_eq!(config["dataset"], task);
        assert_eq!(config["base_model_sha256"].as_str().unwrap().len(), 64);
        let f1 = config["metrics"]["test_weighted_f1"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&f1), "{task}: {f1}");
        assert_eq!(config["metrics"]["refit_on_train_and_val"], true);
        assert!(
            config["provenance"]["command"]
                .as_str()
                .unwrap()
                .contains("--mode head")
        );
        assert!(
            config["provenance"]["data"]["test"]
                .as_str()
                .unwrap()
                .contains("test")
        );
        // Two penalties × two weightings × one depth set × two cuts on the 2-layer model.
        let trials = std::fs::read_to_string(dir.join("log.jsonl")).unwrap();
        assert_eq!(trials.lines().count(), 8, "{task}: {trials}");
        let cuts: std::collections::BTreeSet<u64> = trials
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["max_length"]
                    .as_u64()
                    .unwrap()
            })
            .collect();
        assert_eq!(cuts.into_iter().collect::<Vec<_>>(), [192, 384], "{task}");
        let chosen = config["metrics"]["recipe"]["max_length"].as_u64().unwrap();
        assert_eq!(config["max_length"].as_u64(), Some(chosen), "{task}");
    }
    // Irf and MultiWD keep one linear layer per question.
    let multiwd = read_json(out.join("MultiWD/classifier.json"));
    assert_eq!(multiwd["questions"].as_array().unwrap().len(), 6);

    // A second run reads every feature from the cache and writes the same classifier.
    let again = scratch("head-again");
    let (_, stderr2) = train_head(m, "DR", &again, &cache, &["--refit"]);
    assert!(stderr2.contains("validation weighted F1"), "{stderr2}");
    assert_eq!(
        std::fs::read(out.join("DR/probe.safetensors")).unwrap(),
        std::fs::read(again.join("probe.safetensors")).unwrap(),
        "the cached features gave another classifier"
    );

    // classify --head: probabilities over the task's labels.
    let head = out.join("DR");
    let (stdout, stderr) = ok(&[
        "classify",
        "--device",
        "cpu",
        "--model",
        m,
        "--task",
        "DR",
        "--json",
        "--head",
        head.to_str().unwrap(),
        "I feel empty",
        "Lovely day at the beach",
    ]);
    assert!(
        stderr.contains("classifier: ") && stderr.contains("not a diagnosis"),
        "{stderr}"
    );
    for line in stdout.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let probs = v["probabilities"].as_object().unwrap();
        assert_eq!(probs.len(), 2);
        let total: f64 = probs.values().map(|p| p.as_f64().unwrap()).sum();
        assert!((total - 1.0).abs() < 1e-9);
        assert_eq!(v["classifier"].as_str().unwrap(), head.to_str().unwrap());
    }
    // A MultiWD question the classifier was not trained for is refused, naming the known ones.
    fails(
        &[
            "classify",
            "--device",
            "cpu",
            "--model",
            m,
            "--task",
            "MultiWD",
            "--head",
            out.join("MultiWD").to_str().unwrap(),
            "--question",
            "Is it raining?",
            "text",
        ],
        &["answers only these questions", "spiritual"],
    );
    // The shipped classifiers were made on another base model: the tiny one scores answer
    // likelihoods instead, and says so.
    let (_, stderr) = ok(&[
        "classify",
        "--device",
        "cpu",
        "--model",
        m,
        "--task",
        "DR",
        "I feel empty",
    ]);
    assert!(stderr.contains("untuned"), "{stderr}");

    // eval --mode head: predictions in LLaMA-Factory's fields, scored like any other.
    let report = scratch("head-eval");
    ok(&refs(&eval_head(
        m,
        &[
            "--datasets",
            "DR,MultiWD",
            "--classifiers",
            out.to_str().unwrap(),
            "--cache-dir",
            cache.to_str().unwrap(),
            "--out",
            report.to_str().unwrap(),
        ],
    )));
    let preds = std::fs::read_to_string(report.join("predictions_MultiWD.jsonl")).unwrap();
    let sentences = [
        "No, this wellness dimension does not exist in the post.",
        "Yes, this wellness dimension exists in the post.",
    ];
    assert_eq!(preds.lines().count(), 4);
    for line in preds.lines() {
        let row: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(
            sentences.contains(&row["predict"].as_str().unwrap()),
            "{row}"
        );
        assert!(
            row["label"].as_str().unwrap().contains("Reasoning"),
            "gold answer kept: {row}"
        );
    }
    // One classifier folder for one set.
    let single = scratch("head-eval-one");
    ok(&refs(&eval_head(
        m,
        &[
            "--datasets",
            "DR",
            "--head",
            out.join("DR").to_str().unwrap(),
            "--no-cache",
            "--out",
            single.to_str().unwrap(),
        ],
    )));
    assert_eq!(
        std::fs::read_to_string(single.join("predictions_DR.jsonl")).unwrap(),
        std::fs::read_to_string(report.join("predictions_DR.jsonl")).unwrap(),
        "cached and fresh features, shipped folder or --head: the same predictions"
    );
    fails(
        &refs(&eval_head(
            m,
            &[
                "--datasets",
                "DR,SAD",
                "--head",
                out.join("DR").to_str().unwrap(),
                "--out",
                single.to_str().unwrap(),
            ],
        )),
        &["--head DIR scores one set"],
    );
    let _ = std::fs::remove_dir_all(&single);
    let report_json = read_json(report.join("report.json"));
    assert!(
        report_json.to_string().contains("classifier"),
        "{report_json}"
    );
    // The test-set figure in classifier.json is the one eval measures.
    let (scored, _) = ok(&[
        "score",
        "--predictions",
        report.join("predictions_DR.jsonl").to_str().unwrap(),
        "--dataset",
        "DR",
        "--json",
    ]);
    let scored: serde_json::Value = serde_json::from_str(scored.trim()).unwrap();
    let recorded = read_json(out.join("DR/classifier.json"))["metrics"]["test_weighted_f1"]
        .as_f64()
        .unwrap();
    assert!(
        (scored["metrics"]["weighted_f1"].as_f64().unwrap() - recorded).abs() < 1e-9,
        "{scored} vs {recorded}"
    );
    for d in [out, again, cache, report] {
        let _ = std::fs::remove_dir_all(d);
    }
}

#[test]
fn classifiers_that_do_not_fit_get_clear_errors() {
    let model = fixture("tiny/qwen2");
    let m = model.to_str().unwrap();
    let out = scratch("head-bad");
    let cache = scratch("head-bad-cache");
    train_head(m, "DR", &out, &cache, &["--no-cache"]);
    assert!(!cache.exists(), "--no-cache wrote a cache");
    let dir = out.to_str().unwrap();
    let classify = |model: &str, head: &str, task: &str| -> Vec<String> {
        [
            "classify", "--device", "cpu", "--model", model, "--task", task, "--head", head, "text",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let run_fails = |args: Vec<String>, needles: &[&str]| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        fails(&args, needles);
    };
    // Another base model: both hashes named.
    let sha = read_json(out.join("classifier.json"))["base_model_sha256"]
        .as_str()
        .unwrap()
        .to_string();
    let llama = fixture("tiny/llama");
    run_fails(
        classify(llama.to_str().unwrap(), dir, "DR"),
        &[&sha, "loaded model's sha256", "classifier.json"],
    );
    // Another task.
    run_fails(classify(m, dir, "SAD"), &["for DR, not SAD"]);
    // An unknown task.
    run_fails(classify(m, dir, "bipolar"), &["unknown dataset `bipolar`"]);
    // A label count that disagrees with the task.
    let copy = scratch("head-bad-labels");
    std::fs::create_dir_all(&copy).unwrap();
    std::fs::copy(
        out.join("probe.safetensors"),
        copy.join("probe.safetensors"),
    )
    .unwrap();
    let mut config = read_json(out.join("classifier.json"));
    config["labels"] = serde_json::json!(["no", "yes", "maybe"]);
    std::fs::write(copy.join("classifier.json"), config.to_string()).unwrap();
    run_fails(
        classify(m, copy.to_str().unwrap(), "DR"),
        &["lists 3 labels", "DR has 2"],
    );
    // A truncated weight file, then a missing one: the file is named.
    std::fs::copy(out.join("classifier.json"), copy.join("classifier.json")).unwrap();
    let bytes = std::fs::read(out.join("probe.safetensors")).unwrap();
    std::fs::write(copy.join("probe.safetensors"), &bytes[..bytes.len() / 2]).unwrap();
    run_fails(
        classify(m, copy.to_str().unwrap(), "DR"),
        &["probe.safetensors"],
    );
    std::fs::remove_file(copy.join("probe.safetensors")).unwrap();
    run_fails(
        classify(m, copy.to_str().unwrap(), "DR"),
        &["probe.safetensors"],
    );
    // A truncated classifier.json.
    let text = std::fs::read_to_string(out.join("classifier.json")).unwrap();
    std::fs::write(copy.join("classifier.json"), &text[..text.len() / 2]).unwrap();
    run_fails(
        classify(m, copy.to_str().unwrap(), "DR"),
        &["classifier.json"],
    );
    // Training refuses an --out that holds something else, and bad options.
    let data = fixture("data/imhi");
    let head_l2 = scratch("head-l2");
    let head_depth = scratch("head-depth");
    let cases: [(&[&str], &Path, &str); 5] = [
        (
            &[],
            &fixture("data"),
            "holds something other than a head-only classifier",
        ),
        (&["--l2=0"], &head_l2, "--l2"),
        (&["--depths", "1,9"], &head_depth, "--depths"),
        (&["--max-lengths", "0,192"], &head_depth, "--max-length"),
        (
            &["--max-lengths", "64", "--max-length", "64"],
            &head_depth,
            "--max-length",
        ),
    ];
    for (extra, out_dir, needle) in cases {
        let mut args = vec![
            "train",
            "classifier",
            "--mode",
            "head",
            "--device",
            "cpu",
            "--model",
            m,
            "--task",
            "DR",
            "--data",
            data.to_str().unwrap(),
            "--out",
            out_dir.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        fails(&args, &[needle]);
    }
    for d in [out, copy] {
        let _ = std::fs::remove_dir_all(d);
    }
}
