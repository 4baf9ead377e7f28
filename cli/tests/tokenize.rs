//! `mentalqlm tokenize`: token ids and pieces of texts, from a SentencePiece folder, a HF
//! `tokenizer.json` folder and a GGUF file, against the reference fixtures.

mod common;

use common::*;

fn ids(v: &serde_json::Value) -> Vec<u64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .collect()
}

/// A folder holding only a SentencePiece model, as a Llama-2 folder without tokenizer.json.
fn spm_folder(tag: &str) -> std::path::PathBuf {
    let dir = scratch(tag);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(fixture("spm/bpe.model"), dir.join("tokenizer.model")).unwrap();
    dir
}

#[test]
fn tokenize_prints_the_slow_tokenizers_ids() {
    let dir = spm_folder("tok-ids");
    let reference = read_json(fixture("spm/expected.json"));
    let row = reference["models"]["bpe"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["text"] == "a <s> b </s> c")
        .unwrap();
    let want = ids(&row["ids"]);

    // Plain: comma-separated, as `logits --ids` takes them; one line per text.
    let (stdout, _) = ok(&[
        "tokenize",
        "--model",
        dir.to_str().unwrap(),
        "a <s> b </s> c",
        "Hello world",
    ]);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    let got: Vec<u64> = lines[0].split(',').map(|s| s.parse().unwrap()).collect();
    assert_eq!(got, want);

    // --json --pieces: one object per text.
    let (stdout, _) = ok(&[
        "tokenize",
        "-m",
        dir.to_str().unwrap(),
        "--json",
        "--pieces",
        "a <s> b </s> c",
    ]);
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(v["text"], "a <s> b </s> c");
    assert_eq!(ids(&v["ids"]), want);
    assert_eq!(v["pieces"], row["pieces"]);

    // --pieces alone: `id<TAB>piece` lines.
    let (stdout, _) = ok(&[
        "tokenize",
        "-m",
        dir.to_str().unwrap(),
        "--pieces",
        "a <s> b </s> c",
    ]);
    let first = stdout.lines().next().unwrap();
    assert_eq!(
        first,
        format!("{}\t{}", want[0], row["pieces"][0].as_str().unwrap())
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn tokenize_reads_tokenizer_json_and_gguf() {
    let reference = read_json(fixture("tiny/reference.json"));
    let text = reference["texts"][0].as_str().unwrap();
    let want: Vec<String> = ids(&reference["token_ids"][0])
        .iter()
        .map(u64::to_string)
        .collect();
    let (json_ids, _) = ok(&[
        "tokenize",
        "-m",
        fixture("tiny/qwen2").to_str().unwrap(),
        text,
    ]);
    assert_eq!(json_ids.trim(), want.join(","));
    // The GGUF fixture holds the same vocabulary and merges as the tiny tokenizer.json.
    let gguf = fixture("gguf/tiny_qwen2_tok.gguf");
    let (gguf_ids, _) = ok(&["tokenize", "-m", gguf.to_str().unwrap(), text]);
    assert_eq!(gguf_ids, json_ids);
}

#[test]
fn tokenize_refuses_bad_input() {
    let dir = spm_folder("tok-bad");
    let m = dir.to_str().unwrap();
    fails(&["tokenize", "-m", m, ""], &["text 1 is empty"]);
    fails(&["tokenize", "-m", m, "ok", ""], &["text 2 is empty"]);
    std::fs::write(dir.join("tokenizer.model"), b"\x0a\xff\x01garbage").unwrap();
    fails(
        &["tokenize", "-m", m, "hi"],
        &["tokenizer.model", "not a valid SentencePiece model"],
    );
    let empty = scratch("tok-empty");
    std::fs::create_dir_all(&empty).unwrap();
    fails(
        &["tokenize", "-m", empty.to_str().unwrap(), "hi"],
        &["no tokenizer.json, tokenizer.model, spiece.model, or vocab.json with merges.txt"],
    );
    let run = run(&["tokenize", "-m", m]);
    assert_eq!(run.status.code(), Some(2), "clap refuses a missing text");
    std::fs::remove_dir_all(&dir).ok();
    std::fs::remove_dir_all(&empty).ok();
}
