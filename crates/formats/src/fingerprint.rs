//! A model's sha256, which binds trained weights (a shipped classifier) to the base model
//! they were trained on: a GGUF or safetensors file's own digest, or for a HF folder a
//! digest over its weight and config files.

use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::{Folder, FormatError};

/// Lowercase hex of the sha256 of `bytes`.
///
/// Fed in 64 KiB pieces, which costs nothing natively: in a browser, a wasm function runs in
/// the baseline compiler's code until it is called again after its optimized code is ready,
/// so one call over a whole model (100 MiB and more) hashed about 5× slower.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let mut hasher = Sha256::new();
    for piece in bytes.chunks(1 << 16) {
        hasher.update(piece);
    }
    hex(&hasher.finalize())
}

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The sha256 of a file, read in 1 MiB blocks (a model does not need to fit in memory).
pub fn sha256_file(path: &Path) -> Result<String, FormatError> {
    let mut file = std::fs::File::open(path).map_err(|e| FormatError::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(|e| FormatError::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

/// A model's fingerprint: the sha256 of a model file (`.gguf`, `.safetensors`), or for a
/// folder the sha256 of the lines `<name> <sha256>` of its `config.json` and weight files
/// (`*.safetensors`, `*.gguf`), sorted by name.
pub fn model_sha256(path: &Path) -> Result<String, FormatError> {
    if !path.is_dir() {
        return sha256_file(path);
    }
    folder_sha256(&Folder::disk(path))
}

/// [`model_sha256`] of a model held in a [`Folder`] (on disk, or the files a browser user
/// picked): a folder with a `config.json` is digested as a HF folder; one holding a single
/// `.gguf` and no `config.json`, as that file (the page puts the one file it was given in a
/// folder of its own).
pub fn folder_sha256(folder: &Folder) -> Result<String, FormatError> {
    let names: Vec<String> = folder
        .names()
        .into_iter()
        .filter(|n| n == "config.json" || n.ends_with(".safetensors") || n.ends_with(".gguf"))
        .collect();
    if let [only] = names.as_slice()
        && only.ends_with(".gguf")
    {
        return Ok(sha256_hex(&folder.open(only)?));
    }
    let mut lines = String::new();
    for name in names {
        // Mapped on disk, shared in memory: no copy either way.
        let digest = sha256_hex(&folder.open(&name)?);
        lines.push_str(&format!("{name} {digest}\n"));
    }
    Ok(sha256_hex(lines.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digest() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn digest_fed_in_pieces_equals_one_pass() {
        // Three and a half pieces: a lost or repeated piece changes the digest.
        let bytes: Vec<u8> = (0..(7 << 15) + 5).map(|i| (i * 31 % 251) as u8).collect();
        assert_eq!(sha256_hex(&bytes), hex(&Sha256::digest(&bytes)));
        assert_ne!(sha256_hex(&bytes), sha256_hex(&bytes[..bytes.len() - 1]));
    }

    #[test]
    fn file_digest_matches_bytes_and_folder_digest_changes_with_a_weight() {
        let dir = std::env::temp_dir().join(format!("mentalqlm-fp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("model.safetensors"), b"weights").unwrap();
        std::fs::write(dir.join("config.json"), b"{}").unwrap();
        std::fs::write(dir.join("README.md"), b"ignored").unwrap();
        assert_eq!(
            sha256_file(&dir.join("model.safetensors")).unwrap(),
            sha256_hex(b"weights")
        );
        let before = model_sha256(&dir).unwrap();
        std::fs::write(dir.join("README.md"), b"still ignored").unwrap();
        assert_eq!(model_sha256(&dir).unwrap(), before);
        std::fs::write(dir.join("model.safetensors"), b"other weights").unwrap();
        assert_ne!(model_sha256(&dir).unwrap(), before);
        // The same files picked in a browser give the same digest.
        let mut picked = Folder::memory("picked");
        for name in ["model.safetensors", "config.json", "README.md"] {
            picked
                .insert(name, std::fs::read(dir.join(name)).unwrap())
                .unwrap();
        }
        assert_eq!(folder_sha256(&picked).unwrap(), model_sha256(&dir).unwrap());
        let mut gguf = Folder::memory("picked");
        gguf.insert("model.gguf", b"codes".to_vec()).unwrap();
        assert_eq!(folder_sha256(&gguf).unwrap(), sha256_hex(b"codes"));
        let missing = sha256_file(&dir.join("absent.gguf"))
            .unwrap_err()
            .to_string();
        assert!(missing.contains("absent.gguf"), "{missing}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
