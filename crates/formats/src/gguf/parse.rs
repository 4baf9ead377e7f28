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

use super::value::{GgufArray, GgufValue, GgufValueType};
use crate::dequant::GgmlType;

/// The versions read here. v1 used 32-bit counts; v3 only added big-endian files, which
/// show up as a byte-swapped version number and are rejected with it.
pub const SUPPORTED_VERSIONS: [u32; 2] = [2, 3];

/// ggml's `GGML_MAX_DIMS`.
pub const MAX_DIMS: usize = 4;

/// Nested arrays deeper than this are rejected: real files nest at most once, and a
/// crafted file of nested array headers must not exhaust the stack.
const MAX_ARRAY_DEPTH: usize = 8;

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

/// One tensor as the file describes it, validated against the file's size.
#[derive(Debug, Clone, PartialEq)]
pub struct GgufTensorInfo {
    pub name: String,
    /// GGUF order (`ne`): innermost, contiguous dimension first. Reverse it for PyTorch order.
    pub dims: Vec<usize>,
    pub ggml_type: GgmlType,
    /// Byte offset of the data from the start of the data section, as stored.
    pub offset: usize,
    pub n_elements: usize,
    pub n_bytes: usize,
}

impl GgufTensorInfo {
    /// Row-major shape, outermost dimension first (PyTorch order: `ne` reversed).
    pub fn shape(&self) -> Vec<usize> {
        self.dims.iter().rev().copied().collect()
    }
}

pub struct Parsed {
    pub version: u32,
    pub metadata: Vec<(String, GgufValue)>,
    pub tensors: Vec<GgufTensorInfo>,
    pub alignment: usize,
    /// Absolute byte offset where the data section starts.
    pub data_start: usize,
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(ParseError::file(format!(
                "truncated: {what} at byte {} needs {n} bytes, only {} remain",
                self.pos,
                self.remaining()
            )));
        }
        let bytes = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(bytes)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// A u64 count or length, rejected unless `count * min_size` bytes could still follow.
    fn count(&mut self, min_size: usize, what: &str) -> Result<usize> {
        let at = self.pos;
        let n = self.u64(what)?;
        let fits = usize::try_from(n).ok().filter(|&n| {
            n.checked_mul(min_size)
                .is_some_and(|b| b <= self.remaining())
        });
        fits.ok_or_else(|| {
            ParseError::file(format!(
                "{what} at byte {at}: length or count {n} is more than the {} remaining bytes can hold \
                 (truncated or corrupt file)",
                self.remaining()
            ))
        })
    }

    fn string(&mut self, what: &str) -> Result<String> {
        let len = self.count(1, what)?;
        let at = self.pos;
        let bytes = self.take(len, what)?;
        String::from_utf8(bytes.to_vec())
            .map_err(|e| ParseError::file(format!("{what} at byte {at} is not valid UTF-8: {e}")))
    }

    fn value_type(&mut self, what: &str) -> Result<GgufValueType> {
        let at = self.pos;
        let id = self.u32(what)?;
        GgufValueType::from_id(id).ok_or_else(|| {
            ParseError::file(format!("{what} at byte {at}: unknown value type id {id}"))
        })
    }

    fn value(&mut self, ty: GgufValueType, key: &str, depth: usize) -> Result<GgufValue> {
        let what = || format!("value of `{key}`");
        Ok(match ty {
            GgufValueType::U8 => GgufValue::U8(self.array::<1>(&what())?[0]),
            GgufValueType::I8 => GgufValue::I8(i8::from_le_bytes(self.array(&what())?)),
            GgufValueType::U16 => GgufValue::U16(u16::from_le_bytes(self.array(&what())?)),
            GgufValueType::I16 => GgufValue::I16(i16::from_le_bytes(self.array(&what())?)),
            GgufValueType::U32 => GgufValue::U32(self.u32(&what())?),
            GgufValueType::I32 => GgufValue::I32(i32::from_le_bytes(self.array(&what())?)),
            GgufValueType::F32 => GgufValue::F32(f32::from_le_bytes(self.array(&what())?)),
            GgufValueType::U64 => GgufValue::U64(self.u64(&what())?),
            GgufValueType::I64 => GgufValue::I64(i64::from_le_bytes(self.array(&what())?)),
            GgufValueType::F64 => GgufValue::F64(f64::from_le_bytes(self.array(&what())?)),
            // Any non-zero byte is true, as gguf.c reads it.
            GgufValueType::Bool => GgufValue::Bool(self.array::<1>(&what())?[0] != 0),
            GgufValueType::String => GgufValue::String(self.string(&what())?),
            GgufValueType::Array => {
                if depth >= MAX_ARRAY_DEPTH {
                    return Err(ParseError::file(format!(
                        "{}: arrays nested deeper than {MAX_ARRAY_DEPTH}",
                        what()
                    )));
                }
                let elem = self.value_type(&format!("element type of `{key}`"))?;
                let n = self.count(elem.min_size(), &format!("element count of `{key}`"))?;
                GgufValue::Array(self.array_items(elem, n, key, depth + 1)?)
            }
        })
    }

    /// `n` elements of type `elem`; `count` has already checked that they can fit.
    fn array_items(
        &mut self,
        elem: GgufValueType,
        n: usize,
        key: &str,
        depth: usize,
    ) -> Result<GgufArray> {
        let what = format!("elements of `{key}`");
        Ok(match elem {
            GgufValueType::U8 => GgufArray::U8(self.take(n, &what)?.to_vec()),
            GgufValueType::I8 => GgufArray::I8(self.numbers(n, &what, i8::from_le_bytes)?),
            GgufValueType::U16 => GgufArray::U16(self.numbers(n, &what, u16::from_le_bytes)?),
            GgufValueType::I16 => GgufArray::I16(self.numbers(n, &what, i16::from_le_bytes)?),
            GgufValueType::U32 => GgufArray::U32(self.numbers(n, &what, u32::from_le_bytes)?),
            GgufValueType::I32 => GgufArray::I32(self.numbers(n, &what, i32::from_le_bytes)?),
            GgufValueType::F32 => GgufArray::F32(self.numbers(n, &what, f32::from_le_bytes)?),
            GgufValueType::U64 => GgufArray::U64(self.numbers(n, &what, u64::from_le_bytes)?),
            GgufValueType::I64 => GgufArray::I64(self.numbers(n, &what, i64::from_le_bytes)?),
            GgufValueType::F64 => GgufArray::F64(self.numbers(n, &what, f64::from_le_bytes)?),
            GgufValueType::Bool => {
                GgufArray::Bool(self.take(n, &what)?.iter().map(|&b| b != 0).collect())
            }
            GgufValueType::String => {
                let mut items = Vec::with_capacity(n.min(PREALLOC_LIMIT));
                for _ in 0..n {
                    items.push(self.string(&what)?);
                }
                GgufArray::String(items)
            }
            GgufValueType::Array => {
                let mut items = Vec::with_capacity(n.min(PREALLOC_LIMIT));
                for _ in 0..n {
                    match self.value(GgufValueType::Array, key, depth)? {
                        GgufValue::Array(a) => items.push(a),
                        // `value` returns the variant of the type it was asked for.
                        other => {
                            return Err(ParseError::file(format!(
                                "{what}: expected an array, read {}",
                                other.describe()
                            )));
                        }
                    }
                }
                GgufArray::Array(items)
            }
        })
    }

    /// `n` little-endian numbers of `N` bytes each.
    fn numbers<const N: usize, T>(
        &mut self,
        n: usize,
        what: &str,
        from_le: fn([u8; N]) -> T,
    ) -> Result<Vec<T>> {
        let len = n
            .checked_mul(N)
            .ok_or_else(|| ParseError::file(format!("{what}: size overflows")))?;
        let bytes = self.take(len, what)?;
        Ok(bytes
            .chunks_exact(N)
            .map(|b| {
                let mut a = [0u8; N];
                a.copy_from_slice(b);
                from_le(a)
            })
            .collect())
    }
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

fn tensor_info(c: &mut Cursor<'_>, i: usize, alignment: usize) -> Result<GgufTensorInfo> {
    let name = c.string(&format!("name of tensor {i}"))?;
    let err = |reason: String| ParseError::tensor(&name, reason);
    let n_dims = c.u32(&format!("dimension count of `{name}`"))? as usize;
    if n_dims > MAX_DIMS {
        return Err(err(format!(
            "{n_dims} dimensions, at most {MAX_DIMS} are allowed"
        )));
    }
    let mut dims = Vec::with_capacity(n_dims);
    for _ in 0..n_dims {
        let d = c.u64(&format!("dimensions of `{name}`"))?;
        dims.push(
            usize::try_from(d).map_err(|_| err(format!("dimension {d} does not fit in memory")))?,
        );
    }
    let type_id = c.u32(&format!("type of `{name}`"))?;
    let ggml_type =
        GgmlType::from_id(type_id).ok_or_else(|| err(format!("unknown ggml type id {type_id}")))?;
    let offset = c.u64(&format!("data offset of `{name}`"))?;
    let offset = usize::try_from(offset)
        .map_err(|_| err(format!("data offset {offset} does not fit in memory")))?;
    if offset % alignment != 0 {
        return Err(err(format!(
            "data offset {offset} is not a multiple of the alignment {alignment}"
        )));
    }
    let n_elements = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| {
            err(format!(
                "shape {dims:?} has more elements than fit in memory"
            ))
        })?;
    // Blocks never straddle rows: ggml requires the row length to be whole blocks.
    let row = dims.first().copied().unwrap_or(1);
    if row % ggml_type.block_size() != 0 {
        return Err(err(format!(
            "row length {row} is not a multiple of the {ggml_type} block size {}",
            ggml_type.block_size()
        )));
    }
    let n_bytes = ggml_type
        .bytes_for(n_elements as u64)
        .and_then(|b| usize::try_from(b).ok())
        .ok_or_else(|| {
            err(format!(
                "{n_elements} elements of {ggml_type} overflow the byte size"
            ))
        })?;
    Ok(GgufTensorInfo {
        name,
        dims,
        ggml_type,
        offset,
        n_elements,
        n_bytes,
    })
}
