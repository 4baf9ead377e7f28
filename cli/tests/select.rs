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

/// `--rows-from` writes again, without a model, the rows a report recorded; a changed data
/// file or a broken report is refused by name.
#[test]
fn a_selection_is_written_again_from_its_report() {
    let model = fixture("tiny/qwen2");
    let data = fixture("data/imhi");
    let cache = scratch("select-rows-cache");
    let first = scratch("select-rows-first");
    let (m, d) = (model.to_str().unwrap(), data.to_str().unwrap());
    let c = cache.to_str().unwrap();
    let (stdout, _) = ok(&[
        "select",
        "--device",
        "cpu",
        "--model",
        m,
        "--data",
        d,
        "--keep",
        "0.5",
        "--limit",
        "7",
        "--seed",
        "3",
        "--cache-dir",
        c,
        "--out",
        first.to_str().unwrap(),
    ]);
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let saved = first.join("select_report.json");
    for set in ["DR", "dreaddit", "Irf", "MultiWD", "SAD"] {
        let r = &report["datasets"][set];
        let rows = r["kept_rows"].as_array().unwrap();
        assert_eq!(rows.len() as u64, r["selected"].as_u64().unwrap(), "{set}");
        assert_eq!(r["file_sha256"].as_str().unwrap().len(), 64, "{set}");
    }
    let again = scratch("select-rows-again");
    let (stdout, _) = ok(&[
        "select",
        "--data",
        d,
        "--limit",
        "7",
        "--seed",
        "3",
        "--rows-from",
        saved.to_str().unwrap(),
        "--out",
        again.to_str().unwrap(),
    ]);
    let second: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    for set in ["DR", "dreaddit", "Irf", "MultiWD", "SAD"] {
        let rel = report["datasets"][set]["output"].as_str().unwrap();
        assert_eq!(
            std::fs::read(first.join(rel)).unwrap(),
            std::fs::read(again.join(rel)).unwrap(),
            "{set}: another subset"
        );
        assert_eq!(
            second["datasets"][set]["kept_rows"],
            report["datasets"][set]["kept_rows"]
        );
    }
    // The full files hold the same rows at other places than the sample: the rows are
    // indices into the file, so they still name the same examples.
    let full = scratch("select-rows-full");
    ok(&[
        "select",
        "--data",
        d,
        "--rows-from",
        saved.to_str().unwrap(),
        "--out",
        full.to_str().unwrap(),
    ]);
    let rel = report["datasets"]["SAD"]["output"].as_str().unwrap();
    assert_eq!(
        std::fs::read(first.join(rel)).unwrap(),
        std::fs::read(full.join(rel)).unwrap()
    );
    // A data file that changed since.
    let changed = scratch("select-rows-data");
    copy_dir(&data, &changed);
    let dr = changed.join("train/DR/train.csv");
    let text = std::fs::read_to_string(&dr).unwrap();
    let edited_text = text.replacen(" the ", " The ", 1);
    assert_ne!(edited_text, text);
    std::fs::write(&dr, edited_text).unwrap();
    let out = scratch("select-rows-bad");
    let o = out.to_str().unwrap();
    fails(
        &[
            "select",
            "--data",
            changed.to_str().unwrap(),
            "--rows-from",
            saved.to_str().unwrap(),
            "--out",
            o,
        ],
        &["DR", "sha256", "train.csv"],
    );
    // Broken reports: a row past the end, rows out of order, no rows, not JSON, no file.
    let edited = |name: &str, f: &dyn Fn(&mut serde_json::Value)| {
        let mut r = report.clone();
        f(&mut r);
        let path = out.with_extension(name);
        std::fs::write(&path, r.to_string()).unwrap();
        path
    };
    let past = edited("past.json", &|r| {
        r["datasets"]["Irf"]["kept_rows"][0] = 99999.into()
    });
    fails(
        &[
            "select",
            "--data",
            d,
            "--rows-from",
            past.to_str().unwrap(),
            "--out",
            o,
        ],
        &["Irf.kept_rows[0] = 99999", "is not a row"],
    );
    let order = edited("order.json", &|r| {
        let rows = r["datasets"]["SAD"]["kept_rows"].as_array_mut().unwrap();
        rows.reverse();
    });
    fails(
        &[
            "select",
            "--data",
            d,
            "--rows-from",
            order.to_str().unwrap(),
            "--out",
            o,
        ],
        &["SAD.kept_rows", "increasing order"],
    );
    let none = edited("none.json", &|r| {
        r["datasets"]["dreaddit"]
            .as_object_mut()
            .unwrap()
            .remove("kept_rows");
    });
    fails(
        &[
            "select",
            "--data",
            d,
            "--rows-from",
            none.to_str().unwrap(),
            "--out",
            o,
        ],
        &["dreaddit", "kept_rows"],
    );
    // Reports of runs over different sets combine; a set none of them has is refused.
    let only_dr = edited("dr.json", &|r| {
        r["datasets"]
            .as_object_mut()
            .unwrap()
            .retain(|k, _| k == "DR");
    });
    fails(
        &[
            "select",
            "--data",
            d,
            "--rows-from",
            only_dr.to_str().unwrap(),
            "--out",
            o,
        ],
        &["no --rows-from report has an entry for dreaddit", "dr.json"],
    );
    let both = scratch("select-rows-both");
    let (stdout, _) = ok(&[
        "select",
        "--data",
        d,
        "--rows-from",
        only_dr.to_str().unwrap(),
        "--rows-from",
        past.to_str().unwrap(),
        "--datasets",
        "DR,SAD",
        "--out",
        both.to_str().unwrap(),
    ]);
    let combined: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        combined["datasets"]["SAD"]["kept_rows"],
        report["datasets"]["SAD"]["kept_rows"]
    );
    assert_eq!(combined["rows_from"].as_array().unwrap().len(), 2);
    let junk = out.with_extension("junk.json");
    std::fs::write(&junk, "{ not json").unwrap();
    fails(
        &[
            "select",
            "--data",
            d,
            "--rows-from",
            junk.to_str().unwrap(),
            "--out",
            o,
        ],
        &["junk.json", "not a select report"],
    );
    fails(
        &[
            "select",
            "--data",
            d,
            "--rows-from",
            "/nonexistent/report.json",
            "--out",
            o,
        ],
        &["/nonexistent/report.json"],
    );
    assert!(!out.exists(), "nothing is written on failure");
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
