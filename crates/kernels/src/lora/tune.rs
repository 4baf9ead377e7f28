//! Which kernel takes a product where two are close: measured on the device the first time
//! a shape is seen, natively, then kept for the process.
//!
//! The rules of `Schedule::choose` come from one GPU (an H200), where the same product
//! (512×896×896) took 0.21–0.78 ms over eight processes depending on the kernel CubeCL's
//! own autotune picked, while the tiled kernel over Q8_0 took 0.17–0.51, less in each.
//! Other GPUs (and llvmpipe, where CubeCL's matmul is about 2.5× faster than ours) rank
//! them otherwise, so where the rules leave a real choice the rivals are timed:
//! - over an f32 base, more than 8 rows: CubeCL's matmul with `lora_epilogue.wgsl` (split
//!   over k where `split_k` says, and then also whole: the split's rule is the H200's too)
//!   against the tiled `lora_matmul.wgsl`, one launch fewer;
//! - over codes, 9 to 64 rows: `lora_rows.wgsl` in blocks of 8 against the tiled kernel;
//! - up to 8 rows: `lora_rows.wgsl` computing `x·Aᵀ` itself against it taking that from a
//!   launch of CubeCL's matmul before it;
//! - and where the rules split a product over k, the tiled kernel over the same slices
//!   (`lora_epilogue.wgsl` adding them up) against it whole, over either base.
//!
//! Each rival runs once untimed (compiling its pipeline and letting CubeCL's matmul tune
//! itself), then once timed; those within four times the fastest alternate in three rounds
//! of enough calls to fill about a millisecond, and the lowest median wins.
//! Time is the host's wall clock around the calls and a device sync, which on a GPU where
//! launches are the cost is the cost that matters. Where the device cannot be waited on
//! (the browser: no blocking there) or `MENTALQLM_LORA_SCHEDULE` is set to anything but
//! `auto`, the rules decide alone.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use burn_cubecl::CubeDevice;

use crate::schedule::{self, Schedule};
use crate::settings::Settings;
use crate::shaders::{self, Tile};

/// What a decision is keyed by: the rows rounded up to a power of two, and the rest of the
/// product's shape and layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key {
    /// The rows of the product measured (the first of its power-of-two class seen).
    pub rows: usize,
    pub outputs: usize,
    pub depth: usize,
    /// 32 for f32, else the code width.
    pub bits: u32,
    /// Whether X, and W, are read transposed (the input gradient reads W so).
    pub x_transposed: bool,
    pub w_transposed: bool,
}

/// One measured choice.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub key: Key,
    /// Each rival with its median milliseconds per call (the first call's alone for one
    /// left out of the rounds).
    pub rivals: Vec<(Schedule, f64)>,
    pub chosen: Schedule,
}

/// The rivals for a product of `m` rows over an f32 or quantized base whose rule is
/// `rule` (and which the rule splits over k, or not; and whose `T` the rows kernel could
/// compute itself, or not), the rule's first, where more than one is worth timing; `None`
/// where the rule stands alone (over 64 rows over codes: the rows kernel is slow there).
/// Up to 8 rows the rows kernel with `T` inside (one launch, but `T`'s sums repeated by
/// every workgroup) is timed against it with `T` apart (two launches): on llvmpipe one
/// token took 2× longer inside, where a GPU bound by launches should take less.
pub fn rivals(
    rule: Schedule,
    m: usize,
    quantized: bool,
    split: bool,
    inside: bool,
    settings: &Settings,
) -> Option<Vec<Schedule>> {
    let tiled = Schedule::Tiled(Tile::for_rows(m, settings));
    match rule {
        Schedule::Rows if m <= shaders::ROWS_MAX && inside => {
            Some(vec![Schedule::Rows, Schedule::RowsApart])
        }
        Schedule::Epilogue if !quantized && split => Some(vec![
            Schedule::Epilogue,
            Schedule::EpilogueWhole,
            tiled,
            Schedule::TiledSplit(Tile::for_rows(m, settings)),
        ]),
        Schedule::Epilogue if !quantized => Some(vec![Schedule::Epilogue, tiled]),
        Schedule::Rows | Schedule::Tiled(_)
            if quantized && m > shaders::ROWS_MAX && m <= schedule::QUANTIZED_ROWS_MAX =>
        {
            Some(vec![Schedule::Rows, tiled])
        }
        Schedule::Tiled(tile) if quantized && split => Some(vec![rule, Schedule::TiledSplit(tile)]),
        _ => None,
    }
}

/// Whether products are timed here: natively, and under the `auto` schedule (the default).
pub fn enabled(settings: &Settings) -> bool {
    cfg!(not(target_family = "wasm")) && schedule::measured(settings)
}

type Class = (usize, usize, usize, u32, bool, bool);

/// The rows of `key`'s class: decisions are shared by every row count that rounds up to the
/// same power of two.
fn class(key: &Key) -> Class {
    (
        key.rows.next_power_of_two(),
        key.outputs,
        key.depth,
        key.bits,
        key.x_transposed,
        key.w_transposed,
    )
}

/// Each class's schedule once decided; `None` while one thread times it (the others take
/// the rule meanwhile rather than time it too).
static DECIDED: LazyLock<Mutex<Decided>> = LazyLock::new(Default::default);
type Decided = HashMap<(CubeDevice, Class), Option<Schedule>>;
static LOG: Mutex<Vec<Decision>> = Mutex::new(Vec::new());

/// Every decision made in this process, in order (what `mentalqlm bench kernels` reports).
pub fn decisions() -> Vec<Decision> {
    LOG.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// The schedule for `key` on `device`: the one decided before, or the fastest of `rivals`
/// as `run` takes them (each call a whole product, its output dropped). A device that
/// cannot be synced keeps the first rival, the rule's, without a record.
pub fn choose(
    device: &CubeDevice,
    key: Key,
    rivals: Vec<Schedule>,
    sync: impl Fn() -> bool,
    mut run: impl FnMut(Schedule),
) -> Schedule {
    let slot = (device.clone(), class(&key));
    {
        let mut decided = DECIDED.lock().unwrap_or_else(|p| p.into_inner());
        match decided.get(&slot) {
            Some(Some(chosen)) => return *chosen,
            Some(None) => return rivals[0],
            None => decided.insert(slot.clone(), None),
        };
    }
    // Not under the lock: the rivals launch kernels, and CubeCL's matmul may tune itself.
    let measured = measure(&rivals, &sync, &mut run);
    let chosen = match measured {
        Some(times) => {
            let decision = decide(key, rivals, times);
            let chosen = decision.chosen;
            LOG.lock().unwrap_or_else(|p| p.into_inner()).push(decision);
            chosen
        }
        None => rivals[0],
    };
    DECIDED
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(slot, Some(chosen));
    chosen
}

/// The decision from each rival's timed samples (ms per call): the lowest median; a tie
/// keeps the earlier rival (the rule's is first).
pub fn decide(key: Key, rivals: Vec<Schedule>, times: Vec<Vec<f64>>) -> Decision {
    let medians = times.into_iter().map(|mut t| {
        t.sort_by(f64::total_cmp);
        t.get(t.len() / 2).copied().unwrap_or(f64::INFINITY)
    });
    let rivals: Vec<(Schedule, f64)> = rivals.into_iter().zip(medians).collect();
    let chosen = rivals
        .iter()
        .fold(None::<(Schedule, f64)>, |best, &(s, t)| match best {
            Some((_, b)) if b <= t => best,
            _ => Some((s, t)),
        })
        .map_or(Schedule::Epilogue, |(s, _)| s);
    Decision {
        key,
        rivals,
        chosen,
    }
}

/// The timing's constants (natively only: the browser never times).
#[cfg(not(target_family = "wasm"))]
mod timing {
    /// Rivals whose first timed call took over this many times the fastest's sit out the
    /// rounds.
    pub const CLEAR_RATIO: f64 = 4.0;
    /// Calls per timed sample fill about this many milliseconds (at most [`CALLS_MAX`]).
    pub const SAMPLE_MS: f64 = 1.0;
    pub const CALLS_MAX: usize = 8;
    pub const ROUNDS: usize = 3;
}
#[cfg(not(target_family = "wasm"))]
use timing::*;

/// Samples of ms per call for each rival, or `None` where a sync failed.
#[cfg(not(target_family = "wasm"))]
fn measure(
    rivals: &[Schedule],
    sync: &impl Fn() -> bool,
    run: &mut impl FnMut(Schedule),
) -> Option<Vec<Vec<f64>>> {
    use std::time::Instant;
    let mut time = |schedule: Schedule, calls: usize| -> Option<f64> {
        let start = Instant::now();
        for _ in 0..calls {
            run(schedule);
        }
        sync().then(|| start.elapsed().as_secs_f64() * 1e3 / calls as f64)
    };
    if !sync() {
        return None;
    }
    for &schedule in rivals {
        time(schedule, 1)?;
    }
    let mut samples = Vec::with_capacity(rivals.len());
    for &schedule in rivals {
        samples.push(vec![time(schedule, 1)?]);
    }
    let fast = samples.iter().map(|s| s[0]).fold(f64::INFINITY, f64::min);
    let close: Vec<usize> = (0..rivals.len())
        .filter(|&i| samples[i][0] <= CLEAR_RATIO * fast)
        .collect();
    if close.len() < 2 {
        return Some(samples);
    }
    let calls = ((SAMPLE_MS / fast.max(1e-3)).ceil() as usize).clamp(1, CALLS_MAX);
    for round in 0..ROUNDS {
        for &i in &close {
            let t = time(rivals[i], calls)?;
            // The rounds replace the first call, which ran colder.
            if round == 0 {
                samples[i].clear();
            }
            samples[i].push(t);
        }
    }
    Some(samples)
}

#[cfg(target_family = "wasm")]
fn measure(
    _: &[Schedule],
    _: &impl Fn() -> bool,
    _: &mut impl FnMut(Schedule),
) -> Option<Vec<Vec<f64>>> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Key {
        Key {
            rows: 512,
            outputs: 896,
            depth: 896,
            bits: 32,
            x_transposed: false,
            w_transposed: true,
        }
    }

    #[test]
    fn the_lowest_median_wins_and_a_tie_keeps_the_rule() {
        let tiled = Schedule::Tiled(Tile::LARGE);
        let two = || vec![Schedule::Epilogue, tiled];
        // One slow outlier in the tiled samples does not decide it.
        let d = decide(
            key(),
            two(),
            vec![vec![0.30, 0.31, 0.29], vec![0.20, 0.9, 0.21]],
        );
        assert_eq!(d.chosen, tiled);
        assert_eq!(d.rivals, [(Schedule::Epilogue, 0.30), (tiled, 0.21)]);
        let d = decide(key(), two(), vec![vec![0.2], vec![0.2]]);
        assert_eq!(d.chosen, Schedule::Epilogue);
        let d = decide(key(), two(), vec![vec![0.2], vec![]]);
        assert_eq!(d.chosen, Schedule::Epilogue, "no samples never wins");
        let three = vec![Schedule::Epilogue, Schedule::EpilogueWhole, tiled];
        let d = decide(
            key(),
            three,
            vec![vec![0.5], vec![0.3, 0.31, 0.3], vec![0.4]],
        );
        assert_eq!(d.chosen, Schedule::EpilogueWhole);
    }

    #[test]
    fn only_close_calls_are_timed() {
        let tiled = |m| Schedule::Tiled(Tile::for_rows(m, &Settings::DEFAULT));
        assert_eq!(
            rivals(
                Schedule::Epilogue,
                512,
                false,
                false,
                false,
                &Settings::DEFAULT
            ),
            Some(vec![Schedule::Epilogue, tiled(512)])
        );
        assert_eq!(
            rivals(
                Schedule::Epilogue,
                512,
                false,
                true,
                false,
                &Settings::DEFAULT
            ),
            Some(vec![
                Schedule::Epilogue,
                Schedule::EpilogueWhole,
                tiled(512),
                Schedule::TiledSplit(Tile::LARGE)
            ])
        );
        assert_eq!(
            rivals(tiled(512), 512, true, true, false, &Settings::DEFAULT),
            Some(vec![tiled(512), Schedule::TiledSplit(Tile::LARGE)])
        );
        assert_eq!(
            rivals(tiled(512), 512, true, false, false, &Settings::DEFAULT),
            None
        );
        assert_eq!(
            rivals(Schedule::Rows, 8, false, false, false, &Settings::DEFAULT),
            None
        );
        assert_eq!(
            rivals(Schedule::Rows, 8, true, false, false, &Settings::DEFAULT),
            None
        );
        // Up to 8 rows, `T` inside the rows kernel or apart, where it can be inside.
        let rows = Some(vec![Schedule::Rows, Schedule::RowsApart]);
        assert_eq!(
            rivals(Schedule::Rows, 1, false, false, true, &Settings::DEFAULT),
            rows
        );
        assert_eq!(
            rivals(Schedule::Rows, 8, true, false, true, &Settings::DEFAULT),
            rows
        );
        assert_eq!(
            rivals(Schedule::Rows, 32, true, false, false, &Settings::DEFAULT),
            Some(vec![Schedule::Rows, tiled(32)])
        );
        assert_eq!(
            rivals(tiled(64), 64, true, false, false, &Settings::DEFAULT),
            Some(vec![Schedule::Rows, tiled(64)])
        );
        assert_eq!(
            rivals(tiled(65), 65, true, false, false, &Settings::DEFAULT),
            None
        );
        assert_eq!(
            rivals(tiled(512), 512, false, true, false, &Settings::DEFAULT),
            None,
            "the tiled-only mode"
        );
    }

    #[test]
    fn row_counts_share_a_decision_up_to_the_next_power_of_two() {
        let mut a = key();
        a.rows = 300;
        let mut b = key();
        b.rows = 512;
        assert_eq!(class(&a), class(&b));
        b.rows = 513;
        assert_ne!(class(&a), class(&b));
        b.rows = 300;
        b.w_transposed = false;
        assert_ne!(class(&a), class(&b));
    }
}
