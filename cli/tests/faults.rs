//! Output under faults: a full disk (a file-size limit, which needs no privileges) and an
//! unwritable output folder give a clear error naming the path, and leave no temporary or
//! half-written file behind.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

fn eval_args(out: &Path) -> Vec<String> {
    owned(&[
        "eval",
        "--device",
        "cpu",
        "--model",
        fixture("tiny/qwen2").to_str().unwrap(),
        "--data",
        fixture("data/imhi").to_str().unwrap(),
        "--datasets",
        "DR",
        "--mode",
        "choice",
        "--limit",
        "3",
        "--out",
        out.to_str().unwrap(),
    ])
}

#[test]
fn a_full_disk_leaves_no_half_written_files() {
    // RLIMIT_FSIZE makes any write past `blocks` KiB fail (EFBIG), as a full disk would
    // fail it (ENOSPC); SIGXFSZ is ignored so the write returns the error.
    let mut failed = 0;
    for blocks in [1, 2, 4, 8, 64] {
        let out = scratch(&format!("full-disk-{blocks}"));
        let o = Command::new("bash")
            .arg("-c")
            .arg(format!(
                "trap '' XFSZ; ulimit -f {blocks}; exec \"$0\" \"$@\""
            ))
            .arg(env!("CARGO_BIN_EXE_mentalqlm"))
            .args(eval_args(&out))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(!stderr.contains("panicked"), "{stderr}");
        // Either every file fitted, or the run fails naming the file and the cause.
        if !o.status.success() {
            failed += 1;
            assert_eq!(o.status.code(), Some(1), "limit {blocks} KiB: {stderr}");
            assert!(
                stderr.contains(out.to_str().unwrap()) && stderr.contains("too large"),
                "the error names the file and the cause: {stderr}"
            );
        }
        for f in files_under(&out) {
            let name = f.to_string_lossy().into_owned();
            assert!(!name.ends_with(".tmp"), "temporary file left: {name}");
            // What is there is whole.
            let bytes = std::fs::read(&f).unwrap();
            if name.ends_with(".json") {
                serde_json::from_slice::<serde_json::Value>(&bytes)
                    .unwrap_or_else(|e| panic!("{name} is half-written: {e}"));
            }
            if name.ends_with(".jsonl") {
                for line in String::from_utf8(bytes).unwrap().lines() {
                    serde_json::from_str::<serde_json::Value>(line)
                        .unwrap_or_else(|e| panic!("{name} is half-written: {e}"));
                }
            }
        }
        let _ = std::fs::remove_dir_all(&out);
    }
    assert!(
        failed >= 2,
        "the limits were too generous to fail any write"
    );
}

#[test]
fn an_unwritable_output_folder_is_named() {
    let base = scratch("unwritable");
    std::fs::create_dir_all(&base).unwrap();
    let blocker = base.join("a-file");
    std::fs::write(&blocker, b"not a folder").unwrap();
    // A folder inside a regular file: refused even for root, who ignores permissions.
    let out = blocker.join("out");
    let o = out.to_str().unwrap();
    let m = fixture("tiny/qwen2");
    let d = fixture("data/imhi");
    let (m, d) = (m.to_str().unwrap(), d.to_str().unwrap());
    let eval = eval_args(&out);
    fails(&eval.iter().map(String::as_str).collect::<Vec<_>>(), &[o]);
    fails(
        &[
            "select", "--device", "cpu", "--model", m, "--data", d, "--out", o,
        ],
        &["a-file"],
    );
    fails(
        &[
            "train",
            "sft",
            "--device",
            "cpu",
            "--model",
            m,
            "--data",
            d,
            "--datasets",
            "DR",
            "--limit",
            "4",
            "--out",
            o,
        ],
        &[o],
    );
    assert_eq!(std::fs::read(&blocker).unwrap(), b"not a folder");
    let _ = std::fs::remove_dir_all(&base);
}
