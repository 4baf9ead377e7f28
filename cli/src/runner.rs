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
        // The rate is the average since the first line: indicatif's recent rate swings to
        // nothing across a pause (a validation pass) and gave "3657 min left".
        let mut first: Option<(std::time::Instant, u64)> = None;
        loop {
            std::thread::sleep(LOG_EVERY);
            let Some(bar) = weak.upgrade() else { return };
            if bar.is_finished() {
                return;
            }
            let pos = bar.position();
            let rate = match first {
                Some((t0, p0)) => average_rate(p0, pos, t0.elapsed()),
                None => bar.per_sec(),
            };
            first.get_or_insert((std::time::Instant::now(), pos));
            eprintln!(
                "{}",
                log_line(&bar.message(), pos, bar.length().unwrap_or(0), rate)
            );
        }
    });
    bar
}

/// Steps per second from `p0` to `pos` over `elapsed`.
fn average_rate(p0: u64, pos: u64, elapsed: Duration) -> f64 {
    pos.saturating_sub(p0) as f64 / elapsed.as_secs_f64().max(1e-9)
}

/// Time left past this many minutes (a month) is no estimate: the run was paused, or has
/// barely started (indicatif's first rate can be 1e-40, which gave a 40-digit "min left").
const MAX_MINUTES_LEFT: f64 = 30.0 * 24.0 * 60.0;

/// One progress line of a log: `message: pos/total (rate/s, N min left)`.
fn log_line(msg: &str, pos: u64, total: u64, rate: f64) -> String {
    let minutes = total.saturating_sub(pos) as f64 / rate / 60.0;
    let left = if rate > 0.0 && total >= pos && minutes <= MAX_MINUTES_LEFT {
        format!(", {minutes:.0} min left")
    } else {
        String::new()
    };
    let msg = if msg.trim().is_empty() {
        "progress"
    } else {
        msg.trim()
    };
    format!("{msg}: {pos}/{total} ({rate:.2}/s{left})")
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_lines_use_the_average_rate() {
        // 120 steps in 10 minutes, then a pause: the rate stays the average.
        let rate = average_rate(30, 150, Duration::from_secs(600));
        assert!((rate - 0.2).abs() < 1e-12);
        assert_eq!(
            log_line(" step ", 150, 270, rate),
            "step: 150/270 (0.20/s, 10 min left)"
        );
        assert_eq!(log_line("", 5, 10, 0.0), "progress: 5/10 (0.00/s)");
        // A paused run's rate gives no absurd estimate.
        assert_eq!(
            log_line("MultiWD", 2225, 5238, 1e-40),
            "MultiWD: 2225/5238 (0.00/s)"
        );
        assert_eq!(log_line("x", 0, 10, f64::NAN), "x: 0/10 (NaN/s)");
        assert_eq!(average_rate(10, 5, Duration::from_secs(1)), 0.0);
    }
}
