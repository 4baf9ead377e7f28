//! GPT-2's byte-level BPE files (`vocab.json`, `merges.txt`) as BART folders ship them:
//! broken files get an error naming the file and line. (Token ids against transformers'
//! BartTokenizer are checked in tests/src/seq2seq.rs, with the model.)

mod common;

use std::path::Path;

use mentalqlm_formats::byte_bpe::tokenizer_from_files;

fn files() -> (Vec<u8>, Vec<u8>) {
    let dir = common::fixture("tiny/bart");
    (
        std::fs::read(dir.join("vocab.json")).unwrap(),
        std::fs::read(dir.join("merges.txt")).unwrap(),
    )
}

fn err(vocab: &[u8], merges: &[u8]) -> String {
    match tokenizer_from_files(
        vocab,
        merges,
        Path::new("v/vocab.json"),
        Path::new("v/merges.txt"),
    ) {
        Ok(_) => panic!("built"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn the_fixture_builds_and_round_trips() {
    let (vocab, merges) = files();
    let tok = tokenizer_from_files(
        &vocab,
        &merges,
        Path::new("vocab.json"),
        Path::new("merges.txt"),
    )
    .unwrap();
    let enc = tok.encode("I can't sleep, café", false).unwrap();
    assert!(enc.get_ids().len() > 3);
    let text = tok.decode(enc.get_ids(), false).unwrap();
    assert_eq!(text, "I can't sleep, café");
    // `<mask>` takes the space before it, as BART's tokenizer defines it.
    let masked = tok.encode("café <mask>", false).unwrap();
    let ids = masked.get_ids();
    assert_eq!(ids.last().copied(), tok.token_to_id("<mask>"));
    let plain = tok.encode("café", false).unwrap();
    assert_eq!(&ids[..ids.len() - 1], plain.get_ids());
    assert_eq!(tok.token_to_id("</s>"), Some(2));
}

#[test]
fn broken_files_are_named() {
    let (vocab, merges) = files();
    let e = err(b"[1, 2]", &merges);
    assert!(e.contains("v/vocab.json") && e.contains("token"), "{e}");
    let e = err(b"{\"a\": -1}", &merges);
    assert!(e.contains("v/vocab.json"), "{e}");
    let e = err(&vocab, b"#version: 0.2\na b c\n");
    assert!(e.contains("v/merges.txt") && e.contains("line 2"), "{e}");
    let e = err(&vocab, b"#version: 0.2\n\xff\xfe\n");
    assert!(e.contains("v/merges.txt") && e.contains("UTF-8"), "{e}");
    let e = err(&vocab, "#version: 0.2\nzq€ xy\n".as_bytes());
    assert!(
        e.contains("v/merges.txt") && e.contains("merge 1") && e.contains("zq€"),
        "{e}"
    );
}
