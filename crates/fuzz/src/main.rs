//! `mentalqlm-fuzz`: see the library's documentation, or `--help`.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use mentalqlm_fuzz::alloc::Capped;
use mentalqlm_fuzz::case::Case;
use mentalqlm_fuzz::supervise::{Report, Settings, supervise};
use mentalqlm_fuzz::targets::{Context, NAMES, Roots, SeedFile, Target};
use mentalqlm_fuzz::worker::{quiet_panics, run_case, work};

#[global_allocator]
static ALLOC: Capped = Capped::new();

#[derive(Parser)]
#[command(
    name = "mentalqlm-fuzz",
    about = "Mutation fuzzing of every file format mentalqlm reads",
    long_about = "Mutates committed fixtures (bit flips, truncation, extreme length and offset \
                  fields, duplicated, swapped and deleted spans) and feeds them to mentalqlm's \
                  readers. Panics, hangs, over-sized allocations, crashes and error messages \
                  that name no file are findings; each finding's input is saved for `replay`."
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(clap::Args, Clone)]
struct RootArgs {
    /// The committed test fixtures (seeds).
    #[arg(long, default_value_os_t = Roots::default().fixtures)]
    fixtures: PathBuf,
    /// The shipped classifiers (seeds of the `probe` target).
    #[arg(long, default_value_os_t = Roots::default().classifiers)]
    classifiers: PathBuf,
}

impl RootArgs {
    fn roots(&self) -> Roots {
        Roots {
            fixtures: self.fixtures.clone(),
            classifiers: self.classifiers.clone(),
        }
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// Fuzz one target, or all of them.
    Run {
        /// A target name, or `all` (see `list`).
        #[arg(long, default_value = "all")]
        target: String,
        /// Cases per target.
        #[arg(long, default_value_t = 10_000)]
        cases: u64,
        /// The run's seed: case i of a target is the same input in every run with this seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// A case taking longer than this (milliseconds) is a hang.
        #[arg(long, default_value_t = 10_000)]
        timeout_ms: u64,
        /// The largest single allocation allowed (MiB); a larger one is a finding.
        #[arg(long, default_value_t = 256)]
        alloc_cap_mib: usize,
        /// Where findings' inputs are saved.
        #[arg(long, default_value = "fuzz-findings")]
        out: PathBuf,
        /// Print the reports as JSON on stdout.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        roots: RootArgs,
    },
    /// Runs one saved input (a folder written by `run`) or one case, in this process.
    Replay {
        #[arg(long)]
        target: String,
        /// A finding's folder; without it, `--case` is regenerated from `--seed`.
        dir: Option<PathBuf>,
        #[arg(long)]
        case: Option<u64>,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[command(flatten)]
        roots: RootArgs,
    },
    /// Lists the targets and their seeds.
    List {
        #[command(flatten)]
        roots: RootArgs,
    },
    /// Runs cases for a supervisor (internal).
    #[command(hide = true)]
    Worker {
        #[arg(long)]
        target: String,
        #[arg(long)]
        seed: u64,
        #[arg(long)]
        from: u64,
        #[arg(long)]
        to: u64,
        #[arg(long)]
        alloc_cap: usize,
        #[arg(long)]
        scratch: PathBuf,
        #[command(flatten)]
        roots: RootArgs,
    },
}

fn main() {
    if let Err(e) = real_main() {
        eprintln!("mentalqlm-fuzz: {e:#}");
        std::process::exit(2);
    }
}

fn real_main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Cmd::Run {
            target,
            cases,
            seed,
            timeout_ms,
            alloc_cap_mib,
            out,
            json,
            roots,
        } => {
            let names: Vec<&str> = if target == "all" {
                NAMES.to_vec()
            } else {
                vec![target.as_str()]
            };
            if cases == 0 {
                bail!("--cases must be at least 1");
            }
            let settings = Settings {
                cases,
                seed,
                timeout: Duration::from_millis(timeout_ms.max(1)),
                alloc_cap: alloc_cap_mib.saturating_mul(1 << 20),
                out,
                roots: roots.roots(),
            };
            let exe = std::env::current_exe().context("cannot find this program's path")?;
            let mut reports = Vec::new();
            for name in names {
                let t = Target::load(name, &settings.roots)?;
                let report = supervise(&exe, &t, &settings, |done| {
                    if !json {
                        eprint!("\r{name}: {done}/{cases} cases");
                        let _ = std::io::stderr().flush();
                    }
                })?;
                if !json {
                    eprintln!();
                    print_report(&report);
                }
                reports.push(report);
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&reports)?);
            } else {
                print_table(&reports);
            }
            if reports.iter().any(|r| !r.clean()) {
                std::process::exit(1);
            }
            Ok(())
        }
        Cmd::Replay {
            target,
            dir,
            case,
            seed,
            roots,
        } => {
            let roots = roots.roots();
            let t = Target::load(&target, &roots)?;
            let ctx = Context::new(&roots)?;
            let case = match (dir, case) {
                (Some(dir), _) => {
                    let mut c = Case::new(&t, seed, 0);
                    c.files = c
                        .files
                        .iter()
                        .map(|f| {
                            let path = dir.join(&f.name);
                            std::fs::read(&path)
                                .map(|bytes| SeedFile { bytes, ..f.clone() })
                                .with_context(|| format!("cannot read {}", path.display()))
                        })
                        .collect::<anyhow::Result<_>>()?;
                    c
                }
                (None, Some(i)) => Case::new(&t, seed, i),
                (None, None) => bail!("give a finding's folder or --case"),
            };
            let scratch =
                std::env::temp_dir().join(format!("mentalqlm-fuzz-{}", std::process::id()));
            std::fs::create_dir_all(&scratch)?;
            quiet_panics();
            let outcome = run_case(&t, &case, &ctx, &scratch);
            let _ = std::fs::remove_dir_all(&scratch);
            println!("{outcome:?}");
            Ok(())
        }
        Cmd::List { roots } => {
            let roots = roots.roots();
            for name in NAMES {
                let t = Target::load(name, &roots)?;
                let files: Vec<String> = t
                    .seeds
                    .iter()
                    .map(|s| {
                        s.iter()
                            .map(|f| format!("{} ({} B)", f.name, f.bytes.len()))
                            .collect::<Vec<_>>()
                            .join(" + ")
                    })
                    .collect();
                println!(
                    "{name:12} {}\n{:12} seeds: {}",
                    t.about,
                    "",
                    files.join("; ")
                );
            }
            Ok(())
        }
        Cmd::Worker {
            target,
            seed,
            from,
            to,
            alloc_cap,
            scratch,
            roots,
        } => {
            let roots = roots.roots();
            let t = Target::load(&target, &roots)?;
            let ctx = Context::new(&roots)?;
            quiet_panics();
            // The cap starts after setup: loading the seeds is not under test.
            ALLOC.set_cap(alloc_cap);
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            work(&t, &ctx, seed, from, to, &scratch, &mut out)?;
            Ok(())
        }
    }
}

fn print_report(r: &Report) {
    for f in &r.findings {
        println!(
            "  {:?} in case {} ({}): {}\n    saved: {}",
            f.kind,
            f.case,
            f.mutated,
            f.message.lines().next().unwrap_or(""),
            f.saved.display()
        );
    }
}

fn print_table(reports: &[Report]) {
    println!(
        "{:12} {:>8} {:>9} {:>9} {:>9} {:>7} {:>6} {:>7} {:>7} {:>8}",
        "target",
        "cases",
        "cases/s",
        "accepted",
        "rejected",
        "panics",
        "hangs",
        "allocs",
        "crashes",
        "unnamed"
    );
    for r in reports {
        println!(
            "{:12} {:>8} {:>9.0} {:>9} {:>9} {:>7} {:>6} {:>7} {:>7} {:>8}",
            r.target,
            r.cases,
            r.cases_per_s,
            r.accepted,
            r.rejected,
            r.panics,
            r.hangs,
            r.over_allocations,
            r.crashes,
            r.unnamed_errors
        );
    }
}
