//! Commands that keep their work in journals survive SIGKILL: `select` (its scoring and
//! embedding passes) and `eval` (its answers), killed at random moments and run again with the
//! same command, end with what an uninterrupted run gives.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

/// Lets `child` run for `after` (or until it ends), then SIGKILLs it: whether the kill landed
/// (it had not ended on its own).
fn killed_at(child: &mut std::process::Child, after: Duration) -> bool {
    let deadline = Instant::now() + after;
    while Instant::now() < deadline && child.try_wait().unwrap().is_none() {
        std::thread::sleep(Duration::from_millis(1));
    }
    if child.try_wait().unwrap().is_some() {
        return false;
    }
    child.kill().expect("SIGKILL");
    let status = child.wait().unwrap();
    std::os::unix::process::ExitStatusExt::signal(&status) == Some(9)
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
        if killed_at(&mut child, full.mul_f64(0.9 * rng.unit())) {
            kills += 1;
            let journals = files_under(&cache).iter().any(|p| {
                p.parent()
                    .is_some_and(|d| d.extension().is_some_and(|e| e == "partial"))
            });
            resumable += usize::from(journals);
            // The output folder appears whole, by one rename, or not at all: a kill that
            // lands between the rename and the exit leaves a finished run's output.
            if out.exists() {
                assert_eq!(
                    report(&out),
                    expected,
                    "a killed select left a partial output"
                );
                let _ = std::fs::remove_dir_all(&cache);
            }
            continue;
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

/// `eval --mode generate` of `datasets` on the tiny model, one prompt at a time, 12 tokens.
fn eval_args(model: &Path, data: &Path, datasets: &str, out: &Path) -> Vec<String> {
    owned(&[
        "eval",
        "--device",
        "cpu",
        "--model",
        model.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--datasets",
        datasets,
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
}

/// `eval --mode generate` killed at random moments keeps the answers it had: 10 kills, each
/// followed by the same command, end with predictions equal to an uninterrupted run's, and
/// at least one rerun started from a journal with answers in it.
#[test]
fn eval_survives_kill_9() {
    let model = fixture("tiny/qwen2");
    let data = fixture("data/imhi");
    let root = scratch("kill-eval");
    let args = |out: &Path| eval_args(&model, &data, "DR,Irf", out);
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
        if killed_at(&mut child, full.mul_f64(0.9 * rng.unit())) {
            kills += 1;
            let answers = files_under(&out).iter().any(|p| {
                p.to_string_lossy().contains(".partial.jsonl")
                    && std::fs::read_to_string(p).is_ok_and(|t| t.lines().count() > 1)
            });
            resumable += usize::from(answers);
            continue;
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

/// A run killed after its first set is written, run again, reads that set's answers back
/// from its journal (kept until the whole run is written) and gives the same predictions.
#[test]
fn eval_killed_in_its_second_set_keeps_the_first() {
    let model = fixture("tiny/qwen2");
    let data = fixture("data/imhi");
    let root = scratch("kill-eval-sets");
    let out = root.join("out");
    let args = eval_args(&model, &data, "DR,SAD", &out);
    let written = out.join("predictions_DR.jsonl");
    let mut caught = 0;
    for _ in 0..5 {
        let _ = std::fs::remove_dir_all(&out);
        let mut child = spawn(&args, false);
        while !written.exists() && child.try_wait().unwrap().is_none() {
            std::thread::sleep(Duration::from_millis(1));
        }
        if child.try_wait().unwrap().is_some() {
            continue; // SAD ended before the kill could land: try again
        }
        child.kill().expect("SIGKILL");
        child.wait().unwrap();
        assert!(
            out.join("predictions_DR.partial.jsonl").exists(),
            "DR's journal was removed before the run ended"
        );
        caught += 1;
        break;
    }
    assert_eq!(caught, 1, "SAD always ended before the kill");
    let first = std::fs::read_to_string(&written).unwrap();
    let (_, stderr) = ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        stderr.contains("DR: 4 of 4 answers from"),
        "the rerun did not read DR's answers back:\n{stderr}"
    );
    assert_eq!(std::fs::read_to_string(&written).unwrap(), first);
    // The report's rate counts only what this run answered.
    let notes = read_json(out.join("report.json"))["notes"].to_string();
    assert!(
        notes.contains("answered by an earlier run (its journals)"),
        "the report does not tell resumed answers apart: {notes}"
    );
    // Journals only: the kill may also have cut a whole-file write, whose hidden temporary
    // (`.name.<pid>.<n>.tmp`) is not a journal.
    let journals: Vec<_> = files_under(&out)
        .into_iter()
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            name.ends_with(".partial.jsonl") && !name.starts_with('.')
        })
        .collect();
    assert!(journals.is_empty(), "the finished run left {journals:?}");
    let _ = std::fs::remove_dir_all(root);
}
