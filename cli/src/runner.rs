//! Small helpers the commands share: progress lines that show in logs, and output folders
//! that must be new. The classify pipeline itself is the `classify` crate.

use std::io::IsTerminal;
use std::time::Duration;

use anyhow::Result;

/// How often a bar is written as a line when stderr is a log, not a terminal.
const LOG_EVERY: Duration = Duration::from_secs(30);

/// A progress bar of `len` steps. In a terminal, indicatif's bar; in a log (a `nohup` run,
/// CI), where indicatif draws nothing, a plain line every 30 seconds with the bar's message,
/// position, rate and time left, until the bar is finished or dropped.
pub fn bar(len: u64) -> indicatif::ProgressBar {
    if std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::new(len);
    }
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(len),
        indicatif::ProgressDrawTarget::hidden(),
    );
    let weak = bar.downgrade();
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(LOG_EVERY);
            let Some(bar) = weak.upgrade() else { return };
            if bar.is_finished() {
                return;
            }
            let total = bar.length().unwrap_or(0);
            let (pos, rate) = (bar.position(), bar.per_sec());
            let left = if rate > 0.0 && total >= pos {
                format!(", {:.0} min left", (total - pos) as f64 / rate / 60.0)
            } else {
                String::new()
            };
            let msg = bar.message();
            let msg = if msg.is_empty() {
                "progress".to_string()
            } else {
                msg.trim().to_string()
            };
            eprintln!("{msg}: {pos}/{total} ({rate:.2}/s{left})");
        }
    });
    bar
}

/// A progress line that shows in a terminal (above the bar) and in logs (where indicatif
/// hides the bar and everything it prints).
pub fn progress_line(bar: &indicatif::ProgressBar, line: String) {
    if bar.is_hidden() || !std::io::stderr().is_terminal() {
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
