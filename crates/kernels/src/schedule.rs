//! Which kernel computes a LoRA product, by rules from the product's shape and the settings:
//! the schedule over the base weight ([`Schedule::choose`], the tile [`Tile::for_rows`]),
//! the split over k ([`split_k`]), whether close calls may be timed ([`measured`]; the
//! timing is `lora::tune`), and whether both factor gradients take one launch
//! ([`factors_in_one`]). The kernels' texts and what they can take are `shaders`.

use crate::settings::{FactorsMode, LoraSchedule, Settings};
use crate::shaders::{FACTOR_RANKS_MAX, ROWS_MAX, Tile};

/// The most rows over a quantized base `lora_rows.wgsl` takes, in blocks of [`ROWS_MAX`],
/// where the tiled kernel would have fewer than [`TILED_TILES_MIN`] output tiles.
pub const QUANTIZED_ROWS_MAX: usize = 64;

/// Output tiles under which the tiled kernel leaves a large GPU idle, each tile walking k
/// alone. On an H200 at 32 rows over Q8_0 codes, the tiled kernel took 0.93 and 0.89 ms
/// with n = 896 (28 tiles of 32×32) and `lora_rows.wgsl` 0.56 and 0.49; with n = 2816 and
/// 4864 (88 and 152 tiles) the tiled kernel took 0.25 and 0.23 ms and `lora_rows.wgsl`
/// 0.30 and 0.41.
pub const TILED_TILES_MIN: usize = 64;

impl Tile {
    /// The tile for `m` rows: the settings' `lora_tile` (`MENTALQLM_LORA_TILE=WMxWNxTK`,
    /// for benchmark sweeps) replaces the choice for more than 8 rows.
    pub fn for_rows(m: usize, settings: &Settings) -> Self {
        if m <= ROWS_MAX {
            return Self::ROWS;
        }
        if let Some(tile) = settings.lora_tile {
            return tile;
        }
        if m < 128 { Self::SQUARE } else { Self::LARGE }
    }
}

/// Which kernel computes a LoRA product over the base weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Schedule {
    /// `lora_rows.wgsl`: up to [`ROWS_MAX`] rows, or up to [`QUANTIZED_ROWS_MAX`] over
    /// codes in blocks of [`ROWS_MAX`] where the tiled kernel would have few tiles.
    Rows,
    /// The same with `T = X·Aᵀ` from a launch of CubeCL's matmul before it, not computed
    /// inside (a rival of `Rows` up to [`ROWS_MAX`] rows where timed, `lora::tune`).
    RowsApart,
    /// `lora_matmul.wgsl` with this tile.
    Tiled(Tile),
    /// The same over slices of k where [`split_k`] says, `lora_epilogue.wgsl` adding them
    /// up (a rival of a split product where timed, `lora::tune`).
    TiledSplit(Tile),
    /// CubeCL's matmul, then `lora_epilogue.wgsl`; split over k where [`split_k`] says.
    Epilogue,
    /// The same, never split (a rival of a split product where timed, `lora::tune`).
    EpilogueWhole,
}

impl std::fmt::Display for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Rows => write!(f, "rows"),
            Self::RowsApart => write!(f, "rows, t apart"),
            Self::Tiled(tile) => write!(f, "tiled {}x{}x{}", tile.wm, tile.wn, tile.tk),
            Self::TiledSplit(tile) => {
                write!(f, "tiled {}x{}x{}, k split", tile.wm, tile.wn, tile.tk)
            }
            Self::Epilogue => write!(f, "epilogue"),
            Self::EpilogueWhole => write!(f, "epilogue, k whole"),
        }
    }
}

impl Schedule {
    /// The kernel for `m` rows and `n` outputs over an f32 or a quantized base. Up to
    /// [`ROWS_MAX`] rows (up to [`QUANTIZED_ROWS_MAX`] over codes where the tiled kernel
    /// would have under [`TILED_TILES_MIN`] tiles) take `lora_rows.wgsl`; more rows over an
    /// f32 base take CubeCL's autotuned matmul and the epilogue (split over k where
    /// [`split_k`] says), over codes the tiled kernel (which dequantizes in its tile loads,
    /// so no f32 copy of the weight is made). Natively, where two kernels are close
    /// (`lora::tune::rivals`) they are timed on the device the first time a shape is seen.
    /// The settings' `lora_schedule` (`MENTALQLM_LORA_SCHEDULE`): `rules` keeps these rules
    /// untimed, `tiled` sends every product to the tiled kernel (the one schedule of earlier
    /// versions), `tiled-split` too but over slices of k where [`split_k`] says, for comparison.
    pub fn choose(m: usize, n: usize, quantized: bool, settings: &Settings) -> Self {
        let tile = Tile::for_rows(m, settings);
        let few_tiles = || {
            let (tm, tn) = tile.size();
            m.div_ceil(tm) * n.div_ceil(tn) < TILED_TILES_MIN
        };
        match settings.lora_schedule {
            LoraSchedule::TiledSplit => return Self::TiledSplit(tile),
            LoraSchedule::Tiled => return Self::Tiled(tile),
            LoraSchedule::Auto | LoraSchedule::Rules | LoraSchedule::Unsplit => {}
        }
        if m <= ROWS_MAX || (quantized && m <= QUANTIZED_ROWS_MAX && few_tiles()) {
            Self::Rows
        } else if quantized {
            Self::Tiled(tile)
        } else {
            Self::Epilogue
        }
    }
}

/// The most values the partial products of a split product may hold (`[s, m, n]`): 2²¹,
/// 8 MiB of f32. Below it a product has too few output tiles to fill a large GPU (512×896
/// is 112 tiles of 64×64 for an H200's 132 multiprocessors) and each of them walks all of a
/// long k alone.
pub const SPLIT_VALUES_MAX: usize = 1 << 21;

/// The shortest slice of k a split leaves each partial product
/// (`MENTALQLM_LORA_SPLIT_DEPTH=N` replaces it, for tuning on other GPUs).
pub const SPLIT_DEPTH_MIN: usize = 512;

/// The fewest rows a split product has. On an H200 the split made 512-row products faster
/// (the forward at 4864×896: 0.99 → 0.54 ms) and 32-row ones slower (0.17 → 0.26–0.28 ms
/// at 4864×896, in 8 slices); rows between were not measured. 128 rows is where the tiled
/// kernel's largest tile starts.
pub const SPLIT_ROWS_MIN: usize = 128;

/// Into how many slices of k (1, 2, 4 or 8) the epilogue schedule splits `[m, k]·[k, n]`
/// of at least [`SPLIT_ROWS_MIN`] rows: the most that divides k evenly, leaves each slice
/// [`SPLIT_DEPTH_MIN`] deep or more (or `MENTALQLM_LORA_SPLIT_DEPTH`) and keeps the
/// partials within [`SPLIT_VALUES_MAX`]. CubeCL's matmul computes the slices as one
/// batched product and `lora_epilogue.wgsl` adds them up with the LoRA terms. On an
/// H200 the product with k = 4864 over 512×896 outputs took 0.94 ms where the same work
/// with k = 896 took 0.42. `MENTALQLM_LORA_SCHEDULE=unsplit` keeps every product whole.
pub fn split_k(m: usize, n: usize, k: usize, settings: &Settings) -> usize {
    if settings.lora_schedule == LoraSchedule::Unsplit || m < SPLIT_ROWS_MIN {
        return 1;
    }
    let depth_min = settings.lora_split_depth;
    [8, 4, 2]
        .into_iter()
        .find(|&s| k % s == 0 && k / s >= depth_min && m * n * s <= SPLIT_VALUES_MAX)
        .unwrap_or(1)
}

/// Whether close calls between schedules may be timed on the device (`lora::tune`): only
/// under the `auto` schedule, the default.
pub fn measured(settings: &Settings) -> bool {
    settings.lora_schedule == LoraSchedule::Auto
}

/// The most rows whose factor gradients take `lora_factors.wgsl` by default. Each of its
/// threads walks m/16 rows alone, where CubeCL's matmul spreads a long sum over the GPU:
/// it is for the products where launches are the cost (512 tokens), not for the longest
/// batches. Not yet measured on a GPU; `MENTALQLM_LORA_FACTORS` overrides it.
pub const FACTOR_ROWS_MAX: usize = 4096;

/// Whether the backward computes both factor gradients of rank `r` over `m` rows in one
/// launch (`LoraOps::lora_factor_grads`) rather than as two products:
/// `MENTALQLM_LORA_FACTORS` = `auto` (the default: up to [`FACTOR_ROWS_MAX`] rows and
/// [`FACTOR_RANKS_MAX`] ranks), `kernel` (any rows), or `matmul` (never).
pub fn factors_in_one(m: usize, r: usize, settings: &Settings) -> bool {
    r <= FACTOR_RANKS_MAX
        && match settings.lora_factors {
            FactorsMode::Auto => m <= FACTOR_ROWS_MAX,
            FactorsMode::Kernel => true,
            FactorsMode::Matmul => false,
        }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn few_rows_take_the_rows_tile() {
        assert_eq!(Tile::for_rows(1, &Settings::DEFAULT), Tile::ROWS);
        assert_eq!(Tile::for_rows(8, &Settings::DEFAULT), Tile::ROWS);
    }

    #[test]
    fn factor_gradients_take_one_launch_up_to_the_rows_and_ranks() {
        let with = |mode| Settings {
            lora_factors: mode,
            ..Settings::DEFAULT
        };
        let (auto, kernel, matmul) = (
            with(FactorsMode::Auto),
            with(FactorsMode::Kernel),
            with(FactorsMode::Matmul),
        );
        assert!(factors_in_one(512, 8, &auto));
        assert!(factors_in_one(FACTOR_ROWS_MAX, 16, &auto));
        assert!(!factors_in_one(FACTOR_ROWS_MAX + 1, 8, &auto));
        assert!(!factors_in_one(512, 17, &auto));
        assert!(factors_in_one(FACTOR_ROWS_MAX + 1, 8, &kernel));
        assert!(!factors_in_one(512, 17, &kernel));
        assert!(!factors_in_one(512, 8, &matmul));
    }

    #[test]
    fn schedules_follow_rows_and_base() {
        let rules = Settings::DEFAULT;
        let tiled = Settings {
            lora_schedule: LoraSchedule::Tiled,
            ..Settings::DEFAULT
        };
        assert_eq!(Schedule::choose(1, 4864, false, &rules), Schedule::Rows);
        assert_eq!(Schedule::choose(8, 4864, true, &rules), Schedule::Rows);
        // Tens of rows over codes: by the tiled kernel's tiles (28 and 56 of 32×32 with
        // n = 896; 88 with n = 2816).
        assert_eq!(Schedule::choose(9, 896, true, &rules), Schedule::Rows);
        assert_eq!(Schedule::choose(64, 896, true, &rules), Schedule::Rows);
        assert_eq!(
            Schedule::choose(32, 2816, true, &rules),
            Schedule::Tiled(Tile::SQUARE)
        );
        assert_eq!(
            Schedule::choose(65, 896, true, &rules),
            Schedule::Tiled(Tile::SQUARE)
        );
        assert_eq!(Schedule::choose(9, 896, false, &rules), Schedule::Epilogue);
        assert_eq!(
            Schedule::choose(1, 896, false, &tiled),
            Schedule::Tiled(Tile::ROWS)
        );
        assert_eq!(
            Schedule::choose(512, 896, false, &tiled),
            Schedule::Tiled(Tile::LARGE)
        );
    }

    #[test]
    fn long_products_over_few_outputs_are_split() {
        let d = Settings::DEFAULT;
        let unsplit = Settings {
            lora_schedule: LoraSchedule::Unsplit,
            ..d
        };
        let depth = |lora_split_depth| Settings {
            lora_split_depth,
            ..d
        };
        // The H200's slow product: k = 4864 over 512×896 outputs, in 4 slices of 1216.
        assert_eq!(split_k(512, 896, 4864, &d), 4);
        assert_eq!(split_k(512, 896, 4864, &unsplit), 1);
        // k = 896 is too short to split; 512×4864 outputs fill the GPU already.
        assert_eq!(split_k(512, 4864, 896, &d), 1);
        assert_eq!(split_k(512, 4864, 4864, &d), 1);
        // Fewer outputs take more slices, and only slices that divide k evenly.
        assert_eq!(split_k(128, 896, 4864, &d), 8);
        assert_eq!(split_k(128, 896, 4863, &d), 1);
        assert_eq!(split_k(130, 33, 1536, &d), 2);
        // Tens of rows stay whole: the H200 ran them slower split.
        assert_eq!(split_k(127, 896, 4864, &d), 1);
        assert_eq!(split_k(32, 896, 4864, &d), 1);
        // The partials' cap is inclusive: 512×1024×4 is exactly 2²¹ values.
        assert_eq!(split_k(512, 1024, 2816, &d), 4);
        assert_eq!(split_k(512, 1025, 2816, &d), 2);
        // A shorter slice allowed splits k = 896 too, as far as the cap lets it.
        assert_eq!(split_k(512, 896, 896, &depth(448)), 2);
        assert_eq!(split_k(512, 896, 896, &depth(224)), 4);
        assert_eq!(split_k(512, 4864, 896, &depth(224)), 1);
    }
}
