//! Helpers shared by the CLI's integration tests: the binary, its fixtures, scratch folders,
//! and reading back what it printed or wrote.
#![allow(dead_code)]

pub mod server;

use std::path::PathBuf;
use std::process::{Command, Output};

pub fn root() -> PathBuf {
    manifest_dir().join("..")
}

pub fn fixture(rel: &str) -> PathBuf {
    root().join("tests/fixtures").join(rel)
}

pub fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mentalqlm"))
        .args(args)
        .output()
        .expect("run mentalqlm")
}

pub fn ok(args: &[&str]) -> (String, String) {
    let out = run(args);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    );
    assert!(out.status.success(), "mentalqlm {args:?} failed:\n{stderr}");
    (stdout, stderr)
}

/// Fails with exit code 1 and a message containing every `needle`; never a panic.
pub fn fails(args: &[&str], needles: &[&str]) {
    let out = run(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "mentalqlm {args:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    for n in needles {
        assert!(
            stderr.contains(n),
            "mentalqlm {args:?}: `{n}` not in:\n{stderr}"
        );
    }
}

pub fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mentalqlm-cli-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

pub fn read_json(path: PathBuf) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The package folder, read when the test runs (cargo sets it), so a test binary built in
/// another clone sharing the target folder still reads this clone's fixtures.
pub fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// A JSON array of numbers.
/// The largest |a - b| over two equally long vectors.
pub fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

/// Runs a `logits` command line, which must succeed: its `logits` and its stderr.
pub fn logits_of(args: &[&str]) -> (Vec<f64>, String) {
    let (stdout, stderr) = ok(args);
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    (floats(&v["logits"]), stderr)
}

pub fn floats(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

/// `mentalqlm logits` for `ids` (with an optional adapter) equals the last row of `rows`.
pub fn check_logits(
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
    let (got, stderr) = logits_of(&args);
    let want = floats(rows.as_array().unwrap().last().unwrap());
    assert_eq!(got.len(), want.len());
    let diff = max_abs_diff(&got, &want);
    assert!(diff < 1e-4, "max diff {diff}");
    stderr
}

/// Copies the folder `from` with everything in it to `to`.
pub fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
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

/// Every file under `dir`, in every subfolder (none if `dir` is missing).
pub fn files_under(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut all = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            all.extend(files_under(&p));
        } else {
            all.push(p);
        }
    }
    all
}

/// Arguments as owned strings.
pub fn owned(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// The events of a training run's `log.jsonl` in `out`.
pub fn log_events(out: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(out.join("log.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A fixed-seed LCG: the kill schedule is the same on every run of the test.
pub struct Lcg(pub u64);

impl Lcg {
    pub fn unit(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Starts the binary with `args` (and `--resume`), its stderr kept for [`finish`].
pub fn spawn(args: &[String], resume: bool) -> std::process::Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mentalqlm"));
    cmd.args(args);
    if resume {
        cmd.arg("--resume");
    }
    cmd.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start mentalqlm")
}

/// Waits for `child`; a failure (not a kill) fails the test with its stderr.
pub fn finish(mut child: std::process::Child, what: &str) {
    let status = child.wait().unwrap();
    let mut err = String::new();
    if let Some(mut s) = child.stderr.take() {
        use std::io::Read;
        let _ = s.read_to_string(&mut err);
    }
    assert!(status.success(), "{what} failed ({status}):\n{err}");
}
