//! Clear errors (exit code 1, a message, no panic) for bad input to `classify`, `score`,
//! `eval`, `generate` and `logits`.

mod common;

use common::*;

#[test]
fn bad_input_gets_clear_errors() {
    let model = fixture("tiny/qwen2");
    let m = model.to_str().unwrap();
    fails(
        &[
            "classify", "--device", "cpu", "--model", m, "--task", "DR", "  ",
        ],
        &["text 1 is empty"],
    );
    fails(
        &[
            "classify", "--device", "cpu", "--model", m, "--task", "nonsense", "hi",
        ],
        &["nonsense", "DR"],
    );
    let bad = fixture("data/malformed/predictions_bad.jsonl");
    fails(
        &[
            "classify",
            "--device",
            "cpu",
            "--model",
            m,
            "--task",
            "DR",
            "--input",
            bad.to_str().unwrap(),
        ],
        &["predictions_bad.jsonl:"],
    );
    fails(
        &[
            "score",
            "--predictions",
            bad.to_str().unwrap(),
            "--dataset",
            "DR",
        ],
        &["predictions_bad.jsonl"],
    );
    fails(
        &[
            "eval",
            "--device",
            "cpu",
            "--model",
            m,
            "--data",
            "/nonexistent/imhi",
            "--datasets",
            "DR",
        ],
        &["/nonexistent/imhi"],
    );
    fails(
        &[
            "generate", "--device", "cpu", "--model", m, "--top-p", "2", "hi",
        ],
        &["--top-p"],
    );
    fails(
        &["generate", "--device", "cpu", "--model", m, ""],
        &["prompt 1 is empty"],
    );
    // Far beyond the tiny model's 256-token context: refused before the cache is allocated.
    let long = "I feel tired all the time. ".repeat(400);
    fails(
        &["generate", "--device", "cpu", "--model", m, &long],
        &["beyond the model's context of 256 tokens"],
    );
    fails(
        &["logits", "--device", "cpu", "--model", m, "--ids", "1,x"],
        &["`x` is not a token id"],
    );
    fails(
        &[
            "logits",
            "--device",
            "cpu",
            "--model",
            "/nonexistent/model",
            "--ids",
            "1",
        ],
        &["/nonexistent/model"],
    );
}

/// The options added for the explainer's pipeline refuse out-of-range values by name.
#[test]
fn explainer_options_refuse_bad_values() {
    let model = fixture("tiny/qwen2");
    let data = fixture("data/imhi");
    let (m, d) = (model.to_str().unwrap(), data.to_str().unwrap());
    let out = scratch("bad-options");
    let o = out.to_str().unwrap();
    let sft = |extra: &[&str], needles: &[&str]| {
        let mut v = vec![
            "train", "sft", "--device", "cpu", "--model", m, "--data", d, "--out", o,
        ];
        v.extend_from_slice(extra);
        fails(&v, needles);
    };
    sft(&["--top-k", "9"], &["--top-k", "0..=2"]);
    sft(&["--max-steps", "0"], &["--max-steps"]);
    sft(&["--prefix-batch-size", "0"], &["--prefix-batch-size"]);
    sft(&["--label-weight", "0"], &["--label-weight", "positive"]);
    sft(&["--label-weight", "NaN"], &["--label-weight", "positive"]);
    sft(
        &["--top-k", "1", "--val-data", "/nonexistent/imhi"],
        &["/nonexistent/imhi"],
    );
    fails(
        &[
            "select",
            "--device",
            "cpu",
            "--model",
            m,
            "--data",
            d,
            "--prefix-top-k",
            "2",
            "--out",
            o,
        ],
        &["--prefix-top-k", "1..2"],
    );
    let preds = fixture("data/malformed/predictions_bad.jsonl");
    fails(
        &[
            "judge",
            "--a",
            preds.to_str().unwrap(),
            "--b",
            preds.to_str().unwrap(),
            "--endpoint",
            "localhost:8000",
            "--out",
            o,
        ],
        &["--endpoint", "http://"],
    );
    fails(
        &[
            "judge",
            "--a",
            preds.to_str().unwrap(),
            "--b",
            preds.to_str().unwrap(),
            "--endpoint",
            "http://127.0.0.1:9/v1",
            "--out",
            o,
        ],
        &["predictions_bad.jsonl"],
    );
    // Training makes its (empty) output folder before it reads the data; nothing is in it.
    assert!(files_under(&out).is_empty(), "nothing written");
    let _ = std::fs::remove_dir_all(out);
}

/// A folder holding a PyTorch pickle checkpoint instead of safetensors is refused without
/// unpickling it (this one would call `os.system`), with the conversion to run.
#[test]
fn pytorch_pickle_checkpoints_are_refused_with_the_conversion() {
    let dir = scratch("pickle");
    std::fs::create_dir_all(&dir).unwrap();
    let src = fixture("tiny/llama2-chat");
    for f in ["config.json", "tokenizer.model", "tokenizer_config.json"] {
        std::fs::copy(src.join(f), dir.join(f)).unwrap();
    }
    // Protocol 2: GLOBAL os.system, BINUNICODE "touch MARKER", TUPLE1, REDUCE, STOP.
    let marker = dir.join("pwned");
    let command = format!("touch {}", marker.display());
    let mut payload = b"\x80\x02cos\nsystem\nX".to_vec();
    payload.extend_from_slice(&(command.len() as u32).to_le_bytes());
    payload.extend_from_slice(command.as_bytes());
    payload.extend_from_slice(b"\x85R.");
    std::fs::write(dir.join("pytorch_model.bin"), payload).unwrap();
    fails(
        &[
            "logits",
            "--device",
            "cpu",
            "-m",
            dir.to_str().unwrap(),
            "--ids",
            "1,2",
        ],
        &[
            "pytorch_model.bin",
            "PyTorch pickle checkpoints are not read",
            "save_pretrained",
        ],
    );
    assert!(!marker.exists(), "the pickle ran");
    std::fs::remove_dir_all(&dir).ok();
}

/// A reader that stops early (`mentalqlm logits ... | head -c 10`) ends the command quietly,
/// as Unix tools end, instead of a panic in `println!`.
#[test]
fn a_closed_stdout_ends_quietly() {
    use std::io::Read;
    use std::process::{Command, Stdio};
    // Both print far more than a pipe holds (64 KiB): the default model's 49,152 logits, and
    // one line of ids for each of 40,000 texts.
    let mut many = vec!["tokenize"];
    many.extend(std::iter::repeat_n("some words", 40_000));
    for args in [vec!["logits", "--device", "cpu", "--ids", "1,2,3"], many] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_mentalqlm"))
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Read one byte, then close the pipe while the command still has more to write.
        let mut stdout = child.stdout.take().unwrap();
        let mut first = [0u8; 1];
        stdout.read_exact(&mut first).unwrap();
        drop(stdout);
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}
