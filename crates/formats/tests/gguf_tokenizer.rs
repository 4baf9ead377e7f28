//! Tokenizers built from GGUF metadata against transformers' ids
//! (`tests/scripts/gen_tokenizer_fixtures.py`).

mod common;

use common::GgufBytes;
use mentalqlm_formats::gguf::GgufFile;
use mentalqlm_formats::gguf_tokenizer::{GgufTokenizer, tokenizer_from_gguf};

fn build(path: &std::path::Path) -> GgufTokenizer {
    let file = GgufFile::open(path).expect("opens");
    tokenizer_from_gguf(file.metadata()).expect("tokenizer builds")
}

/// Encodes every case of `fixture` without adding special tokens and compares to `key`.
fn compare(tok: &GgufTokenizer, fixture: &str, key: &str, check_decode: bool) {
    let reference = common::read_json(fixture);
    let cases = reference["cases"].as_array().expect("cases");
    assert!(cases.len() >= 7);
    let mut failures = Vec::new();
    for case in cases {
        let text = case["text"].as_str().expect("text");
        let want: Vec<u32> = case[key]
            .as_array()
            .expect("ids")
            .iter()
            .map(|x| x.as_u64().expect("id") as u32)
            .collect();
        let got = tok
            .tokenizer
            .encode(text, false)
            .expect("encode")
            .get_ids()
            .to_vec();
        if got != want {
            failures.push(format!("{text:?}:\n  ours {got:?}\n  HF   {want:?}"));
            continue;
        }
        if check_decode {
            let decoded = tok.tokenizer.decode(&got, false).expect("decode");
            assert_eq!(
                decoded,
                case["decoded"].as_str().expect("decoded"),
                "decode of {text:?}"
            );
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} texts differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn smollm2_matches_transformers() {
    let tok = build(&common::default_model());
    assert_eq!(tok.pre, "smollm");
    assert_eq!(tok.tokenizer.get_vocab_size(true), 49152);
    assert_eq!(
        (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id),
        (Some(1), Some(2), Some(2))
    );
    assert!(!tok.add_bos_token);
    let template = tok.chat_template.as_deref().expect("chat template");
    assert!(template.contains("<|im_start|>"), "{template}");
    assert_eq!(tok.tokenizer.token_to_id("<|im_end|>"), Some(2));
    compare(&tok, "smollm2_tokens.json", "ids", true);
    // SmolLM2's upstream pre-tokenizer (Digits + ByteLevel) gives the same ids on these texts.
    compare(&tok, "smollm2_tokens.json", "ids_upstream", false);
}

#[test]
fn qwen2_split_and_user_defined_tokens_match_transformers() {
    let path = common::fixture("gguf/tiny_qwen2_tok.gguf");
    let tok = build(&path);
    assert_eq!(tok.pre, "qwen2");
    assert_eq!(tok.tokenizer.token_to_id("<think>"), Some(330));
    compare(&tok, "gguf/tiny_qwen2_tokens.json", "ids", false);

    let file = GgufFile::open(&path).expect("opens");
    let cfg = file.model_config().expect("qwen2 config");
    assert_eq!(cfg.architecture, "qwen2");
    assert_eq!(
        (
            cfg.hidden_size,
            cfg.num_attention_heads,
            cfg.num_key_value_heads,
            cfg.head_dim
        ),
        (48, 6, 2, 8)
    );
    assert_eq!(cfg.rope_theta, 1e6);
    assert_eq!(cfg.vocab_size, 331);
    assert!(!cfg.qk_permuted, "qwen2 GGUFs keep HF's Q/K row order");
}

/// A four-token vocabulary: `<s>` (control), `a`, `b`, and the merge `ab`.
fn tiny_vocab(pre: &str, bos: u32, add_bos: bool) -> GgufBytes {
    let mut g = GgufBytes::new();
    g.kv_str("general.architecture", "llama")
        .kv_str("tokenizer.ggml.model", "gpt2")
        .kv_str("tokenizer.ggml.pre", pre)
        .kv_str_array("tokenizer.ggml.tokens", &["<s>", "a", "b", "ab"])
        .kv_i32_array("tokenizer.ggml.token_type", &[3, 1, 1, 1])
        .kv_str_array("tokenizer.ggml.merges", &["a b"])
        .kv_u32("tokenizer.ggml.bos_token_id", bos)
        .kv_bool("tokenizer.ggml.add_bos_token", add_bos);
    g
}

fn build_bytes(g: &GgufBytes) -> Result<GgufTokenizer, mentalqlm_formats::FormatError> {
    let file = GgufFile::from_bytes(g.build(), "vocab.gguf").expect("opens");
    tokenizer_from_gguf(file.metadata())
}

#[test]
fn add_bos_token_prepends_bos_only_with_special_tokens() {
    let tok = build_bytes(&tiny_vocab("default", 0, true)).expect("builds");
    assert_eq!(
        tok.tokenizer.encode("ab", true).expect("encode").get_ids(),
        [0, 3]
    );
    assert_eq!(
        tok.tokenizer.encode("ab", false).expect("encode").get_ids(),
        [3]
    );
    assert_eq!(
        tok.tokenizer
            .encode("<s>ab", false)
            .expect("encode")
            .get_ids(),
        [0, 3],
        "control token whole"
    );
    let tok = build_bytes(&tiny_vocab("gpt-2", 0, false)).expect("builds");
    assert_eq!(
        tok.tokenizer.encode("ab", true).expect("encode").get_ids(),
        [3]
    );
}

#[test]
fn bad_tokenizer_metadata_is_an_error() {
    let msg = build_bytes(&tiny_vocab("klingon", 0, false))
        .expect_err("unknown pre")
        .to_string();
    assert!(
        msg.contains("klingon") && msg.contains("vocab.gguf"),
        "{msg}"
    );
    let msg = build_bytes(&tiny_vocab("default", 9, false))
        .expect_err("bos out of range")
        .to_string();
    assert!(msg.contains("bos_token_id") && msg.contains('9'), "{msg}");
    let mut g = tiny_vocab("default", 0, false);
    g.kv_str_array("tokenizer.ggml.merges_bad", &[]);
    g.kv_str("tokenizer.chat_template", "{{ x }}");
    assert_eq!(
        build_bytes(&g).expect("builds").chat_template.as_deref(),
        Some("{{ x }}")
    );
}
