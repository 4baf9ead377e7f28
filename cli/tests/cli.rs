//! The `mentalqlm` binary end to end on the tiny fixtures: output formats, files written, and
//! clear errors (exit code 1, a message, no panic) for bad input.

mod common;

use common::*;

fn floats(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

/// `mentalqlm logits` for `ids` (with an optional adapter) equals the last row of `rows`.
fn check_logits(
    model: &str,
    adapter: Option<&str>,
    ids: &serde_json::Value,
    rows: &serde_json::Value,
) -> String {
    let ids: Vec<String> = ids
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.to_string())
        .collect();
    let ids = ids.join(",");
    let mut args = vec!["logits", "--device", "cpu", "--model", model, "--ids", &ids];
    if let Some(a) = adapter {
        args.extend(["--adapter", a]);
    }
    let (stdout, stderr) = ok(&args);
    let got = floats(&serde_json::from_str::<serde_json::Value>(stdout.trim()).unwrap()["logits"]);
    let want = floats(rows.as_array().unwrap().last().unwrap());
    assert_eq!(got.len(), want.len());
    let diff = got
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(diff < 1e-4, "max diff {diff}");
    stderr
}

#[test]
fn logits_prints_last_position_json() {
    let reference = read_json(fixture("tiny/reference.json"));
    let model = fixture("tiny/qwen2");
    let stderr = check_logits(
        model.to_str().unwrap(),
        None,
        &reference["token_ids"][0],
        &reference["models"]["qwen2"]["logits"][0],
    );
    assert!(stderr.contains("device: cpu"), "{stderr}");
}

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

#[test]
fn classify_plain_and_json() {
    let model = fixture("tiny/qwen2");
    let (stdout, _) = ok(&[
        "classify",
        "--device",
        "cpu",
        "--model",
        model.to_str().unwrap(),
        "--task",
        "SAD",
        "--json",
        "I failed my exam",
        "My boss yells at me",
    ]);
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    for l in &lines {
        let probs = l["probabilities"].as_object().unwrap();
        assert_eq!(probs.len(), 9);
        let total: f64 = probs.values().map(|v| v.as_f64().unwrap()).sum();
        assert!((total - 1.0).abs() < 1e-9);
        let best = probs
            .iter()
            .max_by(|a, b| a.1.as_f64().unwrap().total_cmp(&b.1.as_f64().unwrap()))
            .unwrap()
            .0;
        assert_eq!(l["label"].as_str().unwrap(), best);
    }
    let (stdout, _) = ok(&[
        "classify",
        "--device",
        "cpu",
        "--model",
        model.to_str().unwrap(),
        "--task",
        "DR",
        "--explain",
        "--max-new-tokens",
        "4",
        "I feel empty",
    ]);
    assert!(
        stdout.starts_with("DR: ") && stdout.contains("reasoning:"),
        "{stdout}"
    );
}

/// `--weights`: on the CPU a GGUF model's codes are kept by default (`auto`) and read by the
/// quantized kernels; `f32` converts them. Both give the default model's logits within 2e-3;
/// a value that is not one of the three is refused by name.
#[test]
fn weights_flag_keeps_or_converts_gguf_codes() {
    let model = root().join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(model.is_file(), "run scripts/setup-model.sh");
    let logits = |weights: Option<&str>| {
        let mut args = vec![
            "logits",
            "--device",
            "cpu",
            "--model",
            model.to_str().unwrap(),
            "--ids",
            "1,504,3458,314,253,1789",
        ];
        if let Some(w) = weights {
            args.extend(["--weights", w]);
        }
        let (stdout, stderr) = ok(&args);
        let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
        (floats(&v["logits"]), stderr)
    };
    let (auto, auto_err) = logits(None);
    let (kept, kept_err) = logits(Some("quantized"));
    let (f32s, f32_err) = logits(Some("f32"));
    assert!(auto_err.contains("kept as codes"), "{auto_err}");
    assert!(kept_err.contains("kept as codes"), "{kept_err}");
    assert!(!f32_err.contains("kept as codes"), "{f32_err}");
    assert_eq!(auto, kept, "auto on the CPU is `quantized`");
    let diff = kept
        .iter()
        .zip(&f32s)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(diff < 2e-3, "codes against f32: max diff {diff}");
    let out = run(&["logits", "--weights", "f16", "--ids", "1"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--weights") && stderr.contains("quantized"),
        "{stderr}"
    );
}

#[test]
fn bad_input_gets_clear_errors() {
    let model = fixture("tiny/qwen2");
    let m = model.to_str().unwrap();
    fails(
        &[
            "classify", "--device", "cpu", "--model", m, "--task", "DR", "  ",
        ],
        &["text 1 is empty"],
    );
    fails(
        &[
            "classify", "--device", "cpu", "--model", m, "--task", "nonsense", "hi",
        ],
        &["nonsense", "DR"],
    );
    let bad = fixture("data/malformed/predictions_bad.jsonl");
    fails(
        &[
            "classify",
            "--device",
            "cpu",
            "--model",
            m,
            "--task",
            "DR",
            "--input",
            bad.to_str().unwrap(),
        ],
        &["predictions_bad.jsonl:"],
    );
    fails(
        &[
            "score",
            "--predictions",
            bad.to_str().unwrap(),
            "--dataset",
            "DR",
        ],
        &["predictions_bad.jsonl"],
    );
    fails(
        &[
            "eval",
            "--device",
            "cpu",
            "--model",
            m,
            "--data",
            "/nonexistent/imhi",
            "--datasets",
            "DR",
        ],
        &["/nonexistent/imhi"],
    );
    fails(
        &[
            "generate", "--device", "cpu", "--model", m, "--top-p", "2", "hi",
        ],
        &["--top-p"],
    );
    fails(
        &["generate", "--device", "cpu", "--model", m, ""],
        &["prompt 1 is empty"],
    );
    fails(
        &["logits", "--device", "cpu", "--model", m, "--ids", "1,x"],
        &["`x` is not a token id"],
    );
    fails(
        &[
            "logits",
            "--device",
            "cpu",
            "--model",
            "/nonexistent/model",
            "--ids",
            "1",
        ],
        &["/nonexistent/model"],
    );
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[test]
fn select_writes_subsets_and_reuses_its_cache() {
    let model = fixture("tiny/qwen2");
    let data = fixture("data/imhi");
    let cache = scratch("select-cache");
    let out = scratch("select-out");
    let args = |keep: &str, out: &std::path::Path| {
        vec![
            "select".to_string(),
            "--device".into(),
            "cpu".into(),
            "--model".into(),
            model.display().to_string(),
            "--data".into(),
            data.display().to_string(),
            "--keep".into(),
            keep.into(),
            "--out".into(),
            out.display().to_string(),
            "--cache-dir".into(),
            cache.display().to_string(),
        ]
    };
    let a = args("0.5", &out);
    let (stdout, _) = ok(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    for set in ["DR", "dreaddit", "Irf", "MultiWD", "SAD"] {
        let r = &report["datasets"][set];
        assert_eq!(r["from_cache"], false);
        let after = r["outliers"]["after"].as_u64().unwrap();
        assert_eq!(
            r["k"].as_u64().unwrap(),
            ((0.5 * after as f64) as u64).max(1)
        );
        let written = out.join(r["output"].as_str().unwrap());
        let text = std::fs::read_to_string(&written).unwrap();
        assert!(
            text.starts_with("query,gpt-3.5-turbo"),
            "{}",
            written.display()
        );
        assert_eq!(
            text.matches("Consider this post").count() as u64,
            r["selected"].as_u64().unwrap()
        );
    }
    assert!(out.join("select_report.json").exists());
    // A second run with another --keep reads the cached scores.
    let out2 = scratch("select-out2");
    let b = args("1.0", &out2);
    let (stdout, _) = ok(&b.iter().map(String::as_str).collect::<Vec<_>>());
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["datasets"]["DR"]["from_cache"], true);
    assert_eq!(
        report["datasets"]["DR"]["selected"],
        report["datasets"]["DR"]["outliers"]["after"]
    );
}

#[test]
fn select_bad_input_writes_nothing() {
    let model = fixture("tiny/qwen2");
    let m = model.to_str().unwrap();
    let data = fixture("data/imhi");
    let d = data.to_str().unwrap();
    let out = scratch("select-bad");
    let o = out.to_str().unwrap();
    fails(
        &[
            "select", "--device", "cpu", "--model", m, "--data", d, "--keep", "0", "--out", o,
        ],
        &["--keep must be in (0, 1]"],
    );
    fails(
        &[
            "select", "--device", "cpu", "--model", m, "--data", d, "--keep", "1.5", "--out", o,
        ],
        &["--keep"],
    );
    fails(
        &[
            "select",
            "--device",
            "cpu",
            "--model",
            m,
            "--data",
            "/nonexistent/imhi",
            "--out",
            o,
        ],
        &["/nonexistent/imhi"],
    );
    // An empty dataset (header only) and an unreadable file.
    let broken = scratch("select-data");
    copy_dir(&data, &broken);
    std::fs::write(broken.join("train/DR/train.csv"), "query,gpt-3.5-turbo\n").unwrap();
    let b = broken.to_str().unwrap();
    fails(
        &[
            "select", "--device", "cpu", "--model", m, "--data", b, "--out", o,
        ],
        &["train.csv"],
    );
    std::fs::write(broken.join("train/DR/train.csv"), [0xff, 0xfe, 0x00, 0x41]).unwrap();
    fails(
        &[
            "select", "--device", "cpu", "--model", m, "--data", b, "--out", o,
        ],
        &["train.csv"],
    );
    assert!(!out.exists(), "nothing is written on failure");
    let leftovers: Vec<_> = std::fs::read_dir(out.parent().unwrap())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name().to_string_lossy().starts_with(&format!(
                "{}.partial",
                out.file_name().unwrap().to_string_lossy()
            ))
        })
        .collect();
    assert!(leftovers.is_empty(), "no staging folder is left behind");
}

#[test]
fn adapter_flag_applies_a_peft_adapter() {
    let reference = read_json(fixture("lora/reference.json"));
    let model = fixture("tiny/llama");
    let adapter = fixture("lora/llama-adapter");
    let stderr = check_logits(
        model.to_str().unwrap(),
        Some(adapter.to_str().unwrap()),
        &reference["ids"],
        &reference["cases"]["llama"]["logits"],
    );
    assert!(stderr.contains("adapter:"), "{stderr}");
    let wrong = fixture("lora/qwen2-adapter");
    fails(
        &[
            "logits",
            "--device",
            "cpu",
            "--model",
            model.to_str().unwrap(),
            "--adapter",
            wrong.to_str().unwrap(),
            "--ids",
            "1,2",
        ],
        &["loading adapter", "expected shape"],
    );
}

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

fn log_events(out: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(out.join("log.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
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
        (vec!["--out", &o], vec!["not empty"]),
    ] {
        let a = with(&extra);
        fails(&a.iter().map(String::as_str).collect::<Vec<_>>(), &needles);
    }
}

#[test]
fn bench_kernels_prints_every_measurement() {
    let (stdout, _) = ok(&[
        "bench",
        "kernels",
        "--device",
        "cpu",
        "--shapes",
        "64x24,32x40",
        "--ranks",
        "2,4",
        "--tokens",
        "3",
        "--iters",
        "1",
        "--rounds",
        "2",
        "--json",
    ]);
    let rows: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 4, "2 shapes × 2 ranks × 1 token count");
    for row in &rows {
        for key in [
            "base_fwd",
            "burn_lora_fwd",
            "unfused_fwd",
            "fused_fwd",
            "fused_q8_0_fwd",
            "fused_q4_1_fwd",
            "fused_fwd_bwd",
        ] {
            assert!(row[key].as_f64().unwrap() > 0.0, "{key} in {row}");
        }
    }
    fails(
        &["bench", "kernels", "--device", "cpu", "--shapes", "40by24"],
        &["--shapes"],
    );
    fails(
        &["bench", "kernels", "--device", "cpu", "--shapes", "40x24"],
        &["multiple of 32"],
    );
    // A value clap refuses is a usage error: exit code 2 and the option named.
    let out = run(&["bench", "kernels", "--device", "tpu"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--device"));
    fails(
        &["bench", "kernels", "--device", "cpu", "--ranks", "0"],
        &["--ranks"],
    );
    fails(
        &["bench", "kernels", "--device", "cpu", "--rounds", "0"],
        &["--rounds"],
    );
}

#[test]
fn bench_shaders_writes_every_rendered_kernel() {
    let dir = scratch("bench-shaders");
    let _ = std::fs::remove_dir_all(&dir);
    let (stdout, _) = ok(&["bench", "shaders", "--out", dir.to_str().unwrap()]);
    let written = std::fs::read_dir(&dir).unwrap().count();
    assert_eq!(written, kernels::shaders::all_rendered().len());
    assert!(
        stdout.starts_with(&format!("{written} shaders written")),
        "{stdout}"
    );
    // A file where the folder should be: the error names it.
    let file = dir.join("lora_epilogue-00.wgsl");
    std::fs::write(&file, "").unwrap();
    fails(
        &["bench", "shaders", "--out", file.to_str().unwrap()],
        &["lora_epilogue-00.wgsl"],
    );
}

#[test]
fn bench_e2e_measures_each_workload_and_refuses_bad_inputs() {
    let dir = scratch("bench-e2e");
    std::fs::create_dir_all(&dir).unwrap();
    let model = fixture("tiny/qwen2");
    let model = model.to_str().unwrap();
    let data = fixture("data");
    let ids = dir.join("ids.json");
    ok(&[
        "bench",
        "inputs",
        "--model",
        model,
        "--data",
        data.to_str().unwrap(),
        "--batch",
        "3",
        "--seq",
        "12",
        "--out",
        ids.to_str().unwrap(),
    ]);
    let inputs = read_json(ids.clone());
    let rows = inputs["ids"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().all(|r| r.as_array().unwrap().len() == 12));
    assert_eq!(inputs["seq"], 12);

    let ids_arg = ids.to_str().unwrap();
    // `bench e2e` on the tiny model and CPU with these inputs, then `--workload` and `extra`.
    let e2e_args = |inputs: &str, extra: &[&str]| -> Vec<String> {
        let head = [
            "bench", "e2e", "--model", model, "--device", "cpu", "--inputs", inputs,
        ];
        head.iter()
            .chain(&["--workload"])
            .chain(extra)
            .map(|a| a.to_string())
            .collect()
    };
    for (workload, tokens) in [("prefill", 36), ("generate", 3), ("train", 24)] {
        let extra = [
            workload,
            "--new-tokens",
            "3",
            "--train-batch",
            "2",
            "--steps",
            "1",
            "--json",
        ];
        let args = e2e_args(ids_arg, &extra);
        let (stdout, _) = ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
        let m: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
        assert_eq!(m["workload"], workload);
        assert_eq!(m["side"], "mentalqlm");
        assert_eq!(m["tokens"], tokens, "{workload}: {m}");
        assert!(m["seconds"].as_f64().unwrap() > 0.0, "{m}");
    }
    let e2e = |inputs: &str, extra: &[&str], needles: &[&str]| {
        let args = e2e_args(inputs, extra);
        fails(
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
            needles,
        );
    };
    let missing = dir.join("missing.json");
    e2e(missing.to_str().unwrap(), &["prefill"], &["missing.json"]);
    let ragged = dir.join("ragged.json");
    std::fs::write(
        &ragged,
        r#"{"batch": 2, "seq": 3, "ids": [[1, 2, 3], [1, 2]], "pad_id": 0, "eos_id": null}"#,
    )
    .unwrap();
    e2e(
        ragged.to_str().unwrap(),
        &["prefill"],
        &["ragged.json", "row 1 has 2 ids"],
    );
    let not_ids = dir.join("not-ids.json");
    std::fs::write(&not_ids, "[1, 2]").unwrap();
    e2e(
        not_ids.to_str().unwrap(),
        &["prefill"],
        &["not-ids.json", "bench inputs"],
    );
    e2e(
        ids_arg,
        &["train", "--train-batch", "9"],
        &["--train-batch", "1 to 3"],
    );
    e2e(
        ids_arg,
        &["generate", "--new-tokens", "0"],
        &["--new-tokens"],
    );
    // `bench inputs` on the tiny model with `data`, then `extra`; nothing is written.
    let out = dir.join("x.json");
    let inputs_fails = |data: &std::path::Path, extra: &[&str], needles: &[&str]| {
        let head = [
            "bench",
            "inputs",
            "--model",
            model,
            "--data",
            data.to_str().unwrap(),
        ];
        let tail = ["--out", out.to_str().unwrap()];
        let args: Vec<&str> = head.iter().chain(extra).chain(&tail).copied().collect();
        fails(&args, needles);
        assert!(!out.exists(), "{args:?} wrote {}", out.display());
    };
    inputs_fails(&dir, &[], &["IMHI test set"]);
    inputs_fails(&data, &["--seq", "100000"], &["lower --seq or --batch"]);
    let _ = std::fs::remove_dir_all(&dir);
}
