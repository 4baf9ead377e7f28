//! The cursor over an untrusted GGUF byte slice: little-endian numbers, strings and
//! (nested) metadata values, each length and count checked against the bytes that remain.

use super::{PREALLOC_LIMIT, ParseError, Result};
use crate::gguf::value::{GgufArray, GgufValue, GgufValueType};

/// Nested arrays deeper than this are rejected: real files nest at most once, and a
/// crafted file of nested array headers must not exhaust the stack.
const MAX_ARRAY_DEPTH: usize = 8;

pub(super) struct Cursor<'a> {
    pub(super) buf: &'a [u8],
    pub(super) pos: usize,
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

    pub(super) fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    pub(super) fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    pub(super) fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// A u64 count or length, rejected unless `count * min_size` bytes could still follow.
    pub(super) fn count(&mut self, min_size: usize, what: &str) -> Result<usize> {
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

    pub(super) fn string(&mut self, what: &str) -> Result<String> {
        let len = self.count(1, what)?;
        let at = self.pos;
        let bytes = self.take(len, what)?;
        String::from_utf8(bytes.to_vec())
            .map_err(|e| ParseError::file(format!("{what} at byte {at} is not valid UTF-8: {e}")))
    }

    pub(super) fn value_type(&mut self, what: &str) -> Result<GgufValueType> {
        let at = self.pos;
        let id = self.u32(what)?;
        GgufValueType::from_id(id).ok_or_else(|| {
            ParseError::file(format!("{what} at byte {at}: unknown value type id {id}"))
        })
    }

    pub(super) fn value(
        &mut self,
        ty: GgufValueType,
        key: &str,
        depth: usize,
    ) -> Result<GgufValue> {
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
