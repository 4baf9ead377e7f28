//! The worker: runs cases in this process and reports each on stdout, one line per event,
//! so that the supervisor knows which case was running when the process died or hung.
//!
//! ```text
//! start <case>
//! ok <case>          the reader accepted the input
//! err <case>         a clean rejection that names one of the input's files
//! unnamed <case> <message as JSON>
//! panic <case> <message as JSON>
//! ```

use std::io::Write;
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::Mutex;

use formats::Folder;

use crate::case::Case;
use crate::targets::{Context, Input, Target, names_a_file, run};

/// What one case did, in process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Accepted,
    /// A clean error naming one of the input's files.
    Rejected(String),
    Unnamed(String),
    Panic(String),
}

static PANIC: Mutex<Option<String>> = Mutex::new(None);

/// Replaces the panic hook with one that keeps the message and its place for the report
/// (instead of printing it), so that a worker's stderr stays readable.
pub fn quiet_panics() {
    std::panic::set_hook(Box::new(|info| {
        let msg = match info.payload().downcast_ref::<&str>() {
            Some(s) => s.to_string(),
            None => info
                .payload()
                .downcast_ref::<String>()
                .cloned()
                .unwrap_or_else(|| "(non-string panic)".into()),
        };
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        if let Ok(mut slot) = PANIC.lock() {
            *slot = Some(format!("{msg}{at}"));
        }
    }));
}

/// Writes `case`'s files into `scratch` (only for readers that take a path) and runs the
/// reader.
pub fn run_case(target: &Target, case: &Case, ctx: &Context, scratch: &Path) -> Outcome {
    let mut folder = Folder::memory("fuzz");
    for f in &case.files {
        if target.kind.reads_disk()
            && let Err(e) = std::fs::write(scratch.join(&f.name), &f.bytes)
        {
            return Outcome::Panic(format!("harness: cannot write {}: {e}", f.name));
        }
        if let Err(e) = folder.insert(&f.name, f.bytes.clone()) {
            return Outcome::Panic(format!("harness: {e}"));
        }
    }
    let input = Input {
        folder,
        disk: scratch,
    };
    match std::panic::catch_unwind(AssertUnwindSafe(|| run(target.kind, &input, ctx))) {
        Ok(Ok(())) => Outcome::Accepted,
        Ok(Err(message)) if names_a_file(&message, &case.files) => Outcome::Rejected(message),
        Ok(Err(message)) => Outcome::Unnamed(message),
        Err(_) => Outcome::Panic(
            PANIC
                .lock()
                .ok()
                .and_then(|mut s| s.take())
                .unwrap_or_else(|| "panic".into()),
        ),
    }
}

/// Runs cases `from..to` of `target`, reporting on `out`.
pub fn work(
    target: &Target,
    ctx: &Context,
    run_seed: u64,
    from: u64,
    to: u64,
    scratch: &Path,
    out: &mut impl Write,
) -> std::io::Result<()> {
    for index in from..to {
        writeln!(out, "start {index}")?;
        out.flush()?;
        let case = Case::new(target, run_seed, index);
        let line = match run_case(target, &case, ctx, scratch) {
            Outcome::Accepted => format!("ok {index}"),
            Outcome::Rejected(_) => format!("err {index}"),
            Outcome::Unnamed(m) => format!("unnamed {index} {}", json(&m)),
            Outcome::Panic(m) => format!("panic {index} {}", json(&m)),
        };
        writeln!(out, "{line}")?;
    }
    out.flush()
}

fn json(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"?\"".into())
}
