//! The fuzzer, bounded for CI: every format survives a few hundred cases per target, and
//! the harness itself catches each kind of finding (the self-check target fails on purpose).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn exe() -> &'static str {
    env!("CARGO_BIN_EXE_mentalqlm-fuzz")
}

fn scratch(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("mentalqlm-fuzz-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn run(args: &[&str], out: &Path) -> (Option<i32>, Vec<Value>, String) {
    let o = Command::new(exe())
        .arg("run")
        .args(args)
        .args(["--json", "--out"])
        .arg(out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout).to_string();
    let stderr = String::from_utf8_lossy(&o.stderr).to_string();
    let reports: Vec<Value> = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}\nstderr: {stderr}"));
    (o.status.code(), reports, stderr)
}

#[test]
fn every_format_survives_bounded_fuzzing() {
    let out = scratch("all");
    let (code, reports, stderr) = run(&["--target", "all", "--cases", "400"], &out);
    assert_eq!(reports.len(), 10, "{stderr}");
    for r in &reports {
        let name = r["target"].as_str().unwrap();
        assert_eq!(r["cases"], 400, "{name}");
        assert!(
            r["findings"].as_array().unwrap().is_empty(),
            "{name}: {}",
            serde_json::to_string_pretty(&r["findings"]).unwrap()
        );
        // The mutations reach the readers' checks: some inputs are rejected.
        assert!(
            r["rejected"].as_u64().unwrap() > 0,
            "{name}: nothing rejected"
        );
        assert_eq!(
            r["accepted"].as_u64().unwrap() + r["rejected"].as_u64().unwrap(),
            400,
            "{name}"
        );
        println!(
            "{name}: {} cases/s, {} accepted, {} rejected",
            r["cases_per_s"], r["accepted"], r["rejected"]
        );
    }
    assert_eq!(code, Some(0), "{stderr}");
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn the_harness_catches_panics_hangs_and_over_allocations() {
    let out = scratch("self");
    let (code, reports, stderr) = run(
        &[
            "--target",
            "self-check",
            "--cases",
            "40",
            "--timeout-ms",
            "1500",
        ],
        &out,
    );
    assert_eq!(code, Some(1), "findings make the run fail: {stderr}");
    let r = &reports[0];
    for key in ["accepted", "panics", "hangs", "over_allocations"] {
        assert!(r[key].as_u64().unwrap() > 0, "no {key}: {r}");
    }
    let findings = r["findings"].as_array().unwrap();
    assert_eq!(
        findings.len() as u64,
        r["panics"].as_u64().unwrap()
            + r["hangs"].as_u64().unwrap()
            + r["over_allocations"].as_u64().unwrap()
    );
    // Every case is accounted for, including those that killed or stalled a worker.
    let handled = r["accepted"].as_u64().unwrap() + findings.len() as u64;
    assert_eq!(handled, 40, "{r}");
    // A finding's saved input replays to the same outcome.
    let panic = findings.iter().find(|f| f["kind"] == "panic").unwrap();
    let replay = Command::new(exe())
        .args(["replay", "--target", "self-check"])
        .arg(panic["saved"].as_str().unwrap())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&replay.stdout);
    assert!(text.contains("Panic(\"self-check panic"), "{text}");
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn bad_options_are_refused_clearly() {
    let out = scratch("bad");
    let o = Command::new(exe())
        .args(["run", "--target", "pdf", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("unknown target `pdf`") && err.contains("gguf"),
        "{err}"
    );
    let o = Command::new(exe())
        .args(["run", "--cases", "0", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("--cases must be at least 1"));
    let _ = std::fs::remove_dir_all(&out);
}
