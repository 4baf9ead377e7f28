//! `mentalqlm bench` end to end: `kernels`, `shaders`, `inputs` and `e2e` on the CPU, and
//! clear errors for bad options and inputs.

mod common;

use common::*;

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
        // Generate also times its decoding steps alone: within the whole, and only there.
        match m["decode_seconds"].as_f64() {
            Some(d) => assert!(
                workload == "generate" && d > 0.0 && d < m["seconds"].as_f64().unwrap(),
                "{m}"
            ),
            None => assert_ne!(workload, "generate", "{m}"),
        }
    }
    // Three sequences decoding together: every row's tokens count, and each row's count is
    // checked inside.
    let args = e2e_args(
        ids_arg,
        &["generate", "--new-tokens", "3", "--rows", "3", "--json"],
    );
    let (stdout, _) = ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let m: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(
        (m["tokens"].as_u64(), m["rows"].as_u64()),
        (Some(9), Some(3)),
        "{m}"
    );
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
    for rows in ["0", "4"] {
        e2e(
            ids_arg,
            &["generate", "--rows", rows],
            &["--rows", "1 to 3"],
        );
    }
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
