//! Whole-file output: every file the tool writes goes to a temporary name beside its
//! destination and is renamed over it when complete. A process killed mid-write, a full
//! disk or a failed write leaves the previous file (or none), never a half-written one.
//! Temporary names carry the process id and a counter, so two processes filling the same
//! cache never write into one temporary file; the last rename wins with a whole file.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// `dir/.name.<pid>.<n>.tmp`: hidden, unique, on the destination's file system.
fn temporary_for(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    path.with_file_name(format!(".{name}.{}.{n}.tmp", std::process::id()))
}

/// A file being written; [`AtomicFile::commit`] puts it in place. Dropped without a commit
/// (an error, a panic), its temporary file is removed.
pub struct AtomicFile {
    dest: PathBuf,
    tmp: PathBuf,
    file: Option<io::BufWriter<File>>,
}

impl AtomicFile {
    /// Starts writing `path`. Errors are those of creating the temporary file beside it.
    pub fn create(path: &Path) -> io::Result<Self> {
        let tmp = temporary_for(path);
        let file = File::create(&tmp)?;
        Ok(Self {
            dest: path.to_path_buf(),
            tmp,
            file: Some(io::BufWriter::new(file)),
        })
    }

    /// Flushes, closes and renames the file over its destination.
    pub fn commit(mut self) -> io::Result<()> {
        let file = self.file.take().expect("committed once");
        let result = file
            .into_inner()
            .map_err(|e| e.into_error())
            .and_then(|f| f.sync_data())
            .and_then(|()| std::fs::rename(&self.tmp, &self.dest));
        if result.is_err() {
            // The last bytes failed to reach the disk (full, or over a size limit).
            let _ = std::fs::remove_file(&self.tmp);
        }
        result
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.as_mut().expect("open until commit").write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.as_mut().expect("open until commit").flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Writes `bytes` to `path` whole, or not at all.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = AtomicFile::create(path)?;
    file.write_all(bytes)?;
    file.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("mentalqlm-atomic-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn leftovers(d: &Path) -> Vec<String> {
        std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect()
    }

    #[test]
    fn replaces_whole_files_and_leaves_no_temporaries() {
        let d = dir("whole");
        let p = d.join("report.json");
        write_atomic(&p, b"first").unwrap();
        write_atomic(&p, b"second, longer").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"second, longer");
        assert!(leftovers(&d).is_empty());
    }

    #[test]
    fn an_abandoned_write_keeps_the_old_file() {
        let d = dir("abandon");
        let p = d.join("cache.bin");
        write_atomic(&p, b"old").unwrap();
        {
            let mut f = AtomicFile::create(&p).unwrap();
            f.write_all(b"half of the new").unwrap();
            // Dropped without commit, as when an error or panic unwinds.
        }
        assert_eq!(std::fs::read(&p).unwrap(), b"old");
        assert!(leftovers(&d).is_empty());
    }

    #[test]
    fn concurrent_writers_never_mix() {
        let d = dir("race");
        let p = d.join("shared.bin");
        std::thread::scope(|s| {
            for t in 0..4u8 {
                let p = &p;
                s.spawn(move || {
                    for _ in 0..50 {
                        write_atomic(p, &vec![t; 10_000]).unwrap();
                    }
                });
            }
        });
        let bytes = std::fs::read(&p).unwrap();
        assert_eq!(bytes.len(), 10_000);
        assert!(bytes.iter().all(|&b| b == bytes[0]));
        assert!(leftovers(&d).is_empty());
    }

    #[test]
    fn an_unwritable_place_is_an_error() {
        let d = dir("unwritable");
        std::fs::write(d.join("file"), b"x").unwrap();
        // A parent that is a file: refused even for root.
        let err = write_atomic(&d.join("file/out.json"), b"y").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotADirectory);
        assert!(leftovers(&d).is_empty());
    }
}
