//! Broken GGUF files: each gives a `FormatError` naming the file (and the tensor where
//! there is one), never a panic or an out-of-bounds read.

mod common;

use common::{GgufBytes, TYPE_ARRAY, TYPE_STRING, tiny_valid};
use mentalqlm_formats::gguf::GgufFile;
use mentalqlm_formats::gguf_tokenizer::tokenizer_from_gguf;
use mentalqlm_formats::{FormatError, TensorSource};

const LABEL: &str = "broken.gguf";

fn open(bytes: Vec<u8>) -> Result<GgufFile, FormatError> {
    GgufFile::from_bytes(bytes, LABEL)
}

/// Opening fails with a message that names the file and contains every `needles` entry.
fn expect_err(bytes: Vec<u8>, needles: &[&str]) -> FormatError {
    let err = match open(bytes) {
        Ok(_) => panic!("expected an error containing {needles:?}"),
        Err(e) => e,
    };
    let msg = err.to_string();
    assert!(msg.contains(LABEL), "error does not name the file: {msg}");
    for n in needles {
        assert!(msg.contains(n), "error {msg:?} does not contain {n:?}");
    }
    err
}

#[test]
fn tiny_valid_file_reads() {
    let file = open(tiny_valid().build()).expect("valid");
    assert_eq!(
        file.read_f32("w").expect("w"),
        (vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], vec![2, 3])
    );
    assert!(matches!(
        file.read_f32("nope"),
        Err(FormatError::MissingTensor { .. })
    ));
}

#[test]
fn bad_magic() {
    let mut bytes = tiny_valid().build();
    bytes[..4].copy_from_slice(b"GGML");
    expect_err(bytes, &["bad magic"]);
    expect_err(b"GG".to_vec(), &["too short"]);
    expect_err(Vec::new(), &["too short"]);
}

#[test]
fn unsupported_versions() {
    for (version, needle) in [
        (1, "version 1"),
        (4, "version 4"),
        (3u32.swap_bytes(), "big-endian"),
    ] {
        let mut g = tiny_valid();
        g.version = version;
        expect_err(g.build(), &["unsupported GGUF version", needle]);
    }
}

#[test]
fn truncated_file() {
    let bytes = tiny_valid().build();
    // Cut inside the tensor data: the tensor is named.
    let err = expect_err(bytes[..bytes.len() - 1].to_vec(), &["`w`", "past the end"]);
    assert!(matches!(err, FormatError::BadTensor { ref name, .. } if name == "w"));
    // Cut anywhere in the header: a truncation error, never a panic.
    for cut in 0..bytes.len() - 24 {
        assert!(
            open(bytes[..cut].to_vec()).is_err(),
            "cut at {cut} accepted"
        );
    }
    expect_err(bytes[..30].to_vec(), &["truncated"]);
}

#[test]
fn unknown_and_unsupported_quant_types() {
    let mut g = GgufBytes::new();
    g.tensor("blk.0.weird", &[32], 99, 0);
    g.data = vec![0; 64];
    let err = expect_err(g.build(), &["blk.0.weird", "unknown ggml type id 99"]);
    assert!(matches!(err, FormatError::BadTensor { .. }));

    // A real type without a dequantizer (Q2_K) opens; reading it names the tensor and type.
    let mut g = GgufBytes::new();
    g.tensor("blk.0.q2k", &[256], 10, 0);
    g.data = vec![0; 84];
    let file = open(g.build()).expect("Q2_K opens");
    let msg = file
        .read_f32("blk.0.q2k")
        .expect_err("no Q2_K dequantizer")
        .to_string();
    assert!(
        msg.contains("blk.0.q2k") && msg.contains("Q2_K") && msg.contains(LABEL),
        "{msg}"
    );
    assert!(
        file.read_raw("blk.0.q2k").is_ok(),
        "raw bytes are still available"
    );
}

#[test]
fn tensor_beyond_the_file() {
    // Offset past the end.
    let mut g = GgufBytes::new();
    g.tensor("far", &[4], 0, 1 << 20);
    g.data = vec![0; 16];
    expect_err(g.build(), &["`far`", "past the end"]);
    // Shape bigger than the data (size disagrees with the bytes present).
    let mut g = GgufBytes::new();
    g.tensor("big", &[64, 64], 8, 0); // Q8_0: 128 blocks of 34 bytes
    g.data = vec![0; 34];
    expect_err(g.build(), &["`big`", "4352 bytes"]);
    // Offset + size overflowing u64/usize.
    let mut g = GgufBytes::new();
    g.tensor("wrap", &[8], 0, u64::MAX - 31);
    expect_err(g.build(), &["wrap"]);
    // Element count overflowing.
    let mut g = GgufBytes::new();
    g.tensor("huge", &[u64::MAX / 2, 4], 0, 0);
    expect_err(g.build(), &["huge", "elements"]);
}

#[test]
fn malformed_tensor_infos() {
    let cases: Vec<(GgufBytes, &[&str])> = vec![
        (
            {
                let mut g = GgufBytes::new();
                g.tensor("t5", &[1, 1, 1, 1, 1], 0, 0);
                g.data = vec![0; 4];
                g
            },
            &["t5", "5 dimensions"],
        ),
        (
            {
                let mut g = GgufBytes::new();
                g.tensor("odd", &[33], 8, 0);
                g.data = vec![0; 64];
                g
            },
            &["odd", "multiple of the Q8_0 block size 32"],
        ),
        (
            {
                let mut g = GgufBytes::new();
                g.tensor("mis", &[4], 0, 4);
                g.data = vec![0; 64];
                g
            },
            &["mis", "alignment"],
        ),
        (
            {
                let mut g = tiny_valid();
                g.f32_tensor("w", &[1], &[0.0]);
                g
            },
            &["`w`", "twice"],
        ),
    ];
    for (g, needles) in cases {
        expect_err(g.build(), needles);
    }
}

#[test]
fn absurd_counts_and_lengths() {
    // Tensor and metadata counts larger than the file could hold.
    let mut bytes = tiny_valid().build();
    bytes[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
    expect_err(bytes, &["tensor count"]);
    let mut bytes = tiny_valid().build();
    bytes[16..24].copy_from_slice(&(1u64 << 40).to_le_bytes());
    expect_err(bytes, &["metadata count"]);

    // A string length past the end.
    let mut g = GgufBytes::new();
    g.key("general.name", TYPE_STRING)
        .extend_from_slice(&(u64::MAX - 3).to_le_bytes());
    expect_err(g.build(), &["general.name", "remaining bytes"]);

    // An array count past the end (and a huge element count of 8-byte strings).
    let mut g = GgufBytes::new();
    let kv = g.key("tokenizer.ggml.tokens", TYPE_ARRAY);
    kv.extend_from_slice(&TYPE_STRING.to_le_bytes());
    kv.extend_from_slice(&(1u64 << 50).to_le_bytes());
    expect_err(g.build(), &["tokenizer.ggml.tokens", "remaining bytes"]);

    // Arrays nested too deep to be real.
    let mut g = GgufBytes::new();
    let kv = g.key("deep", TYPE_ARRAY);
    for _ in 0..64 {
        kv.extend_from_slice(&TYPE_ARRAY.to_le_bytes());
        kv.extend_from_slice(&1u64.to_le_bytes());
    }
    kv.extend_from_slice(&[0; 64]);
    expect_err(g.build(), &["deep", "nested"]);

    // An unknown value type, a duplicate key, invalid UTF-8, a bad alignment.
    let mut g = GgufBytes::new();
    g.key("t", 13).extend_from_slice(&[0; 8]);
    expect_err(g.build(), &["unknown value type id 13"]);
    let mut g = GgufBytes::new();
    g.kv_u32("a", 1).kv_u32("a", 2);
    expect_err(g.build(), &["`a` appears twice"]);
    let mut g = GgufBytes::new();
    g.key("s", TYPE_STRING);
    GgufBytes::string(&mut g.kv, "ok");
    let at = g.kv.len() - 1;
    g.kv[at] = 0xFF;
    expect_err(g.build(), &["UTF-8"]);
    let mut g = GgufBytes::new();
    g.kv_u32("general.alignment", 48);
    expect_err(g.build(), &["general.alignment", "power of two"]);
}

#[test]
fn missing_config_and_tokenizer_keys_are_errors() {
    let file = open(tiny_valid().build()).expect("valid");
    let msg = file.model_config().expect_err("no test.* keys").to_string();
    assert!(
        msg.contains("test.embedding_length") && msg.contains(LABEL),
        "{msg}"
    );
    let msg = tokenizer_from_gguf(file.metadata())
        .expect_err("no tokenizer")
        .to_string();
    assert!(msg.contains("tokenizer.ggml.model"), "{msg}");
}

/// Small deterministic RNG (xorshift64*), so the fuzz cases are the same on every run.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Opens `bytes` and reads everything reachable; any outcome but a panic is fine.
fn exercise(bytes: Vec<u8>) {
    if let Ok(file) = GgufFile::from_bytes(bytes, "fuzz.gguf") {
        for name in file.tensor_names() {
            let _ = file.read_f32(&name);
            let _ = file.read_raw(&name);
        }
        let _ = file.model_config();
        let _ = tokenizer_from_gguf(file.metadata());
    }
}

#[test]
fn fuzzed_files_never_panic() {
    let seeds = [
        std::fs::read(common::fixture("gguf/quants.gguf")).expect("quants.gguf"),
        std::fs::read(common::fixture("gguf/tiny_qwen2_tok.gguf")).expect("tiny_qwen2_tok.gguf"),
    ];
    let mut rng = Rng(0x5EED_1234_ABCD_0001);
    let mut cases = 0;
    for seed in &seeds {
        // The header (metadata and tensor infos) is where parsing happens; mutate it most.
        let header = GgufFile::from_bytes(seed.clone(), "seed")
            .expect("seed is valid")
            .data_start();
        for i in 0..1500 {
            let mut bytes = seed.clone();
            match i % 3 {
                0 => bytes.truncate(rng.below(header + 64)),
                1 => {
                    for _ in 0..1 + rng.below(4) {
                        let at = rng.below(header);
                        bytes[at] ^= 1 << rng.below(8);
                    }
                }
                _ => {
                    // Overwrite a little-endian u64 with an extreme value (lengths, counts, dims).
                    let at = rng.below(header.saturating_sub(8).max(1));
                    let v = [0, 1, u64::MAX, u64::MAX / 2, 1 << 32, rng.next()][rng.below(6)];
                    bytes[at..at + 8].copy_from_slice(&v.to_le_bytes());
                }
            }
            let result = std::panic::catch_unwind(|| exercise(bytes));
            assert!(result.is_ok(), "case {i} panicked");
            cases += 1;
        }
    }
    assert_eq!(cases, 3000);
}
