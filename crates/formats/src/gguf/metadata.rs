//! The key-value metadata of a GGUF file, with typed getters.
//!
//! Getters return `Ok(None)` when a key is absent and an error naming the key and file
//! when it is present with the wrong type or an out-of-range value, so that a malformed
//! optional key is reported instead of silently replaced by a default.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::value::{GgufArray, GgufValue};
use crate::FormatError;

#[derive(Debug, Clone)]
pub struct GgufMetadata {
    path: PathBuf,
    /// In file order.
    entries: Vec<(String, GgufValue)>,
    index: HashMap<String, usize>,
}

impl GgufMetadata {
    pub(crate) fn new(path: PathBuf, entries: Vec<(String, GgufValue)>) -> Self {
        let index = entries
            .iter()
            .enumerate()
            .map(|(i, (k, _))| (k.clone(), i))
            .collect();
        Self {
            path,
            entries,
            index,
        }
    }

    /// The file the metadata came from (or the label of an in-memory file).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// All entries in file order.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &GgufValue)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    pub fn contains(&self, key: &str) -> bool {
        self.index.contains_key(key)
    }

    pub fn get(&self, key: &str) -> Option<&GgufValue> {
        self.index.get(key).map(|&i| &self.entries[i].1)
    }

    /// An error about `key`, naming the file.
    pub fn error(&self, key: &str, reason: impl std::fmt::Display) -> FormatError {
        FormatError::Gguf {
            path: self.path.clone(),
            reason: format!("metadata `{key}`: {reason}"),
        }
    }

    fn typed<'a, T>(
        &'a self,
        key: &str,
        expected: &str,
        f: impl FnOnce(&'a GgufValue) -> Option<T>,
    ) -> Result<Option<T>, FormatError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => f(v).map(Some).ok_or_else(|| {
                self.error(
                    key,
                    format!("expected {expected}, found {}", v.describe_value()),
                )
            }),
        }
    }

    /// Any integer type whose value fits in `u32`.
    pub fn get_u32(&self, key: &str) -> Result<Option<u32>, FormatError> {
        self.typed(key, "an integer in u32 range", |v| {
            v.as_integer().and_then(|n| u32::try_from(n).ok())
        })
    }

    /// Any integer type whose value fits in `u64`.
    pub fn get_u64(&self, key: &str) -> Result<Option<u64>, FormatError> {
        self.typed(key, "an integer in u64 range", |v| {
            v.as_integer().and_then(|n| u64::try_from(n).ok())
        })
    }

    /// Any integer type whose value fits in `i64`.
    pub fn get_i64(&self, key: &str) -> Result<Option<i64>, FormatError> {
        self.typed(key, "an integer in i64 range", |v| {
            v.as_integer().and_then(|n| i64::try_from(n).ok())
        })
    }

    /// An f32 or f64 (narrowed to f32).
    pub fn get_f32(&self, key: &str) -> Result<Option<f32>, FormatError> {
        self.typed(key, "a float", |v| v.as_float().map(|x| x as f32))
    }

    pub fn get_f64(&self, key: &str) -> Result<Option<f64>, FormatError> {
        self.typed(key, "a float", |v| v.as_float())
    }

    pub fn get_bool(&self, key: &str) -> Result<Option<bool>, FormatError> {
        self.typed(key, "a bool", |v| v.as_bool())
    }

    pub fn get_str(&self, key: &str) -> Result<Option<&str>, FormatError> {
        self.typed(key, "a string", |v| v.as_str())
    }

    pub fn get_array(&self, key: &str) -> Result<Option<&GgufArray>, FormatError> {
        self.typed(key, "an array", |v| v.as_array())
    }

    /// An array of strings (`tokenizer.ggml.tokens`, `tokenizer.ggml.merges`).
    pub fn get_str_array(&self, key: &str) -> Result<Option<&[String]>, FormatError> {
        self.typed(key, "an array of strings", |v| {
            v.as_array().and_then(|a| a.as_strings())
        })
    }

    /// An array of any integer type whose values all fit in `i32` (`tokenizer.ggml.token_type`).
    pub fn get_i32_array(&self, key: &str) -> Result<Option<Vec<i32>>, FormatError> {
        self.typed(key, "an array of integers in i32 range", |v| {
            v.as_array()?
                .to_integers()?
                .into_iter()
                .map(|n| i32::try_from(n).ok())
                .collect()
        })
    }

    /// An array of f32 or f64 values (`tokenizer.ggml.scores`).
    pub fn get_f32_array(&self, key: &str) -> Result<Option<Vec<f32>>, FormatError> {
        self.typed(key, "an array of floats", |v| {
            Some(
                v.as_array()?
                    .to_floats()?
                    .into_iter()
                    .map(|x| x as f32)
                    .collect(),
            )
        })
    }

    pub fn require_u32(&self, key: &str) -> Result<u32, FormatError> {
        self.get_u32(key)?.ok_or_else(|| self.missing(key))
    }

    pub fn require_f32(&self, key: &str) -> Result<f32, FormatError> {
        self.get_f32(key)?.ok_or_else(|| self.missing(key))
    }

    pub fn require_str(&self, key: &str) -> Result<&str, FormatError> {
        self.get_str(key)?.ok_or_else(|| self.missing(key))
    }

    pub fn require_str_array(&self, key: &str) -> Result<&[String], FormatError> {
        self.get_str_array(key)?.ok_or_else(|| self.missing(key))
    }

    fn missing(&self, key: &str) -> FormatError {
        self.error(key, "required key is missing")
    }
}

impl GgufValue {
    /// The type and, for scalars, the value: `u32 7`, `string "llama"`, `array of 3 i32`.
    fn describe_value(&self) -> String {
        let ty = self.value_type();
        match self {
            GgufValue::Array(_) => self.describe(),
            GgufValue::String(s) if s.len() > 40 => format!("a string of {} bytes", s.len()),
            GgufValue::String(s) => format!("string {s:?}"),
            GgufValue::Bool(b) => format!("bool {b}"),
            GgufValue::F32(x) => format!("f32 {x}"),
            GgufValue::F64(x) => format!("f64 {x}"),
            // Every remaining variant is an integer.
            other => match other.as_integer() {
                Some(n) => format!("{ty} {n}"),
                None => ty.to_string(),
            },
        }
    }
}
