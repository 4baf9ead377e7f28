//! Where model files come from: a folder on disk, or files held in memory (picked or fetched
//! in the browser, where there is no file system). Every loader reads through [`Folder`], so
//! the native CLI and the web page share one loading path and one set of error messages.

use std::collections::BTreeMap;
use std::fs::File;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::Mmap;

use crate::FormatError;

/// The bytes of one file: memory-mapped on disk, or owned.
pub enum Storage {
    Mapped(Mmap),
    Owned(Arc<Vec<u8>>),
}

impl Deref for Storage {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Storage::Mapped(m) => m,
            Storage::Owned(v) => v,
        }
    }
}

impl Storage {
    /// Lets the OS drop the pages of `range` from this process's memory once they have been
    /// read (a mapped file's pages otherwise stay counted in its resident set until it is
    /// unmapped: a 13.5 GB f16 model read into Q8_0 codes would hold both). They stay in
    /// the page cache and are read again if touched. Owned bytes are left as they are.
    pub fn release(&self, range: std::ops::Range<usize>) {
        #[cfg(unix)]
        if let Storage::Mapped(m) = self {
            // SAFETY: the map is read-only and file-backed, so MADV_DONTNEED drops no data:
            // a later read faults the same bytes back in from the file. Errors (an unaligned
            // or empty range) only leave the pages where they are.
            let _ = unsafe {
                m.unchecked_advise_range(
                    memmap2::UncheckedAdvice::DontNeed,
                    range.start,
                    range.end.saturating_sub(range.start),
                )
            };
        }
        #[cfg(not(unix))]
        let _ = range;
    }

    /// Memory-maps `path` read-only.
    pub fn map(path: &Path) -> Result<Self, FormatError> {
        let file = File::open(path).map_err(|e| FormatError::io(path, e))?;
        // SAFETY: the map is read-only. If another process truncates the file while it is
        // mapped, reads fault (SIGBUS) as with any mmap; model files are not edited in place.
        let mmap = unsafe { Mmap::map(&file) }.map_err(|e| FormatError::io(path, e))?;
        Ok(Storage::Mapped(mmap))
    }
}

/// A model, adapter or head folder: on disk, or a set of named files in memory.
#[derive(Clone)]
pub enum Folder {
    Disk(PathBuf),
    Memory {
        /// Names the folder in error messages (e.g. "picked files").
        label: PathBuf,
        files: BTreeMap<String, Arc<Vec<u8>>>,
    },
}

impl Folder {
    pub fn disk(path: impl Into<PathBuf>) -> Self {
        Folder::Disk(path.into())
    }

    /// In-memory files; `label` stands for the folder in messages.
    pub fn memory(label: impl Into<PathBuf>) -> Self {
        Folder::Memory {
            label: label.into(),
            files: BTreeMap::new(),
        }
    }

    /// Adds (or replaces) an in-memory file. On a disk folder this is an error.
    pub fn insert(&mut self, name: &str, bytes: Vec<u8>) -> Result<(), FormatError> {
        match self {
            Folder::Memory { files, .. } => {
                files.insert(name.to_string(), Arc::new(bytes));
                Ok(())
            }
            Folder::Disk(dir) => Err(FormatError::io(
                dir.join(name),
                std::io::Error::other("cannot add files to a folder on disk"),
            )),
        }
    }

    /// The path that names `name` in messages (and on disk, the file itself).
    pub fn path(&self, name: &str) -> PathBuf {
        match self {
            Folder::Disk(dir) => dir.join(name),
            Folder::Memory { label, .. } => label.join(name),
        }
    }

    /// The folder itself, for messages.
    pub fn root(&self) -> &Path {
        match self {
            Folder::Disk(dir) => dir,
            Folder::Memory { label, .. } => label,
        }
    }

    pub fn has(&self, name: &str) -> bool {
        match self {
            Folder::Disk(dir) => dir.join(name).is_file(),
            Folder::Memory { files, .. } => files.contains_key(name),
        }
    }

    /// The names of the files in the folder (in memory: those added), sorted.
    pub fn names(&self) -> Vec<String> {
        match self {
            Folder::Disk(dir) => {
                let mut names: Vec<String> = std::fs::read_dir(dir)
                    .map(|d| {
                        d.filter_map(Result::ok)
                            .filter(|e| e.path().is_file())
                            .filter_map(|e| e.file_name().into_string().ok())
                            .collect()
                    })
                    .unwrap_or_default();
                names.sort();
                names
            }
            Folder::Memory { files, .. } => files.keys().cloned().collect(),
        }
    }

    /// A file's bytes: mapped on disk, shared in memory. A missing file is an I/O error
    /// naming it.
    pub fn open(&self, name: &str) -> Result<Storage, FormatError> {
        match self {
            Folder::Disk(dir) => Storage::map(&dir.join(name)),
            Folder::Memory { files, label } => files
                .get(name)
                .map(|b| Storage::Owned(Arc::clone(b)))
                .ok_or_else(|| {
                    FormatError::io(
                        label.join(name),
                        std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
                    )
                }),
        }
    }

    /// A file as UTF-8 text.
    pub fn read_string(&self, name: &str) -> Result<String, FormatError> {
        let bytes = self.open(name)?;
        String::from_utf8(bytes.to_vec()).map_err(|e| {
            FormatError::io(
                self.path(name),
                std::io::Error::new(std::io::ErrorKind::InvalidData, e),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_files_are_read_and_missing_ones_named() {
        let mut f = Folder::memory("picked");
        f.insert("config.json", b"{}".to_vec()).unwrap();
        assert!(f.has("config.json"));
        assert_eq!(f.read_string("config.json").unwrap(), "{}");
        let err = f.open("tokenizer.json").err().unwrap().to_string();
        assert!(err.contains("picked/tokenizer.json"), "{err}");
        f.insert("bad.json", vec![0xff, 0xfe]).unwrap();
        let err = f.read_string("bad.json").unwrap_err().to_string();
        assert!(err.contains("bad.json"), "{err}");
    }
}
