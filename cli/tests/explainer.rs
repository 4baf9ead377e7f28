//! The explainer end to end on the tiny model: `train sft --top-k 1 --ship` writes an f16
//! adapter for the top layer and explainer.json; `classify --explain` and `eval --mode
//! generate` then use it by default, the answer states the classifier's label, and each way
//! out of it (--no-explainer, --adapter, another model's explainer, a broken file) is taken
//! and said.

mod common;

use common::*;

/// Trains a one-epoch explainer over the cached prefix and ships it under `root/explainer`.
fn ship(root: &std::path::Path) -> (std::path::PathBuf, u64) {
    let model = fixture("tiny/qwen2");
    let data = fixture("data/imhi");
    let dir = root.join("explainer");
    let (run, cache) = (root.join("run"), root.join("cache"));
    let (stdout, stderr) = ok(&[
        "train",
        "sft",
        "--device",
        "cpu",
        "--model",
        model.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--datasets",
        "DR,SAD",
        "--limit",
        "6",
        "--epochs",
        "1",
        "--batch-size",
        "4",
        "--micro-batch-size",
        "2",
        "--cutoff",
        "160",
        "--lr",
        "1e-3",
        "--val-examples",
        "4",
        "--top-k",
        "1",
        "--cache-dir",
        cache.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
        "--ship",
        dir.to_str().unwrap(),
    ]);
    assert!(stderr.contains("prefix of 1 layers, train"), "{stderr}");
    let summary: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let train = summary["train"].as_u64().unwrap();
    assert!((10..=12).contains(&train), "{summary}");
    (dir, train)
}

#[test]
fn a_shipped_explainer_is_written_found_and_used() {
    let root = scratch("explainer");
    let (dir, train) = ship(&root);
    let info = read_json(dir.join("explainer.json"));
    assert_eq!(info["kind"], "explainer");
    assert_eq!(info["model_sha256"].as_str().unwrap().len(), 64);
    assert_eq!(info["top_k"], 1);
    assert_eq!(info["train_examples"].as_u64(), Some(train));
    assert_eq!(info["steps"].as_u64(), Some(train.div_ceil(4)));
    let (before, after) = (
        info["val_answer_loss_before"].as_f64().unwrap(),
        info["val_answer_loss"].as_f64().unwrap(),
    );
    assert!(
        before.is_finite() && after.is_finite() && before != after,
        "{info}"
    );
    assert!(info["command"].as_str().unwrap().contains("--ship"));
    // The adapter: f16, on the top layer only.
    let bytes = std::fs::read(dir.join("adapter_model.safetensors")).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = std::str::from_utf8(&bytes[8..8 + n]).unwrap();
    assert!(
        header.contains("\"F16\"") && !header.contains("\"F32\""),
        "{header}"
    );
    assert!(
        header.contains("layers.1.") && !header.contains("layers.0."),
        "{header}"
    );
    assert_eq!(
        read_json(dir.join("adapter_config.json"))["layers_to_transform"],
        serde_json::json!([1])
    );

    let model = fixture("tiny/qwen2");
    let classify = |extra: &[&str]| {
        let mut args = vec![
            "classify",
            "--device",
            "cpu",
            "--model",
            model.to_str().unwrap(),
            "--classifiers",
            root.to_str().unwrap(),
            "--task",
            "SAD",
            "--json",
            "--explain",
            "--max-new-tokens",
            "3",
        ];
        args.extend_from_slice(extra);
        args.push("Exams next week and I cannot sleep");
        let (stdout, stderr) = ok(&args);
        (
            serde_json::from_str::<serde_json::Value>(stdout.trim()).unwrap(),
            stderr,
        )
    };
    // By default: the shipped explainer, told on stderr and in the JSON, and the answer
    // opens with the classifier's label sentence.
    let (line, stderr) = classify(&[]);
    assert!(
        stderr.contains(&format!("explainer: {}", dir.display())),
        "{stderr}"
    );
    assert!(stderr.contains("validation answer loss"), "{stderr}");
    assert_eq!(line["explainer"], dir.display().to_string());
    let sentences = data::tasks::answer_sentences(data::Dataset::Sad);
    let label = line["label_index"].as_u64().unwrap() as usize;
    let answer = line["answer"].as_str().unwrap();
    assert!(
        answer.starts_with(&format!("{} Reasoning:", sentences[label])),
        "{answer}"
    );
    assert_eq!(line["answer_agrees"], true);

    // The page's session, given the same explainer, writes the same explanation.
    let picked = mentalqlm_web::session::Picked {
        model: formats::Folder::disk(&model),
        adapter: None,
        head: None,
        classifiers: Vec::new(),
        explainer: Some(formats::Folder::disk(&dir)),
    };
    let session =
        mentalqlm_web::session::Session::load(&picked, &burn::tensor::Device::flex(), None, None)
            .unwrap();
    assert!(
        session.info.explainer.contains("stage-1 LoRA"),
        "{}",
        session.info.explainer
    );
    let web = classify::blocking(async {
        session
            .explain(
                "SAD",
                "Exams next week and I cannot sleep",
                Some(label),
                3,
                |_| {},
            )
            .await
            .map_err(|e| classify::ClassifyError::Input(format!("{e:#}")))
    })
    .unwrap();
    assert_eq!(web, answer);

    // --no-explainer: the untuned model, said so.
    let (line, stderr) = classify(&["--no-explainer"]);
    assert!(
        stderr.contains("explainer: none (--no-explainer)"),
        "{stderr}"
    );
    assert!(line["explainer"].is_null());
    // --explain-free: the model states its own label; agreement is reported, not forced.
    let (line, _) = classify(&["--explain-free"]);
    assert!(line["answer_agrees"].is_boolean(), "{line}");
    // --adapter wins over the shipped explainer.
    let (line, stderr) = classify(&["--adapter", dir.to_str().unwrap()]);
    assert!(stderr.contains("explainer: the --adapter"), "{stderr}");
    assert_eq!(line["explainer"], dir.display().to_string());

    // eval --mode generate answers with it too, and the report says so.
    let out = root.join("eval");
    let (_, stderr) = ok(&[
        "eval",
        "--device",
        "cpu",
        "--model",
        model.to_str().unwrap(),
        "--classifiers",
        root.to_str().unwrap(),
        "--data",
        fixture("data/imhi").to_str().unwrap(),
        "--datasets",
        "DR",
        "--limit",
        "2",
        "--max-new-tokens",
        "3",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(stderr.contains("explainer: "), "{stderr}");
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(report.contains("+ explainer"), "{report}");
    assert!(report.contains("Reasoning: ...\": "), "{report}");

    // Made for another model: passed over, and said why.
    let mut other = info.clone();
    other["model_sha256"] = serde_json::json!("0".repeat(64));
    std::fs::write(dir.join("explainer.json"), other.to_string()).unwrap();
    let (line, stderr) = classify(&[]);
    assert!(stderr.contains("trained on another base model"), "{stderr}");
    assert!(line["explainer"].is_null());
    // A broken explainer.json is an error that names it, not a silent fallback.
    std::fs::write(dir.join("explainer.json"), "{\"kind\": \"explainer\"").unwrap();
    fails(
        &[
            "classify",
            "--device",
            "cpu",
            "--model",
            model.to_str().unwrap(),
            "--classifiers",
            root.to_str().unwrap(),
            "--task",
            "SAD",
            "--explain",
            "text",
        ],
        &["explainer.json"],
    );
    let _ = std::fs::remove_dir_all(root);
}

/// `select --prefix-top-k 1` keeps the frozen layer's states of every scored sequence, and
/// `train sft --top-k 1` on what it selected reads them all back instead of running that
/// layer again.
#[test]
fn select_keeps_the_prefix_that_train_sft_reads() {
    let root = scratch("select-prefix");
    let (model, data) = (fixture("tiny/qwen2"), fixture("data/imhi"));
    let (selection, cache) = (root.join("selection"), root.join("prefix"));
    ok(&[
        "select",
        "--device",
        "cpu",
        "--model",
        model.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--datasets",
        "DR,SAD",
        "--keep",
        "0.75",
        "--prefix-top-k",
        "1",
        "--prefix-cache",
        cache.to_str().unwrap(),
        "--cache-dir",
        root.join("scores").to_str().unwrap(),
        "--out",
        selection.to_str().unwrap(),
    ]);
    let kept = std::fs::read_dir(cache.read_dir().unwrap().next().unwrap().unwrap().path())
        .unwrap()
        .count();
    assert!(kept >= 8, "{kept} rows kept");
    let (_, stderr) = ok(&[
        "train",
        "sft",
        "--device",
        "cpu",
        "--model",
        model.to_str().unwrap(),
        "--data",
        selection.to_str().unwrap(),
        "--val-data",
        data.to_str().unwrap(),
        "--datasets",
        "DR,SAD",
        "--epochs",
        "1",
        "--batch-size",
        "4",
        "--val-examples",
        "0",
        "--top-k",
        "1",
        "--cache-dir",
        cache.to_str().unwrap(),
        "--out",
        root.join("run").to_str().unwrap(),
    ]);
    let line = stderr
        .lines()
        .find(|l| l.starts_with("prefix of 1 layers, train:"))
        .unwrap_or_else(|| panic!("{stderr}"));
    let numbers: Vec<usize> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|t| t.parse().ok())
        .collect();
    // "prefix of 1 layers, train: N examples, T tokens, C read from the cache"
    let (examples, cached) = (numbers[1], numbers[3]);
    assert!(examples > 0 && cached == examples, "{line}");
    let _ = std::fs::remove_dir_all(root);
}
