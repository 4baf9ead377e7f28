//! Training survives SIGKILL at any moment: `train sft` and `train classifier` on the tiny
//! model are killed at least 20 times each, at random moments and on purpose while a
//! checkpoint is being written, and resumed with `--resume` after every kill. Every resume
//! must be accepted, and every completed run's weights must equal an uninterrupted run's
//! (to 1e-6, as the in-process resume tests: Burn's CPU backend sums in parallel, and the
//! order of a float sum may follow the machine's load).

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

const KILLS: usize = 20;

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
