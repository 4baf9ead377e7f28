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

/// A T5 folder's `spiece.model` gets `T5Tokenizer`'s sentinels: `extra_ids` of
/// `tokenizer_config.json` (100 without one), `<extra_id_i>` at `pieces + extra_ids - 1 - i`.
#[test]
fn t5_sentinels_follow_the_pieces() {
    use mentalqlm_formats::Folder;
    use mentalqlm_formats::tokenizer::TextTokenizer;
    let dir = std::env::temp_dir().join(format!("mentalqlm-t5-sentinels-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(
        common::fixture("tiny/t5/spiece.model"),
        dir.join("spiece.model"),
    )
    .unwrap();
    let load = || {
        TextTokenizer::from_folder(&Folder::disk(&dir))
            .unwrap()
            .unwrap()
    };
    // No tokenizer_config.json: 100 sentinels after the 2,000 pieces.
    let tok = load();
    assert_eq!(tok.token_to_id("<extra_id_0>"), Some(2099));
    assert_eq!(tok.token_to_id("<extra_id_99>"), Some(2000));
    std::fs::write(dir.join("tokenizer_config.json"), r#"{"extra_ids": 3}"#).unwrap();
    let tok = load();
    assert_eq!(tok.token_to_id("<extra_id_0>"), Some(2002));
    assert_eq!(tok.token_to_id("<extra_id_2>"), Some(2000));
    assert_eq!(tok.token_to_id("<extra_id_3>"), None);
    let ids = tok.encode("a <extra_id_1> b").unwrap();
    assert!(ids.contains(&2001), "{ids:?}");
    std::fs::write(
        dir.join("tokenizer_config.json"),
        r#"{"extra_ids": "many"}"#,
    )
    .unwrap();
    let err = match TextTokenizer::from_folder(&Folder::disk(&dir)) {
        Ok(_) => panic!("a bad extra_ids was taken"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("tokenizer_config.json") && err.contains("extra_ids"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
