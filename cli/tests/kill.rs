//! Training survives SIGKILL at any moment: `train sft` and `train classifier` on the tiny
//! model are killed at least 20 times each, at random moments and on purpose while a
//! checkpoint is being written, and resumed with `--resume` after every kill. Every resume
//! must be accepted, and every completed run's weights must equal an uninterrupted run's
//! (to 1e-6, as the in-process resume tests: Burn's CPU backend sums in parallel, and the
//! order of a float sum may follow the machine's load).

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const KILLS: usize = 20;

/// A fixed-seed LCG: the kill schedule is the same on every run of the test.
struct Lcg(u64);

impl Lcg {
    fn unit(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn spawn(args: &[String], resume: bool) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mentalqlm"));
    cmd.args(args);
    if resume {
        cmd.arg("--resume");
    }
    cmd.stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start mentalqlm")
}

/// A temporary file or checkpoint folder under `out`: a write in progress.
fn writing(out: &Path) -> bool {
    let busy = |dir: &Path| {
        std::fs::read_dir(dir).is_ok_and(|entries| {
            entries.flatten().any(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                n.starts_with('.') && n.ends_with(".tmp")
            })
        })
    };
    busy(out) || busy(&out.join("checkpoints"))
}

/// Every tensor of `files`, by name.
fn finals(out: &Path, files: &[&str]) -> Vec<(String, Vec<f32>)> {
    use formats::TensorSource;
    let mut all = Vec::new();
    for f in files {
        let source = formats::safetensors::SafetensorsSource::open(&out.join(f))
            .unwrap_or_else(|e| panic!("{f}: {e}"));
        for name in source.tensor_names() {
            let (values, _) = source.read_f32(&name).unwrap();
            all.push((format!("{f}:{name}"), values));
        }
    }
    all
}

fn assert_equal(got: &[(String, Vec<f32>)], expected: &[(String, Vec<f32>)], tag: &str) {
    assert_eq!(got.len(), expected.len(), "{tag}: tensor count");
    for ((a, x), (b, y)) in got.iter().zip(expected) {
        assert_eq!(a, b, "{tag}");
        assert_eq!(x.len(), y.len(), "{tag}: {a}");
        let diff = x
            .iter()
            .zip(y)
            .map(|(p, q)| (p - q).abs())
            .fold(0.0, f32::max);
        assert!(
            diff < 1e-6,
            "{tag}: {a} differs from the uninterrupted run by {diff}"
        );
    }
}

/// Waits for `child`; a failure (not a kill) fails the test with its stderr.
fn finish(mut child: Child, what: &str) {
    let status = child.wait().unwrap();
    let mut err = String::new();
    if let Some(mut s) = child.stderr.take() {
        use std::io::Read;
        let _ = s.read_to_string(&mut err);
    }
    assert!(status.success(), "{what} failed ({status}):\n{err}");
}

/// Runs `args` uninterrupted, then again into a second folder with kills; returns the
/// kills made and how many of them landed while a file was being written.
fn kill_and_resume(
    tag: &str,
    args: impl Fn(&Path) -> Vec<String>,
    files: &[&str],
) -> (usize, usize) {
    let reference = scratch(&format!("{tag}-reference"));
    let started = Instant::now();
    finish(spawn(&args(&reference), false), "the uninterrupted run");
    let full = started.elapsed();
    let expected = finals(&reference, files);

    let out = scratch(&format!("{tag}-killed"));
    let mut rng = Lcg(0x6b69_6c6c ^ tag.len() as u64);
    let (mut kills, mut in_writes, mut completed) = (0, 0, 0);
    loop {
        let resume = out.join("log.jsonl").exists();
        let mut child = spawn(&args(&out), resume);
        if kills >= KILLS {
            finish(child, "the last resume");
            assert_equal(&finals(&out, files), &expected, tag);
            completed += 1;
            break;
        }
        // Half the kills at a random moment, half as soon as a write is seen in progress.
        let on_write = kills % 2 == 1;
        let deadline = Instant::now() + full.mul_f64(if on_write { 1.5 } else { rng.unit() });
        while Instant::now() < deadline {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            if on_write && writing(&out) {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        if child.try_wait().unwrap().is_none() {
            let was_writing = writing(&out);
            child.kill().expect("SIGKILL");
            let status = child.wait().unwrap();
            // Killed, unless it ended on its own between the check and the kill.
            if std::os::unix::process::ExitStatusExt::signal(&status) == Some(9) {
                kills += 1;
                in_writes += usize::from(was_writing);
                continue;
            }
        }
        // The run finished before the kill: it must have succeeded with the same weights;
        // then start over to make the remaining kills.
        finish(child, "a resumed run");
        assert_equal(&finals(&out, files), &expected, tag);
        completed += 1;
        let _ = std::fs::remove_dir_all(&out);
    }
    println!(
        "{tag}: {kills} kills ({in_writes} during a write), {completed} completed runs, \
         uninterrupted run {:.1} s",
        full.as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(&out);
    let _ = std::fs::remove_dir_all(&reference);
    (kills, in_writes)
}

#[test]
fn train_sft_survives_kill_9() {
    let model = fixture("tiny/qwen2");
    let data = fixture("data/imhi");
    let (m, d) = (model.to_str().unwrap(), data.to_str().unwrap());
    let (kills, in_writes) = kill_and_resume(
        "kill-sft",
        |out| {
            let mut v = owned(&[
                "train",
                "sft",
                "--device",
                "cpu",
                "--model",
                m,
                "--data",
                d,
                "--datasets",
                "DR,Irf",
                "--limit",
                "6",
                "--epochs",
                "3",
                "--batch-size",
                "2",
                "--micro-batch-size",
                "2",
                "--cutoff",
                "160",
                "--lr",
                "1e-3",
                "--val-examples",
                "4",
                "--eval-every",
                "3",
                "--save-every",
                "1",
                "--out",
            ]);
            v.push(out.to_str().unwrap().to_string());
            v
        },
        &["adapter_model.safetensors"],
    );
    assert!(kills >= KILLS);
    assert!(in_writes > 0, "no kill landed during a write");
}

#[test]
fn train_classifier_survives_kill_9() {
    let model = fixture("tiny/qwen2");
    let data = fixture("data/imhi");
    let (m, d) = (model.to_str().unwrap(), data.to_str().unwrap());
    let (kills, in_writes) = kill_and_resume(
        "kill-classifier",
        |out| {
            let mut v = owned(&[
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
                "--epochs",
                "2",
                "--batch-size",
                "4",
                "--lr",
                "1e-3",
                "--eval-every",
                "2",
                "--save-every",
                "1",
                "--out",
            ]);
            v.push(out.to_str().unwrap().to_string());
            v
        },
        &["adapter_model.safetensors", "classifier_head.safetensors"],
    );
    assert!(kills >= KILLS);
    assert!(in_writes > 0, "no kill landed during a write");
}

/// `select` killed at random moments resumes from its journals: 12 kills, then a run to the
/// end, which selects exactly what an uninterrupted run selects (the same rows written, the
/// same coverage radii), and at least one kill found a journal to resume from.
#[test]
fn select_survives_kill_9() {
    let model = fixture("tiny/qwen2");
    let data = fixture("data/imhi");
    let root = scratch("kill-select");
    let args = |cache: &Path, out: &Path| {
        owned(&[
            "select",
            "--device",
            "cpu",
            "--model",
            model.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "--batch-size",
            "1",
            "--cache-dir",
            cache.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
    };
    let report = |out: &Path| {
        let r = read_json(out.join("select_report.json"));
        let mut sets = r["datasets"].clone();
        for (_, v) in sets.as_object_mut().unwrap() {
            v.as_object_mut().unwrap().remove("from_cache");
        }
        let files: Vec<(String, String)> = files_under(out)
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "csv"))
            .map(|p| {
                let rel = p.strip_prefix(out).unwrap().display().to_string();
                (rel, std::fs::read_to_string(&p).unwrap())
            })
            .collect();
        (sets, files)
    };
    let reference = root.join("reference");
    let started = Instant::now();
    finish(
        spawn(&args(&root.join("cache-a"), &reference), false),
        "the uninterrupted select",
    );
    let full = started.elapsed();
    let expected = report(&reference);

    let cache = root.join("cache-b");
    let mut rng = Lcg(0x5e1e_c7);
    let (mut kills, mut resumable, mut attempt) = (0, 0, 0);
    let out = loop {
        attempt += 1;
        let out = root.join(format!("run-{attempt}"));
        let mut child = spawn(&args(&cache, &out), false);
        if kills >= 12 {
            finish(child, "the last select");
            break out;
        }
        let deadline = Instant::now() + full.mul_f64(0.9 * rng.unit());
        while Instant::now() < deadline && child.try_wait().unwrap().is_none() {
            std::thread::sleep(Duration::from_millis(1));
        }
        if child.try_wait().unwrap().is_none() {
            child.kill().expect("SIGKILL");
            let status = child.wait().unwrap();
            if std::os::unix::process::ExitStatusExt::signal(&status) == Some(9) {
                kills += 1;
                let journals = files_under(&cache).iter().any(|p| {
                    p.parent()
                        .is_some_and(|d| d.extension().is_some_and(|e| e == "partial"))
                });
                resumable += usize::from(journals);
                assert!(!out.exists(), "a killed select wrote its output folder");
                continue;
            }
        }
        // Finished before the kill: start over from an empty cache.
        finish(child, "a select");
        assert_eq!(report(&out), expected);
        let _ = std::fs::remove_dir_all(&cache);
    };
    assert_eq!(report(&out), expected);
    assert!(resumable >= 1, "no kill left a journal ({kills} kills)");
    println!("select: {kills} kills, {resumable} with a journal to resume from");
    let _ = std::fs::remove_dir_all(root);
}

/// `eval --mode generate` killed at random moments keeps the answers it had: 10 kills, each
/// followed by the same command, end with predictions equal to an uninterrupted run's, and
/// at least one rerun started from a journal with answers in it.
#[test]
fn eval_survives_kill_9() {
    let model = fixture("tiny/qwen2");
    let data = fixture("data/imhi");
    let root = scratch("kill-eval");
    let args = |out: &Path| {
        owned(&[
            "eval",
            "--device",
            "cpu",
            "--model",
            model.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "--datasets",
            "DR,Irf",
            "--mode",
            "generate",
            "--batch-size",
            "1",
            "--max-new-tokens",
            "12",
            "--no-explainer",
            "--out",
            out.to_str().unwrap(),
        ])
    };
    let predictions = |out: &Path| {
        ["DR", "Irf"].map(|set| {
            std::fs::read_to_string(out.join(format!("predictions_{set}.jsonl")))
                .unwrap_or_else(|e| panic!("{set}: {e}"))
        })
    };
    let reference = root.join("reference");
    let started = Instant::now();
    finish(spawn(&args(&reference), false), "the uninterrupted eval");
    let full = started.elapsed();
    let expected = predictions(&reference);
    assert!(
        files_under(&reference)
            .iter()
            .all(|p| !p.to_string_lossy().contains(".partial")),
        "a finished eval left its journal"
    );

    let out = root.join("killed");
    let mut rng = Lcg(0xe7a1);
    let (mut kills, mut resumable) = (0, 0);
    loop {
        let mut child = spawn(&args(&out), false);
        if kills >= 10 {
            finish(child, "the last eval");
            break;
        }
        let deadline = Instant::now() + full.mul_f64(0.9 * rng.unit());
        while Instant::now() < deadline && child.try_wait().unwrap().is_none() {
            std::thread::sleep(Duration::from_millis(1));
        }
        if child.try_wait().unwrap().is_none() {
            child.kill().expect("SIGKILL");
            let status = child.wait().unwrap();
            if std::os::unix::process::ExitStatusExt::signal(&status) == Some(9) {
                kills += 1;
                let answers = files_under(&out).iter().any(|p| {
                    p.to_string_lossy().contains(".partial.jsonl")
                        && std::fs::read_to_string(p).is_ok_and(|t| t.lines().count() > 1)
                });
                resumable += usize::from(answers);
                continue;
            }
        }
        finish(child, "an eval");
        assert_eq!(predictions(&out), expected);
        let _ = std::fs::remove_dir_all(&out);
    }
    assert_eq!(predictions(&out), expected);
    assert!(
        resumable >= 1,
        "no kill left answers to resume from ({kills} kills)"
    );
    println!("eval: {kills} kills, {resumable} with answers to resume from");
    let _ = std::fs::remove_dir_all(root);
}
