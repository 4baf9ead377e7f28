//! Small helpers the commands share: progress lines that show in logs, and output folders
//! that must be new. The classify pipeline itself is the `classify` crate.

use anyhow::Result;

/// A progress line that shows in a terminal (above the bar) and in logs (where indicatif
/// hides the bar and everything it prints).
pub fn progress_line(bar: &indicatif::ProgressBar, line: String) {
    if bar.is_hidden() {
        eprintln!("{line}");
    } else {
        bar.println(line);
    }
}

/// An output folder must be new or empty: results are never mixed with an earlier run's.
pub fn require_empty_out(out: &std::path::Path) -> Result<()> {
    let used = out.exists()
        && std::fs::read_dir(out)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true);
    if used {
        anyhow::bail!(
            "{} exists and is not empty; choose another --out",
            out.display()
        );
    }
    Ok(())
}
