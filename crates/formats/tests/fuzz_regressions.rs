//! Inputs that `mentalqlm-fuzz` found to panic, abort or hang a reader, minimized by hand;
//! each must now give an error naming the file. See docs/fuzzing.md for the list.

use std::path::PathBuf;

use mentalqlm_formats::tokenizer::TextTokenizer;

/// `tokenizer.json` bytes are refused as not JSON, naming the file.
fn refused_as_not_json(bytes: &[u8]) {
    let err = TextTokenizer::from_bytes(bytes, PathBuf::from("fuzz/tokenizer.json"))
        .err()
        .expect("rejected")
        .to_string();
    assert!(
        err.contains("fuzz/tokenizer.json") && err.contains("not JSON"),
        "{err}"
    );
}

#[test]
fn tokenizer_json_syntax_error_inside_the_decoder() {
    // tokenizers 0.22 `expect`s its decoder to deserialize: a syntax error there panicked.
    refused_as_not_json(br#"{"decoder": {"type": "ByteLevel",` }}"#);
}

#[test]
fn tokenizer_json_invalid_utf8_inside_the_decoder() {
    // Valid syntax, but a byte that is not UTF-8 in a key of the decoder: the same panic.
    refused_as_not_json(b"{\"decoder\": {\"type\": \"ByteLevel\", \"add_pre\xffix_space\": true}}");
}
