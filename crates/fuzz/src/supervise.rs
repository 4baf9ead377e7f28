//! The supervisor: runs a target's cases in worker processes and survives what they do.
//! A panic is caught in the worker; an abort (a refused over-allocation, a stack overflow)
//! or a hang (no answer within the per-case limit) ends the worker, and the supervisor
//! records the case, saves its input and starts a new worker after it.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::alloc::MARK;
use crate::case::Case;
use crate::targets::{Roots, Target};

#[derive(Debug, Clone)]
pub struct Settings {
    pub cases: u64,
    pub seed: u64,
    /// A case that runs longer is a hang.
    pub timeout: Duration,
    /// The largest single allocation a worker may make.
    pub alloc_cap: usize,
    /// Where findings' inputs are saved.
    pub out: PathBuf,
    pub roots: Roots,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FindingKind {
    Panic,
    Hang,
    OverAllocation,
    Crash,
    UnnamedError,
}

#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub case: u64,
    pub kind: FindingKind,
    pub mutated: String,
    pub message: String,
    /// The folder holding the case's files, for `mentalqlm-fuzz replay`.
    pub saved: PathBuf,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub target: String,
    pub cases: u64,
    pub seconds: f64,
    pub cases_per_s: f64,
    pub accepted: u64,
    pub rejected: u64,
    pub panics: u64,
    pub hangs: u64,
    pub over_allocations: u64,
    pub crashes: u64,
    pub unnamed_errors: u64,
    pub workers: u64,
    pub findings: Vec<Finding>,
}

impl Report {
    pub fn clean(&self) -> bool {
        self.findings.is_empty()
    }
}

enum Line {
    Text(String),
    Eof,
}

struct Worker {
    child: Child,
    lines: mpsc::Receiver<Line>,
    stderr: std::thread::JoinHandle<String>,
}

fn spawn(
    exe: &Path,
    target: &str,
    s: &Settings,
    from: u64,
    scratch: &Path,
) -> std::io::Result<Worker> {
    let mut child = Command::new(exe)
        .arg("worker")
        .args(["--target", target])
        .args(["--seed", &s.seed.to_string()])
        .args(["--from", &from.to_string()])
        .args(["--to", &s.cases.to_string()])
        .args(["--alloc-cap", &s.alloc_cap.to_string()])
        .arg("--fixtures")
        .arg(&s.roots.fixtures)
        .arg("--classifiers")
        .arg(&s.roots.classifiers)
        .arg("--scratch")
        .arg(scratch)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            match line {
                Ok(l) => {
                    if tx.send(Line::Text(l)).is_err() {
                        return;
                    }
                }
                Err(_) => break,
            }
        }
        let _ = tx.send(Line::Eof);
    });
    // The tail of stderr: an abort's last words.
    let stderr = std::thread::spawn(move || {
        let mut all = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = stderr.read(&mut buf) {
            if n == 0 {
                break;
            }
            all.extend_from_slice(&buf[..n]);
            if all.len() > 64 * 1024 {
                all.drain(..all.len() - 16 * 1024);
            }
        }
        String::from_utf8_lossy(&all).into_owned()
    });
    Ok(Worker {
        child,
        lines,
        stderr,
    })
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Saves case `index`'s files under `out/<target>/<kind>-<index>/`.
fn save(target: &Target, s: &Settings, index: u64, kind: FindingKind) -> (PathBuf, String) {
    let case = Case::new(target, s.seed, index);
    let kind_name = serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let dir = s.out.join(target.name).join(format!("{kind_name}-{index}"));
    let _ = std::fs::create_dir_all(&dir);
    for f in &case.files {
        let _ = std::fs::write(dir.join(&f.name), &f.bytes);
    }
    (dir, case.mutated)
}

/// Runs all of `target`'s cases; `progress` is called with the cases done so far.
pub fn supervise(
    exe: &Path,
    target: &Target,
    s: &Settings,
    mut progress: impl FnMut(u64),
) -> anyhow::Result<Report> {
    let start = Instant::now();
    let scratch = s.out.join(".scratch").join(target.name);
    std::fs::create_dir_all(&scratch)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", scratch.display()))?;
    let mut report = Report {
        target: target.name.to_string(),
        ..Report::default()
    };
    let mut next = 0u64;
    let add = |report: &mut Report, index: u64, kind: FindingKind, message: String| {
        let (saved, mutated) = save(target, s, index, kind);
        report.findings.push(Finding {
            case: index,
            kind,
            mutated,
            message,
            saved,
        });
    };
    while next < s.cases {
        let mut w = spawn(exe, target.name, s, next, &scratch)
            .map_err(|e| anyhow::anyhow!("cannot start a worker ({}): {e}", exe.display()))?;
        report.workers += 1;
        let mut running: Option<u64> = None;
        let ended_by: Option<FindingKind> = loop {
            match w.lines.recv_timeout(s.timeout) {
                Ok(Line::Text(line)) => {
                    let (word, rest) = line.split_once(' ').unwrap_or((&line, ""));
                    let (num, msg) = rest.split_once(' ').unwrap_or((rest, ""));
                    let Ok(index) = num.parse::<u64>() else {
                        continue;
                    };
                    let message = || serde_json::from_str::<String>(msg).unwrap_or(msg.into());
                    match word {
                        "start" => running = Some(index),
                        "ok" => report.accepted += 1,
                        "err" => report.rejected += 1,
                        "unnamed" => {
                            report.rejected += 1;
                            report.unnamed_errors += 1;
                            add(&mut report, index, FindingKind::UnnamedError, message());
                        }
                        "panic" => {
                            report.panics += 1;
                            add(&mut report, index, FindingKind::Panic, message());
                        }
                        _ => continue,
                    }
                    if word != "start" {
                        running = None;
                        next = index + 1;
                        if next % 100 == 0 {
                            progress(next);
                        }
                    }
                }
                Ok(Line::Eof) => break None,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if running.is_some() {
                        let _ = w.child.kill();
                        break Some(FindingKind::Hang);
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break None,
            }
        };
        let status = w.child.wait()?;
        let stderr = w.stderr.join().unwrap_or_default();
        match (ended_by, running) {
            (Some(kind), Some(index)) => {
                report.hangs += 1;
                add(
                    &mut report,
                    index,
                    kind,
                    format!("no answer within {:?}", s.timeout),
                );
                next = index + 1;
            }
            (None, Some(index)) => {
                let kind = if stderr.contains(MARK) {
                    report.over_allocations += 1;
                    FindingKind::OverAllocation
                } else {
                    report.crashes += 1;
                    FindingKind::Crash
                };
                add(
                    &mut report,
                    index,
                    kind,
                    format!("worker ended ({status}): {}", tail(&stderr, 4)),
                );
                next = index + 1;
            }
            _ if !status.success() => anyhow::bail!(
                "a worker for {} failed outside any case ({status}): {}",
                target.name,
                tail(&stderr, 8)
            ),
            _ => {}
        }
    }
    progress(s.cases);
    report.cases = s.cases;
    report.seconds = start.elapsed().as_secs_f64();
    report.cases_per_s = s.cases as f64 / report.seconds.max(1e-9);
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(report)
}
