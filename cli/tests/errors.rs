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
