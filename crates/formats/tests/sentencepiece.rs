//! SentencePiece models read into HF tokenizers, against transformers' slow tokenizers
//! (`tests/scripts/gen_spm_fixtures.py`), and the errors of broken model files.

mod common;

use std::path::Path;

use mentalqlm_formats::sentencepiece::{SpModelType, SpTokenizer, tokenizer_from_spm};
use mentalqlm_formats::tokenizer::TextTokenizer;
use mentalqlm_formats::{Folder, FormatError};

fn load(name: &str) -> SpTokenizer {
    let path = common::fixture(&format!("spm/{name}.model"));
    let bytes = std::fs::read(&path).expect("fixture");
    tokenizer_from_spm(&bytes, &path).expect("model loads")
}

fn ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .expect("ids")
        .iter()
        .map(|x| x.as_u64().expect("id") as u32)
        .collect()
}

/// Texts where this runtime knowingly differs from SentencePiece (docs/models.md): a
/// Unigram model's `tokenizers` lattice holds the byte pieces, so literal text spelling one
/// becomes that byte; and a user-defined piece splits the text in two, so the text after it
/// gets a dummy prefix that SentencePiece does not give it. Each must still differ (a fix
/// must shorten this list) and every other text must match.
const KNOWN_DIFFERENCES: [(&str, &str); 2] = [
    ("unigram", "literal <0x41> byte text"),
    ("bpe", "user defined<sep>piece<sep>"),
];

/// Every text of the fixture, for one model: ids, pieces and decoding.
fn compare(name: &str, kind: SpModelType, adds_bos: bool, min_decoded: usize) {
    let sp = load(name);
    assert_eq!(sp.model.model_type, kind);
    let reference = common::read_json("spm/expected.json");
    let rows = reference["models"][name].as_array().expect("rows");
    assert!(rows.len() >= 20);
    let mut failures = Vec::new();
    let mut decoded = 0;
    for row in rows {
        let text = row["text"].as_str().expect("text");
        let want = ids(&row["ids"]);
        let got = sp
            .tokenizer
            .encode(text, false)
            .expect("encodes")
            .get_ids()
            .to_vec();
        let known = KNOWN_DIFFERENCES.contains(&(name, text));
        if known {
            assert_ne!(
                got, want,
                "{name}: {text:?} now matches: drop it from KNOWN_DIFFERENCES"
            );
            continue;
        }
        if got != want {
            failures.push(format!("{text:?}:\n  got  {got:?}\n  want {want:?}"));
            continue;
        }
        for (id, piece) in got.iter().zip(row["pieces"].as_array().expect("pieces")) {
            assert_eq!(
                sp.tokenizer.id_to_token(*id).as_deref(),
                piece.as_str(),
                "{name}: piece of id {id}"
            );
        }
        // The slow tokenizer's own specials: Llama's <s> in front, T5's </s> at the end.
        let special = ids(&row["ids_special"]);
        if adds_bos {
            assert_eq!(special[0], sp.model.bos_id.expect("bos"), "{name}: bos id");
            assert_eq!(&special[1..], &want[..]);
        } else {
            assert_eq!(sp.model.bos_id, None, "{name}: no bos");
            assert_eq!(special.last().copied(), sp.model.eos_id, "{name}: eos id");
        }
        // SentencePiece's decoding, where no special or unknown piece stands in for text.
        let plain = got.iter().all(|&id| {
            id != sp.model.unk_id && Some(id) != sp.model.bos_id && Some(id) != sp.model.eos_id
        });
        if plain {
            let text = sp.tokenizer.decode(&got, true).expect("decodes");
            assert_eq!(
                text,
                row["decoded"].as_str().expect("decoded"),
                "{name}: decoding {got:?}"
            );
            decoded += 1;
        }
    }
    assert!(
        failures.is_empty(),
        "{name}: {} of {} texts differ:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
    assert!(
        decoded >= min_decoded,
        "{name}: only {decoded} texts decoded"
    );
}

#[test]
fn bpe_matches_the_slow_llama_tokenizer() {
    compare("bpe", SpModelType::Bpe, true, 12);
}

#[test]
fn unigram_matches_the_slow_llama_tokenizer() {
    compare("unigram", SpModelType::Unigram, true, 12);
}

#[test]
fn unigram_without_byte_fallback_matches_the_slow_t5_tokenizer() {
    compare("unigram_nofallback", SpModelType::Unigram, false, 8);
}

#[test]
fn a_folder_reads_tokenizer_model_and_prefers_tokenizer_json() {
    let dir = scratch("folder");
    std::fs::copy(
        common::fixture("spm/bpe.model"),
        dir.join("tokenizer.model"),
    )
    .expect("copy");
    let tok = TextTokenizer::from_folder(&Folder::disk(&dir))
        .expect("reads")
        .expect("a tokenizer");
    assert_eq!(tok.vocab_size(), 3000);
    // </s> ends answers.
    assert!(tok.stop_ids.contains(&2), "{:?}", tok.stop_ids);
    assert_eq!(tok.encode("<s>Hi").expect("encodes")[0], 1);

    std::fs::copy(
        common::fixture("tiny/tokenizer.json"),
        dir.join("tokenizer.json"),
    )
    .expect("copy");
    let tok = TextTokenizer::from_folder(&Folder::disk(&dir))
        .expect("reads")
        .expect("a tokenizer");
    assert_ne!(tok.vocab_size(), 3000, "tokenizer.json must win");

    let empty = scratch("empty");
    assert!(
        TextTokenizer::from_folder(&Folder::disk(&empty))
            .expect("reads")
            .is_none()
    );
    std::fs::remove_dir_all(&dir).ok();
    std::fs::remove_dir_all(&empty).ok();
}

/// A new empty folder under the system's temporary folder.
fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("mentalqlm-spm-{name}-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    std::fs::create_dir_all(&dir).expect("scratch folder");
    dir
}

// ---- broken files ------------------------------------------------------------------------

/// A protobuf writer for hand-made models.
#[derive(Default)]
struct Proto(Vec<u8>);

impl Proto {
    fn varint(&mut self, mut v: u64) -> &mut Self {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                self.0.push(b);
                return self;
            }
            self.0.push(b | 0x80);
        }
    }
    fn key(&mut self, field: u64, wire: u64) -> &mut Self {
        self.varint(field << 3 | wire)
    }
    fn uint(&mut self, field: u64, v: u64) -> &mut Self {
        self.key(field, 0).varint(v)
    }
    fn bytes(&mut self, field: u64, b: &[u8]) -> &mut Self {
        self.key(field, 2).varint(b.len() as u64);
        self.0.extend_from_slice(b);
        self
    }
    fn float(&mut self, field: u64, v: f32) -> &mut Self {
        self.key(field, 5);
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn piece(&mut self, piece: &str, score: f32, kind: u64) -> &mut Self {
        let mut p = Proto::default();
        p.bytes(1, piece.as_bytes()).float(2, score).uint(3, kind);
        self.bytes(1, &p.0)
    }
}

/// `<unk>`, `<s>`, `</s>` and a few normal pieces; `trainer` fields added to the spec.
fn model(extra: impl FnOnce(&mut Proto), trainer: &[(u64, u64)]) -> Vec<u8> {
    let mut m = Proto::default();
    m.piece("<unk>", 0.0, 2)
        .piece("<s>", 0.0, 3)
        .piece("</s>", 0.0, 3);
    for (i, p) in ["\u{2581}", "a", "b", "\u{2581}a", "ab"].iter().enumerate() {
        m.piece(p, -(i as f32), 1);
    }
    extra(&mut m);
    let mut t = Proto::default();
    t.uint(3, 2); // BPE
    for &(field, v) in trainer {
        t.uint(field, v);
    }
    m.bytes(2, &t.0);
    m.0
}

fn error(bytes: &[u8]) -> String {
    match tokenizer_from_spm(bytes, Path::new("broken/tokenizer.model")) {
        Ok(_) => panic!("a broken model loaded"),
        Err(e @ FormatError::Tokenizer { .. }) => e.to_string(),
        Err(e) => panic!("wrong error kind: {e}"),
    }
}

#[test]
fn a_hand_made_model_loads() {
    let sp = tokenizer_from_spm(&model(|_| {}, &[]), Path::new("x")).expect("loads");
    let ids = sp.tokenizer.encode("ab a", false).expect("encodes");
    assert_eq!(ids.get_tokens(), ["\u{2581}a", "b", "\u{2581}a"]);
}

#[test]
fn broken_models_get_errors_naming_the_file_and_the_field() {
    let good = model(|_| {}, &[]);
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (good[..good.len() / 2].to_vec(), "needs"),
        (b"{\"version\": \"1.0\"}".to_vec(), "wire type"),
        (Vec::new(), "neither pieces nor a trainer spec"),
        (model(|_| {}, &[(3, 3)]), "model_type is WORD"),
        (model(|_| {}, &[(3, 9)]), "model_type is 9"),
        (model(|_| {}, &[(24, 1)]), "treat_whitespace_as_suffix"),
        (model(|_| {}, &[(40, 3)]), "unk_id 3 names \"\u{2581}\""),
        (
            model(|_| {}, &[(40, 99)]),
            "unk_id is 99, outside the 8 pieces",
        ),
        (model(|_| {}, &[(41, 8)]), "bos_id is 8"),
        (model(|_| {}, &[(35, 1)]), "byte piece <0x00> is missing"),
        (
            model(
                |m| {
                    m.piece("a", 0.0, 1);
                },
                &[],
            ),
            "piece 8 (\"a\") is defined twice",
        ),
        (
            model(
                |m| {
                    m.piece("c", f32::NAN, 1);
                },
                &[],
            ),
            "piece 8 (\"c\") has score NaN",
        ),
        (
            model(
                |m| {
                    m.piece("", 0.0, 1);
                },
                &[],
            ),
            "piece 8 is empty",
        ),
        (
            model(
                |m| {
                    m.piece("c", 0.0, 9);
                },
                &[],
            ),
            "piece 8: type is 9",
        ),
        (
            model(
                |m| {
                    m.bytes(1, &[0x0a, 0x02, 0xff, 0xfe]);
                },
                &[],
            ),
            "piece 8: piece is not UTF-8",
        ),
        (
            model(
                |m| {
                    m.key(1, 5);
                    m.0.extend_from_slice(&[0, 0, 0, 0]);
                },
                &[],
            ),
            "pieces is a 32-bit value",
        ),
        (
            model(
                |m| {
                    m.key(7, 3);
                },
                &[],
            ),
            "wire type 3",
        ),
        (
            model(
                |m| {
                    m.0.extend_from_slice(&[
                        0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
                    ]);
                },
                &[],
            ),
            "overflows 64 bits",
        ),
        (
            model(
                |m| {
                    m.0.push(0x00);
                },
                &[],
            ),
            "field number 0",
        ),
        (
            model(
                |m| {
                    m.piece(&"x".repeat(3000), 0.0, 1);
                },
                &[],
            ),
            "3000 bytes long",
        ),
    ];
    for (bytes, want) in cases {
        let msg = error(&bytes);
        assert!(msg.contains("broken/tokenizer.model"), "{msg}");
        assert!(msg.contains(want), "want {want:?} in: {msg}");
    }
}

/// A normalizer spec with `charsmap` as its precompiled map.
fn with_charsmap(charsmap: &[u8]) -> Vec<u8> {
    model(
        |m| {
            let mut n = Proto::default();
            n.bytes(1, b"nmt_nfkc").bytes(2, charsmap);
            m.bytes(3, &n.0);
        },
        &[],
    )
}

#[test]
fn a_charsmap_that_would_index_out_of_bounds_is_refused() {
    let units = |u: &[u32]| -> Vec<u8> {
        let mut b = ((u.len() * 4) as u32).to_le_bytes().to_vec();
        for x in u {
            b.extend_from_slice(&x.to_le_bytes());
        }
        b
    };
    // Root offset 1: the first byte looks up units 0..=254 of a 2-unit trie.
    let msg = error(&with_charsmap(&units(&[1 << 10, 0])));
    assert!(msg.contains("past its 2 units"), "{msg}");
    // Shorter than the header; a trie longer than the blob.
    assert!(error(&with_charsmap(&[1, 0])).contains("4-byte header"));
    assert!(error(&with_charsmap(&[64, 0, 0, 0, 1])).contains("only 1 follow"));
    // Strings that are not UTF-8.
    let mut bad = units(&[0; 256]);
    bad.extend_from_slice(&[0xff, 0xfe]);
    assert!(error(&with_charsmap(&bad)).contains("not UTF-8"));
    // A 256-unit trie with no edges is valid (it maps nothing).
    let mut ok = units(&[0; 256]);
    ok.extend_from_slice(b"x\0");
    tokenizer_from_spm(&with_charsmap(&ok), Path::new("x")).expect("an empty trie loads");
    // A leaf whose string starts past the strings: unit 1 has label 1 and a leaf; the
    // child (1 ^ offset 0 = 1) holds the value 257, past the 2 bytes of strings.
    let mut leaf = vec![0u32; 256];
    leaf[1] = 1 | (1 << 8);
    let mut blob = units(&leaf);
    blob.extend_from_slice(b"x\0");
    let msg = error(&with_charsmap(&blob));
    assert!(msg.contains("not a character start"), "{msg}");
}
