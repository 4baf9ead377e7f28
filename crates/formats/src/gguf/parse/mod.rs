//! The GGUF header, metadata and tensor infos, parsed from a byte slice.
//!
//! Layout (little-endian, gguf.h / ggml docs/gguf.md):
//! `"GGUF" u32 version u64 n_tensors u64 n_kv`, then `n_kv` times `string key, u32 type,
//! value`, then `n_tensors` times `string name, u32 n_dims, u64 ne[n_dims], u32 type,
//! u64 offset`, then padding to `general.alignment`, then the tensor data.
//! Strings are `u64 len` + UTF-8 bytes; arrays are `u32 elem_type, u64 count, elems`.
//!
//! The input is untrusted: every length and count is checked against the bytes that
//! remain before anything is allocated, and all offset arithmetic is checked.
//!
//! This file reads the header and the metadata and checks the whole layout; `cursor.rs`
//! reads the typed values (numbers, strings, nested arrays) from the bytes, and
//! `tensor_info.rs` reads and checks one tensor's info.

mod cursor;
mod tensor_info;

use self::cursor::Cursor;
pub use self::tensor_info::GgufTensorInfo;
use self::tensor_info::tensor_info;
use super::value::GgufValue;

/// The versions read here. v1 used 32-bit counts; v3 only added big-endian files, which
/// show up as a byte-swapped version number and are rejected with it.
pub const SUPPORTED_VERSIONS: [u32; 2] = [2, 3];

/// ggml's `GGML_MAX_DIMS`.
pub const MAX_DIMS: usize = 4;

pub const DEFAULT_ALIGNMENT: usize = 32;

/// Entry and tensor lists reserve at most this many slots up front; past it they grow as
/// entries are actually read, so a forged count cannot make us allocate ahead of the data.
const PREALLOC_LIMIT: usize = 4096;

/// A parse failure. `tensor` is set when the failure is about one tensor's info.
#[derive(Debug)]
pub struct ParseError {
    pub tensor: Option<String>,
    pub reason: String,
}

impl ParseError {
    fn file(reason: impl Into<String>) -> Self {
        Self {
            tensor: None,
            reason: reason.into(),
        }
    }
    fn tensor(name: &str, reason: impl Into<String>) -> Self {
        Self {
            tensor: Some(name.to_string()),
            reason: reason.into(),
        }
    }
}

type Result<T> = std::result::Result<T, ParseError>;

pub struct Parsed {
    pub version: u32,
    pub metadata: Vec<(String, GgufValue)>,
    pub tensors: Vec<GgufTensorInfo>,
    pub alignment: usize,
    /// Absolute byte offset where the data section starts.
    pub data_start: usize,
}

/// Parses everything before the tensor data and checks every tensor's byte range
/// against `buf.len()`.
pub fn parse(buf: &[u8]) -> Result<Parsed> {
    let mut c = Cursor { buf, pos: 0 };
    if buf.len() < 4 {
        return Err(ParseError::file(format!(
            "file is {} bytes, too short for the GGUF magic",
            buf.len()
        )));
    }
    let magic = c.array::<4>("magic")?;
    if &magic != b"GGUF" {
        return Err(ParseError::file(format!(
            "bad magic {magic:02x?}, expected \"GGUF\" (47 47 55 46)"
        )));
    }
    let version = c.u32("version")?;
    if !SUPPORTED_VERSIONS.contains(&version) {
        let hint = if SUPPORTED_VERSIONS.contains(&version.swap_bytes()) {
            " (a big-endian file)"
        } else {
            ""
        };
        return Err(ParseError::file(format!(
            "unsupported GGUF version {version}{hint}; versions 2 and 3 (little-endian) are read"
        )));
    }
    // Each tensor info is at least name length + n_dims + type + offset = 24 bytes; each
    // metadata entry at least key length + type + a 1-byte value = 13 bytes.
    let n_tensors = c.count(24, "tensor count")?;
    let n_kv = c.count(13, "metadata count")?;

    let mut metadata: Vec<(String, GgufValue)> = Vec::with_capacity(n_kv.min(PREALLOC_LIMIT));
    let mut seen = std::collections::HashSet::with_capacity(n_kv.min(PREALLOC_LIMIT));
    for i in 0..n_kv {
        let key = c.string(&format!("key of metadata entry {i}"))?;
        let ty = c.value_type(&format!("type of `{key}`"))?;
        let value = c.value(ty, &key, 0)?;
        if !seen.insert(key.clone()) {
            return Err(ParseError::file(format!(
                "metadata key `{key}` appears twice"
            )));
        }
        metadata.push((key, value));
    }
    let alignment = alignment(&metadata)?;

    let mut tensors: Vec<GgufTensorInfo> = Vec::with_capacity(n_tensors.min(PREALLOC_LIMIT));
    let mut names = std::collections::HashSet::with_capacity(n_tensors.min(PREALLOC_LIMIT));
    for i in 0..n_tensors {
        let info = tensor_info(&mut c, i, alignment)?;
        if !names.insert(info.name.clone()) {
            return Err(ParseError::tensor(&info.name, "the name appears twice"));
        }
        tensors.push(info);
    }

    let data_start = c
        .pos
        .checked_next_multiple_of(alignment)
        .ok_or_else(|| ParseError::file("data offset overflows"))?;
    let data_len = buf.len().saturating_sub(data_start);
    for t in &tensors {
        let end = t.offset.checked_add(t.n_bytes);
        if end.is_none_or(|end| end > data_len) {
            return Err(ParseError::tensor(
                &t.name,
                format!(
                    "its {} bytes at data offset {} (file offset {}) run past the end of the file \
                     ({} bytes; the data section starts at {data_start})",
                    t.n_bytes,
                    t.offset,
                    data_start as u128 + t.offset as u128,
                    buf.len()
                ),
            ));
        }
    }
    Ok(Parsed {
        version,
        metadata,
        tensors,
        alignment,
        data_start,
    })
}

/// `general.alignment`: a power of two, 32 when absent (as in gguf.c).
fn alignment(metadata: &[(String, GgufValue)]) -> Result<usize> {
    let Some((_, value)) = metadata.iter().find(|(k, _)| k == "general.alignment") else {
        return Ok(DEFAULT_ALIGNMENT);
    };
    let n = value.as_integer().ok_or_else(|| {
        ParseError::file(format!(
            "`general.alignment` is a {}, expected an integer",
            value.describe()
        ))
    })?;
    usize::try_from(n)
        .ok()
        .filter(|n| n.is_power_of_two())
        .ok_or_else(|| {
            ParseError::file(format!(
                "`general.alignment` is {n}, expected a power of two"
            ))
        })
}
