//! `mentalqlm select` end to end on the tiny fixtures: the subsets and report it writes, its
//! score cache, and bad input that writes nothing.

mod common;

use common::*;

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
fn two_selects_filling_one_cache_at_once_agree() {
    let model = fixture("tiny/qwen2");
    let data = fixture("data/imhi");
    let cache = scratch("select-race-cache");
    let outs = [
        scratch("select-race-a"),
        scratch("select-race-b"),
        scratch("select-race-c"),
    ];
    let command = |out: &std::path::Path| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_mentalqlm"));
        c.args(["select", "--device", "cpu", "--keep", "0.5", "--model"])
            .arg(&model)
            .arg("--data")
            .arg(&data)
            .arg("--cache-dir")
            .arg(&cache)
            .arg("--out")
            .arg(out);
        c
    };
    // Two runs at once, both computing and writing every cache entry.
    let children: Vec<_> = outs[..2]
        .iter()
        .map(|o| {
            command(o)
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let reports: Vec<serde_json::Value> = children
        .into_iter()
        .map(|c| {
            let o = c.wait_with_output().unwrap();
            assert!(o.status.success());
            serde_json::from_slice(&o.stdout).unwrap()
        })
        .collect();
    // A third run reads the cache they left: whole entries, the same subsets.
    let (stdout, _) = ok(&[
        "select",
        "--device",
        "cpu",
        "--keep",
        "0.5",
        "--model",
        model.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--cache-dir",
        cache.to_str().unwrap(),
        "--out",
        outs[2].to_str().unwrap(),
    ]);
    let third: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    for set in ["DR", "dreaddit", "Irf", "MultiWD", "SAD"] {
        assert_eq!(third["datasets"][set]["from_cache"], true, "{set}");
        let rel = third["datasets"][set]["output"].as_str().unwrap();
        let texts: Vec<String> = outs
            .iter()
            .map(|o| std::fs::read_to_string(o.join(rel)).unwrap())
            .collect();
        assert!(
            texts[0] == texts[1] && texts[1] == texts[2],
            "{set}: subsets differ"
        );
        for r in &reports {
            assert_eq!(
                r["datasets"][set]["selected"],
                third["datasets"][set]["selected"]
            );
        }
    }
    let leftovers: Vec<_> = files_under(&cache)
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
