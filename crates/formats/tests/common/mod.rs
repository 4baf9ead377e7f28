//! Paths, the default model, and a GGUF byte writer for the error tests.
#![allow(dead_code)] // each test binary uses a different part

use std::path::PathBuf;

/// The workspace root (fixtures and `models/` live there).
pub fn root() -> PathBuf {
    manifest_dir().join("../..")
}

pub fn fixture(rel: &str) -> PathBuf {
    root().join("tests/fixtures").join(rel)
}

pub fn read_json(rel: &str) -> serde_json::Value {
    let path = fixture(rel);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The default model. Its absence fails the test: a missing model must not pass silently.
pub fn default_model() -> PathBuf {
    let path = root().join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        path.is_file(),
        "{} is missing: run scripts/setup-model.sh (it fetches the default model, 98 MB)",
        path.display()
    );
    path
}

/// A little-endian GGUF writer for hand-made (and deliberately broken) files.
pub struct GgufBytes {
    pub version: u32,
    pub kv: Vec<u8>,
    pub n_kv: u64,
    pub infos: Vec<u8>,
    pub n_tensors: u64,
    pub data: Vec<u8>,
    pub alignment: usize,
}

pub const TYPE_U32: u32 = 4;
pub const TYPE_I32: u32 = 5;
pub const TYPE_BOOL: u32 = 7;
pub const TYPE_STRING: u32 = 8;
pub const TYPE_ARRAY: u32 = 9;

impl GgufBytes {
    pub fn new() -> Self {
        Self {
            version: 3,
            kv: Vec::new(),
            n_kv: 0,
            infos: Vec::new(),
            n_tensors: 0,
            data: Vec::new(),
            alignment: 32,
        }
    }

    pub fn string(buf: &mut Vec<u8>, s: &str) {
        buf.extend_from_slice(&(s.len() as u64).to_le_bytes());
        buf.extend_from_slice(s.as_bytes());
    }

    /// A key with its type tag; the caller appends the value bytes to `self.kv`.
    pub fn key(&mut self, key: &str, ty: u32) -> &mut Vec<u8> {
        Self::string(&mut self.kv, key);
        self.kv.extend_from_slice(&ty.to_le_bytes());
        self.n_kv += 1;
        &mut self.kv
    }

    pub fn kv_u32(&mut self, key: &str, v: u32) -> &mut Self {
        self.key(key, TYPE_U32).extend_from_slice(&v.to_le_bytes());
        self
    }

    pub fn kv_str(&mut self, key: &str, v: &str) -> &mut Self {
        self.key(key, TYPE_STRING);
        Self::string(&mut self.kv, v);
        self
    }

    pub fn kv_bool(&mut self, key: &str, v: bool) -> &mut Self {
        self.key(key, TYPE_BOOL).push(u8::from(v));
        self
    }

    pub fn kv_str_array(&mut self, key: &str, items: &[&str]) -> &mut Self {
        let kv = self.key(key, TYPE_ARRAY);
        kv.extend_from_slice(&TYPE_STRING.to_le_bytes());
        kv.extend_from_slice(&(items.len() as u64).to_le_bytes());
        for item in items {
            Self::string(&mut self.kv, item);
        }
        self
    }

    pub fn kv_i32_array(&mut self, key: &str, items: &[i32]) -> &mut Self {
        let kv = self.key(key, TYPE_ARRAY);
        kv.extend_from_slice(&TYPE_I32.to_le_bytes());
        kv.extend_from_slice(&(items.len() as u64).to_le_bytes());
        for item in items {
            kv.extend_from_slice(&item.to_le_bytes());
        }
        self
    }

    /// A tensor info; `dims` in GGUF order (innermost first).
    pub fn tensor(&mut self, name: &str, dims: &[u64], type_id: u32, offset: u64) -> &mut Self {
        Self::string(&mut self.infos, name);
        self.infos
            .extend_from_slice(&(dims.len() as u32).to_le_bytes());
        for d in dims {
            self.infos.extend_from_slice(&d.to_le_bytes());
        }
        self.infos.extend_from_slice(&type_id.to_le_bytes());
        self.infos.extend_from_slice(&offset.to_le_bytes());
        self.n_tensors += 1;
        self
    }

    /// An F32 tensor of `values` appended to the data section.
    pub fn f32_tensor(&mut self, name: &str, dims: &[u64], values: &[f32]) -> &mut Self {
        let offset = self.data.len().next_multiple_of(self.alignment);
        self.data.resize(offset, 0);
        for v in values {
            self.data.extend_from_slice(&v.to_le_bytes());
        }
        self.tensor(name, dims, 0, offset as u64)
    }

    pub fn build(&self) -> Vec<u8> {
        let mut out = b"GGUF".to_vec();
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(&self.n_tensors.to_le_bytes());
        out.extend_from_slice(&self.n_kv.to_le_bytes());
        out.extend_from_slice(&self.kv);
        out.extend_from_slice(&self.infos);
        out.resize(out.len().next_multiple_of(self.alignment), 0);
        out.extend_from_slice(&self.data);
        out
    }
}

/// A tiny valid file: one metadata string and one 2x3 F32 tensor `w`.
pub fn tiny_valid() -> GgufBytes {
    let mut g = GgufBytes::new();
    g.kv_str("general.architecture", "test");
    g.f32_tensor("w", &[3, 2], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    g
}

/// The package folder, read when the test runs (cargo sets it), so a test binary built in
/// another clone sharing the target folder still reads this clone's fixtures.
fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}
