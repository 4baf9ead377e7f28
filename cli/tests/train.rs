//! `mentalqlm train classifier` and `train sft` end to end on the tiny fixtures: the files
//! written, stopping and resuming, using the result, and clear errors for bad options.

mod common;

use common::*;

#[test]
fn train_classifier_then_classify_with_the_head() {
    let model = fixture("tiny/qwen2");
    let m = model.to_str().unwrap();
    let data = fixture("data/imhi");
    let out = scratch("train-classifier");
    let (stdout, stderr) = ok(&[
        "train",
        "classifier",
        "--device",
        "cpu",
        "--model",
        m,
        "--dataset",
        "SAD",
        "--data",
        data.to_str().unwrap(),
        "--epochs",
        "2",
        "--batch-size",
        "4",
        "--lr",
        "1e-3",
        "--eval-every",
        "2",
        "--out",
        out.to_str().unwrap(),
    ]);
    let summary: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert!(summary["steps"].as_u64().unwrap() > 0);
    assert!(stderr.contains("val weighted F1"), "{stderr}");
    for f in [
        "adapter_config.json",
        "adapter_model.safetensors",
        "classifier_head.safetensors",
        "classifier.json",
        "log.jsonl",
        "curves.svg",
        "best/trainable.safetensors",
    ] {
        assert!(out.join(f).exists(), "{f} missing");
    }
    let svg = std::fs::read_to_string(out.join("curves.svg")).unwrap();
    assert!(svg.contains("weighted F1") && svg.contains("<polyline"));
    let log = std::fs::read_to_string(out.join("log.jsonl")).unwrap();
    let events: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events[0]["event"], "config");
    assert!(
        events.iter().any(|e| e["event"] == "step") && events.iter().any(|e| e["event"] == "eval")
    );
    let (stdout, _) = ok(&[
        "classify",
        "--device",
        "cpu",
        "--model",
        m,
        "--task",
        "SAD",
        "--head",
        out.to_str().unwrap(),
        "--json",
        "I failed my exam",
    ]);
    let row: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let total: f64 = row["probabilities"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_f64().unwrap())
        .sum();
    assert!((total - 1.0).abs() < 1e-5);
    fails(
        &[
            "classify",
            "--device",
            "cpu",
            "--model",
            m,
            "--task",
            "DR",
            "--head",
            out.to_str().unwrap(),
            "x",
        ],
        &["holds a SAD head"],
    );
    // Bad options and a used output folder.
    let d = data.to_str().unwrap();
    fails(
        &[
            "train",
            "classifier",
            "--device",
            "cpu",
            "--model",
            m,
            "--dataset",
            "SAD",
            "--data",
            d,
            "--out",
            out.to_str().unwrap(),
        ],
        &["not empty"],
    );
    let o2 = scratch("train-bad");
    let o2 = o2.to_str().unwrap();
    fails(
        &[
            "train",
            "classifier",
            "--device",
            "cpu",
            "--model",
            m,
            "--dataset",
            "DR",
            "--data",
            d,
            "--mode",
            "prefix",
            "--top-k",
            "5",
            "--out",
            o2,
        ],
        &["--top-k must be within 1..=2"],
    );
    fails(
        &[
            "train",
            "classifier",
            "--device",
            "cpu",
            "--model",
            m,
            "--dataset",
            "SAD",
            "--data",
            d,
            "--max-lengths",
            "32,64",
            "--out",
            o2,
        ],
        &["--max-lengths is for --mode head"],
    );
    fails(
        &[
            "train",
            "classifier",
            "--device",
            "cpu",
            "--model",
            m,
            "--dataset",
            "SAD",
            "--data",
            d,
            "--lr",
            "0",
            "--out",
            o2,
        ],
        &["--lr"],
    );
    fails(
        &[
            "train",
            "classifier",
            "--device",
            "cpu",
            "--model",
            m,
            "--dataset",
            "DEP-SEVERITY",
            "--out",
            o2,
        ],
        &["--dep-severity"],
    );
}

#[test]
fn train_sft_stops_resumes_and_writes_a_peft_adapter() {
    let model = fixture("tiny/qwen2");
    let data = fixture("data/imhi");
    let out = scratch("train-sft");
    let o = out.to_str().unwrap().to_string();
    let args = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = [
            "train",
            "sft",
            "--device",
            "cpu",
            "--model",
            model.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "--datasets",
            "DR,Irf",
            "--limit",
            "6",
            "--epochs",
            "2",
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
            "--eval-every",
            "2",
            "--save-every",
            "2",
            "--out",
            &o,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let call = |extra: &[&str]| {
        let a = args(extra);
        ok(&a.iter().map(String::as_str).collect::<Vec<_>>())
    };
    // Killed after update 3: the checkpoint at 2 survives, no adapter yet.
    let (_, stderr) = call(&["--stop-after", "3"]);
    assert!(stderr.contains("--resume"), "{stderr}");
    assert!(out.join("checkpoints/step-00000002/state.json").exists());
    assert!(!out.join("adapter_model.safetensors").exists());
    let a = args(&["--resume", "--weight-decay", "0.1"]);
    fails(
        &a.iter().map(String::as_str).collect::<Vec<_>>(),
        &["other settings", "config.weight_decay"],
    );
    // Balanced label scales change the training data: refused as well.
    let a = args(&["--resume", "--balance-labels"]);
    fails(
        &a.iter().map(String::as_str).collect::<Vec<_>>(),
        &["other settings", "train"],
    );
    let (stdout, _) = call(&["--resume"]);
    let summary: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let train = summary["train"].as_u64().unwrap();
    assert!(train > 4, "{summary}");
    let total = train.div_ceil(4) * 2;
    assert_eq!(summary["steps"], total, "batch 4, 2 epochs");
    for f in [
        "adapter_config.json",
        "adapter_model.safetensors",
        "log.jsonl",
        "curves.svg",
    ] {
        assert!(out.join(f).exists(), "{f} missing");
    }
    // The log reads as one run: every update once, the resumption recorded.
    let events = log_events(&out);
    let steps: Vec<u64> = events
        .iter()
        .filter(|e| e["event"] == "step")
        .map(|e| e["step"].as_u64().unwrap())
        .collect();
    assert_eq!(steps, (1..=total).collect::<Vec<_>>());
    assert!(events.iter().any(|e| e["resumed_from"] == 2));
    assert!(events.iter().any(|e| e["event"] == "eval"));
    // Every answer has a label before "Reasoning:", which --label-weight can weigh.
    let header = events.iter().find(|e| e["event"] == "config").unwrap();
    let labels = header["label_tokens"].as_u64().unwrap();
    assert!(
        labels >= train && labels < header["answer_tokens"].as_u64().unwrap(),
        "{header}"
    );
    let cfg = read_json(out.join("adapter_config.json"));
    assert_eq!(cfg["r"], 8);
    assert_eq!(cfg["target_modules"].as_array().unwrap().len(), 7);
    // The adapter applies.
    ok(&[
        "logits",
        "--device",
        "cpu",
        "--model",
        model.to_str().unwrap(),
        "--adapter",
        &o,
        "--ids",
        "1,40,41,2",
    ]);

    // --balance-labels logs each set's class scales: balanced weights, whose mean over
    // classes weighted by their share is 1, so they average 1 or more over the classes.
    let balanced = scratch("train-sft-balanced");
    let mut a = args(&["--balance-labels", "--stop-after", "1"]);
    let at = a.iter().position(|x| x == "--out").unwrap();
    a[at + 1] = balanced.display().to_string();
    ok(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let events = log_events(&balanced);
    let header = events.iter().find(|e| e["event"] == "config").unwrap();
    for set in ["DR", "Irf"] {
        let scales = header["datasets"][set]["label_scales"].as_object().unwrap();
        assert!(!scales.is_empty(), "{header}");
        let values: Vec<f64> = scales.values().map(|v| v.as_f64().unwrap()).collect();
        assert!(
            values.iter().all(|v| v.is_finite() && *v > 0.0),
            "{values:?}"
        );
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        assert!(mean >= 1.0 - 1e-6, "{set}: {values:?}");
    }
    assert!(
        header["datasets"]["DR"].get("label_scales").is_some()
            && events_without_scales(&log_events(&out)),
        "a run without the flag logs none"
    );

    // With a list, only the sets named are balanced.
    let only = scratch("train-sft-balanced-dr");
    let mut a = args(&["--balance-labels", "DR", "--stop-after", "1"]);
    let at = a.iter().position(|x| x == "--out").unwrap();
    a[at + 1] = only.display().to_string();
    ok(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let events = log_events(&only);
    let header = events.iter().find(|e| e["event"] == "config").unwrap();
    let sets = &header["datasets"];
    let all = log_events(&balanced);
    let all = all.iter().find(|e| e["event"] == "config").unwrap();
    assert_eq!(
        sets["DR"]["label_scales"],
        all["datasets"]["DR"]["label_scales"]
    );
    assert!(sets["Irf"].get("label_scales").is_none(), "{header}");

    // Bad options.
    let fresh = scratch("train-sft-bad");
    let f = fresh.to_str().unwrap();
    let base = [
        "train",
        "sft",
        "--device",
        "cpu",
        "--model",
        model.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
    ];
    let with = |extra: &[&str]| -> Vec<String> {
        base.iter().chain(extra).map(|s| s.to_string()).collect()
    };
    for (extra, needles) in [
        (
            vec!["--out", f, "--batch-size", "4", "--micro-batch-size", "8"],
            vec!["--micro-batch-size"],
        ),
        (vec!["--out", f, "--resume"], vec!["no checkpoint"]),
        (vec!["--out", f, "--adapter", &o], vec!["--adapter"]),
        (
            vec!["--out", f, "--targets", "nonsense"],
            vec!["matches no projection"],
        ),
        (vec!["--out", f, "--datasets", "DR,nope"], vec!["nope"]),
        (
            vec!["--out", f, "--balance-labels", "DR,nope"],
            vec!["--balance-labels", "nope"],
        ),
        (
            vec!["--out", f, "--datasets", "DR", "--balance-labels", "Irf"],
            vec!["--balance-labels", "Irf", "not in --datasets"],
        ),
        (vec!["--out", &o], vec!["not empty"]),
    ] {
        let a = with(&extra);
        fails(&a.iter().map(String::as_str).collect::<Vec<_>>(), &needles);
    }
}

fn events_without_scales(events: &[serde_json::Value]) -> bool {
    let header = events.iter().find(|e| e["event"] == "config").unwrap();
    header["datasets"]
        .as_object()
        .unwrap()
        .values()
        .all(|d| d.get("label_scales").is_none())
}
