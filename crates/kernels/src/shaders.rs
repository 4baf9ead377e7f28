//! Every WGSL file of `shaders/`, and the one way its `{{ name }}` placeholders are filled.

/// `shaders/lora_matmul.wgsl`: the one-pass tiled product of the LoRA linear, for a
/// quantized base over more than [`QUANTIZED_ROWS_MAX`] rows (and every product under
/// `MENTALQLM_LORA_SCHEDULE=tiled`).
pub const LORA_MATMUL: &str = include_str!("../../../shaders/lora_matmul.wgsl");

/// `shaders/lora_rows.wgsl`: the same product for up to [`ROWS_MAX`] rows (decoding), and
/// over codes for up to [`QUANTIZED_ROWS_MAX`] in blocks of [`ROWS_MAX`].
pub const LORA_ROWS: &str = include_str!("../../../shaders/lora_rows.wgsl");

/// `shaders/lora_epilogue.wgsl`: the bias and low-rank terms added in place to a product
/// CubeCL's matmul computed (an f32 base over more than 8 rows), adding up the slices of a
/// split product.
pub const LORA_EPILOGUE: &str = include_str!("../../../shaders/lora_epilogue.wgsl");

/// `shaders/lora_factors.wgsl`: the gradients of both LoRA factors in one launch.
pub const LORA_FACTORS: &str = include_str!("../../../shaders/lora_factors.wgsl");

/// Storage buffers the most-bound kernels (`lora_matmul.wgsl`, `lora_rows.wgsl`) bind in one
/// stage: WebGPU's guaranteed 8. Their integer parameters come in a uniform instead.
pub const STORAGE_BUFFERS: usize = 8;

/// 32-bit words of the shaders' parameter uniform (`struct Params`, [`params_block`]).
pub const PARAM_WORDS: usize = 16;

/// What every shader's `{{ params }}` becomes: the uniform's type, whose binding each shader
/// declares after its storage buffers, and `param(i)`, its word i. A uniform array's
/// elements are 16 bytes apart, hence vec4s.
pub fn params_block() -> String {
    format!(
        "struct Params {{\n    words: array<vec4<u32>, {}>,\n}}\n\n\
         fn param(i: u32) -> u32 {{\n    return params.words[i / 4u][i % 4u];\n}}",
        PARAM_WORDS / 4
    )
}

/// The most rows `lora_rows.wgsl` takes in one block: its pipelines are specialised per
/// row count.
pub const ROWS_MAX: usize = 8;

/// The most rows over a quantized base `lora_rows.wgsl` takes, in blocks of [`ROWS_MAX`],
/// where the tiled kernel would have fewer than [`TILED_TILES_MIN`] output tiles.
pub const QUANTIZED_ROWS_MAX: usize = 64;

/// Output tiles under which the tiled kernel leaves a large GPU idle, each tile walking k
/// alone. On an H200 at 32 rows over Q8_0 codes, the tiled kernel took 0.93 and 0.89 ms
/// with n = 896 (28 tiles of 32×32) and `lora_rows.wgsl` 0.56 and 0.49; with n = 2816 and
/// 4864 (88 and 152 tiles) the tiled kernel took 0.25 and 0.23 ms and `lora_rows.wgsl`
/// 0.30 and 0.41.
pub const TILED_TILES_MIN: usize = 64;

/// Every shader with each set of placeholder values the runtime uses, for validation.
pub fn all_rendered() -> Vec<(&'static str, String)> {
    let mut all = Vec::new();
    for bits in [32, 8, 4] {
        for tile in [Tile::LARGE, Tile::SQUARE, Tile::ROWS] {
            all.push(("lora_matmul.wgsl", lora_matmul(bits, tile, 0)));
            for r in (4..=PROJECTED_RANKS_MAX).step_by(4) {
                if let Some(rp) = projected_ranks(r, bits, tile) {
                    all.push(("lora_matmul.wgsl", lora_matmul(bits, tile, rp)));
                }
            }
        }
        for rows in 1..=ROWS_MAX {
            all.push(("lora_rows.wgsl", lora_rows(bits, rows, 0)));
            for r in (4..=PROJECTED_RANKS_MAX).step_by(4) {
                if let Some(rp) = rows_projected_ranks(r, bits) {
                    all.push(("lora_rows.wgsl", lora_rows(bits, rows, rp)));
                }
            }
        }
    }
    all.push(("lora_epilogue.wgsl", lora_epilogue()));
    for r in (4..=FACTOR_RANKS_MAX).step_by(4) {
        all.push(("lora_factors.wgsl", lora_factors(r)));
    }
    all
}

/// The kernel's output tile: `wm × wn` threads, each computing 4 rows by 4 columns, walking
/// k by `tk`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tile {
    /// Threads along m.
    pub wm: usize,
    /// Threads along n.
    pub wn: usize,
    /// The step along k, a multiple of 4.
    pub tk: usize,
}

/// Workgroup memory every WebGPU adapter grants (`maxComputeWorkgroupStorageSize`): the
/// tiles the runtime chooses stay within it.
pub const WORKGROUP_BYTES: usize = 16 * 1024;

/// The most a `MENTALQLM_LORA_TILE` override may use: desktop GPUs grant 32 KiB or more
/// natively, and CubeCL asks for the adapter's own limits.
pub const OVERRIDE_WORKGROUP_BYTES: usize = 32 * 1024;

impl Tile {
    /// 64×64 (256 threads), walking k by 16: many rows (prefill, training), half the loads
    /// per product of the 32×32 tile.
    pub const LARGE: Self = Self::new(16, 16, 16);
    /// 32×32, walking k by 32: tens of rows.
    pub const SQUARE: Self = Self::new(8, 8, 32);
    /// 8×128, walking k by 16: up to 8 rows (decoding), without padding to 32.
    pub const ROWS: Self = Self::new(2, 32, 16);

    pub const fn new(wm: usize, wn: usize, tk: usize) -> Self {
        Self { wm, wn, tk }
    }

    /// The tile for `m` rows: `MENTALQLM_LORA_TILE=WMxWNxTK` (for benchmark sweeps) replaces
    /// the choice for more than 8 rows.
    pub fn for_rows(m: usize) -> Self {
        if m <= ROWS_MAX {
            return Self::ROWS;
        }
        if let Some(tile) = override_tile() {
            return tile;
        }
        if m < 128 { Self::SQUARE } else { Self::LARGE }
    }

    /// Threads along m and along n.
    pub fn threads(self) -> (usize, usize) {
        (self.wm, self.wn)
    }

    /// Rows and columns of the output tile.
    pub fn size(self) -> (usize, usize) {
        (4 * self.wm, 4 * self.wn)
    }

    /// The step along k.
    pub fn depth(self) -> usize {
        self.tk
    }

    /// Bytes of workgroup memory: both staged tiles, one padding vec4 per row.
    pub fn workgroup_bytes(self) -> usize {
        let (tm, tn) = self.size();
        (tm + tn) * (self.tk / 4 + 1) * 16
    }

    /// Bytes of workgroup memory `projected` ranks of t add: A's rows beside the tiles,
    /// and the tile's rows of t.
    pub fn projection_bytes(self, projected: usize) -> usize {
        let (tm, _) = self.size();
        projected * (self.tk / 4 + 1) * 16 + tm * projected * 4
    }

    /// Parses `WMxWNxTK`, refusing tiles over 256 threads or `OVERRIDE_WORKGROUP_BYTES`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let parts: Vec<usize> = s
            .split('x')
            .map(|p| p.trim().parse::<usize>())
            .collect::<Result<_, _>>()
            .map_err(|_| format!("tile `{s}` is not WMxWNxTK such as 16x16x16"))?;
        let [wm, wn, tk] = parts[..] else {
            return Err(format!("tile `{s}` is not WMxWNxTK such as 16x16x16"));
        };
        let tile = Self::new(wm, wn, tk);
        if wm == 0 || wn == 0 || wm * wn > 256 {
            return Err(format!("tile `{s}`: WM·WN threads must be 1 to 256"));
        }
        if tk == 0 || tk % 4 != 0 {
            return Err(format!("tile `{s}`: TK must be a positive multiple of 4"));
        }
        if tile.workgroup_bytes() > OVERRIDE_WORKGROUP_BYTES {
            return Err(format!(
                "tile `{s}` needs {} bytes of workgroup memory, over {OVERRIDE_WORKGROUP_BYTES}",
                tile.workgroup_bytes()
            ));
        }
        Ok(tile)
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
    /// `MENTALQLM_LORA_SCHEDULE=rules` keeps these rules untimed, `tiled` sends every product
    /// to the tiled kernel (the one schedule of earlier versions), `tiled-split` too but over
    /// slices of k where [`split_k`] says, for comparison.
    pub fn choose(m: usize, n: usize, quantized: bool) -> Self {
        if mode() == Mode::TiledSplit {
            return Self::TiledSplit(Tile::for_rows(m));
        }
        Self::choose_with(m, n, quantized, tiled_only())
    }

    /// [`Schedule::choose`] with the override given.
    pub fn choose_with(m: usize, n: usize, quantized: bool, tiled_only: bool) -> Self {
        let few_tiles = || {
            let (tm, tn) = Tile::for_rows(m).size();
            m.div_ceil(tm) * n.div_ceil(tn) < TILED_TILES_MIN
        };
        if tiled_only {
            Self::Tiled(Tile::for_rows(m))
        } else if m <= ROWS_MAX || (quantized && m <= QUANTIZED_ROWS_MAX && few_tiles()) {
            Self::Rows
        } else if quantized {
            Self::Tiled(Tile::for_rows(m))
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
pub fn split_k(m: usize, n: usize, k: usize) -> usize {
    split_k_with(m, n, k, mode() == Mode::Unsplit, split_depth_min())
}

/// [`split_k`] with the overrides given: `unsplit`, and the shortest slice.
pub fn split_k_with(m: usize, n: usize, k: usize, unsplit: bool, depth_min: usize) -> usize {
    if unsplit || m < SPLIT_ROWS_MIN {
        return 1;
    }
    [8, 4, 2]
        .into_iter()
        .find(|&s| k % s == 0 && k / s >= depth_min && m * n * s <= SPLIT_VALUES_MAX)
        .unwrap_or(1)
}

/// `MENTALQLM_LORA_SPLIT_DEPTH` (a positive integer), else [`SPLIT_DEPTH_MIN`]; read once,
/// a bad value reported once and ignored.
fn split_depth_min() -> usize {
    static DEPTH: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *DEPTH.get_or_init(|| {
        let Ok(s) = std::env::var("MENTALQLM_LORA_SPLIT_DEPTH") else {
            return SPLIT_DEPTH_MIN;
        };
        match s.trim().parse::<usize>() {
            Ok(depth) if depth > 0 => depth,
            _ => {
                eprintln!(
                    "mentalqlm: MENTALQLM_LORA_SPLIT_DEPTH={s} ignored: use a positive integer"
                );
                SPLIT_DEPTH_MIN
            }
        }
    })
}

/// `MENTALQLM_LORA_SCHEDULE`, for comparisons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// The schedules by rows and base, long products split, close calls timed on the
    /// device (`lora::tune`).
    Auto,
    /// The schedules by rows and base, never timed (`lora::tune`).
    Rules,
    /// Every product on the tiled kernel.
    Tiled,
    /// Every product on the tiled kernel, split over k where [`split_k`] says.
    TiledSplit,
    /// As `Rules`, no product split.
    Unsplit,
}

fn tiled_only() -> bool {
    mode() == Mode::Tiled
}

/// Whether close calls between schedules may be timed on the device (`lora::tune`): only
/// under `MENTALQLM_LORA_SCHEDULE=auto`, the default.
pub fn measured() -> bool {
    mode() == Mode::Auto
}

/// `MENTALQLM_LORA_SCHEDULE` (`auto`, `rules`, `tiled`, `tiled-split` or `unsplit`), read
/// once; another value is reported once and ignored.
fn mode() -> Mode {
    static MODE: std::sync::OnceLock<Mode> = std::sync::OnceLock::new();
    *MODE.get_or_init(|| {
        env_choice(
            "MENTALQLM_LORA_SCHEDULE",
            &[
                ("auto", Mode::Auto),
                ("rules", Mode::Rules),
                ("tiled", Mode::Tiled),
                ("tiled-split", Mode::TiledSplit),
                ("unsplit", Mode::Unsplit),
            ],
        )
    })
}

/// The value of the variable `name` among `choices` (the first, where it is unset); another
/// value is reported, naming the choices, and the first taken.
fn env_choice<T: Copy>(name: &str, choices: &[(&str, T)]) -> T {
    choice_of(name, std::env::var(name).ok().as_deref(), choices)
}

/// [`env_choice`] for the value given (`None`: unset).
fn choice_of<T: Copy>(name: &str, value: Option<&str>, choices: &[(&str, T)]) -> T {
    let default = choices[0].1;
    let Some(value) = value else {
        return default;
    };
    match choices.iter().find(|(key, _)| *key == value) {
        Some(&(_, choice)) => choice,
        None => {
            let names: Vec<&str> = choices.iter().map(|(key, _)| *key).collect();
            eprintln!(
                "mentalqlm: {name}={value} ignored: use {}",
                names.join(", ")
            );
            default
        }
    }
}

/// `MENTALQLM_LORA_TILE`, read once; a bad value is reported once and ignored.
fn override_tile() -> Option<Tile> {
    static TILE: std::sync::OnceLock<Option<Tile>> = std::sync::OnceLock::new();
    *TILE.get_or_init(|| {
        let s = std::env::var("MENTALQLM_LORA_TILE").ok()?;
        match Tile::parse(&s) {
            Ok(tile) => Some(tile),
            Err(e) => {
                eprintln!("mentalqlm: MENTALQLM_LORA_TILE ignored: {e}");
                None
            }
        }
    })
}

/// The kernel's text for a weight of `bits` per value (32 for f32, 8 or 4 for codes), an
/// output tile, and `projected` ranks of the low-rank input computed in the kernel (a
/// multiple of 4 up to [`PROJECTED_RANKS_MAX`], from [`projected_ranks`]; 0 where it is given).
pub fn lora_matmul(bits: u32, tile: Tile, projected: usize) -> String {
    let (wm, wn) = tile.threads();
    let (tm, _) = tile.size();
    render(
        LORA_MATMUL,
        &[
            ("bits", bits.to_string()),
            ("wm", wm.to_string()),
            ("wn", wn.to_string()),
            ("tk", tile.depth().to_string()),
            ("rp", projected.to_string()),
            ("rp_slots", projected.max(1).to_string()),
            (
                "tper",
                (tm * projected).div_ceil(wm * wn).max(1).to_string(),
            ),
        ],
    )
}

/// The highest rank whose low-rank input `lora_matmul.wgsl` computes itself (its values of
/// it are per-thread registers: up to 4·16/WN each).
pub const PROJECTED_RANKS_MAX: usize = 16;

/// The ranks `lora_matmul.wgsl` computes of `t = x·Aᵀ` for rank `r` over a base of `bits`
/// with `tile`: r rounded up to 4, or `None` where it takes `t` from another launch (a rank
/// over [`PROJECTED_RANKS_MAX`]; 4-bit codes, which leave no binding free for A; or a tile
/// whose workgroup memory would pass [`WORKGROUP_BYTES`] with A's rows and t's beside it).
pub fn projected_ranks(r: usize, bits: u32, tile: Tile) -> Option<usize> {
    let fits = |rp| tile.workgroup_bytes() + tile.projection_bytes(rp) <= WORKGROUP_BYTES;
    rows_projected_ranks(r, bits).filter(|&rp| fits(rp))
}

/// The same for `lora_rows.wgsl`, whose workgroup memory holds at most 8 rows of t.
pub fn rows_projected_ranks(r: usize, bits: u32) -> Option<usize> {
    let rp = r.next_multiple_of(4);
    (r > 0 && rp <= PROJECTED_RANKS_MAX && bits != 4).then_some(rp)
}

/// The few-rows kernel's text for a weight of `bits` per value, `rows` rows (1 to
/// [`ROWS_MAX`]) and `projected` ranks of t computed in it (from [`rows_projected_ranks`];
/// 0 where it is given).
pub fn lora_rows(bits: u32, rows: usize, projected: usize) -> String {
    // Columns of out per workgroup (the shader's `COLS`) take a rank each per round.
    const COLS: usize = 8;
    render(
        LORA_ROWS,
        &[
            ("bits", bits.to_string()),
            ("rows", rows.to_string()),
            ("rp", projected.to_string()),
            ("rp_rounds", projected.div_ceil(COLS).max(1).to_string()),
        ],
    )
}

/// The factor gradients' text for r rounded up to 4 (at most [`FACTOR_RANKS_MAX`]).
pub fn lora_factors(ranks: usize) -> String {
    render(LORA_FACTORS, &[("rp", ranks.to_string())])
}

/// Columns of x (or of the output gradient) per workgroup of `lora_factors.wgsl` (its `CW`).
pub const FACTOR_COLUMNS: usize = 16;

/// The highest rank `lora_factors.wgsl` takes (its sums are per-thread registers).
pub const FACTOR_RANKS_MAX: usize = 16;

/// The most rows whose factor gradients take `lora_factors.wgsl` by default. Each of its
/// threads walks m/16 rows alone, where CubeCL's matmul spreads a long sum over the GPU:
/// it is for the products where launches are the cost (512 tokens), not for the longest
/// batches. Not yet measured on a GPU; `MENTALQLM_LORA_FACTORS` overrides it.
pub const FACTOR_ROWS_MAX: usize = 4096;

/// Whether the backward computes both factor gradients of rank `r` over `m` rows in one
/// launch (`LoraOps::lora_factor_grads`) rather than as two products:
/// `MENTALQLM_LORA_FACTORS` = `auto` (the default: up to [`FACTOR_ROWS_MAX`] rows and
/// [`FACTOR_RANKS_MAX`] ranks), `kernel` (any rows), or `matmul` (never).
pub fn factors_in_one(m: usize, r: usize) -> bool {
    factors_in_one_with(m, r, factors_mode())
}

/// `MENTALQLM_LORA_FACTORS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FactorsMode {
    Auto,
    Kernel,
    Matmul,
}

/// [`factors_in_one`] with the mode given.
pub fn factors_in_one_with(m: usize, r: usize, mode: FactorsMode) -> bool {
    r <= FACTOR_RANKS_MAX
        && match mode {
            FactorsMode::Auto => m <= FACTOR_ROWS_MAX,
            FactorsMode::Kernel => true,
            FactorsMode::Matmul => false,
        }
}

/// `MENTALQLM_LORA_FACTORS`, read once; another value is reported once and ignored.
fn factors_mode() -> FactorsMode {
    static MODE: std::sync::OnceLock<FactorsMode> = std::sync::OnceLock::new();
    *MODE.get_or_init(|| {
        env_choice(
            "MENTALQLM_LORA_FACTORS",
            &[
                ("auto", FactorsMode::Auto),
                ("kernel", FactorsMode::Kernel),
                ("matmul", FactorsMode::Matmul),
            ],
        )
    })
}

/// The epilogue's text.
pub fn lora_epilogue() -> String {
    render(LORA_EPILOGUE, &[])
}

/// Replaces each `{{ name }}` by its value, and `{{ params }}` by [`params_block`].
pub fn render(template: &str, values: &[(&str, String)]) -> String {
    let mut out = template.replace("{{ params }}", &params_block());
    for (name, value) in values {
        out = out.replace(&format!("{{{{ {name} }}}}"), value);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preset_tiles_fit_webgpu_defaults() {
        for tile in [Tile::LARGE, Tile::SQUARE, Tile::ROWS] {
            let (wm, wn) = tile.threads();
            assert!(wm * wn <= 256, "{tile:?}");
            assert!(tile.workgroup_bytes() <= WORKGROUP_BYTES, "{tile:?}");
        }
        assert_eq!(Tile::for_rows(1), Tile::ROWS);
        assert_eq!(Tile::for_rows(8), Tile::ROWS);
    }

    #[test]
    fn preset_tiles_compute_up_to_16_ranks_of_t_in_kernel() {
        for tile in [Tile::LARGE, Tile::SQUARE, Tile::ROWS] {
            for bits in [32, 8] {
                assert_eq!(projected_ranks(1, bits, tile), Some(4), "{tile:?}");
                assert_eq!(projected_ranks(9, bits, tile), Some(12), "{tile:?}");
                assert_eq!(projected_ranks(16, bits, tile), Some(16), "{tile:?}");
                assert_eq!(projected_ranks(17, bits, tile), None, "{tile:?}");
            }
            assert_eq!(
                projected_ranks(8, 4, tile),
                None,
                "4-bit codes bind scales and mins"
            );
        }
        assert_eq!(rows_projected_ranks(7, 32), Some(8));
        assert_eq!(rows_projected_ranks(16, 8), Some(16));
        assert_eq!(rows_projected_ranks(17, 32), None);
        assert_eq!(rows_projected_ranks(8, 4), None);
        assert!(LORA_ROWS.contains("const COLS: u32 = 8u;"));
        // A tile that fills the workgroup memory alone leaves none for A and t.
        assert_eq!(projected_ranks(8, 32, Tile::new(16, 16, 32)), None);
    }

    #[test]
    fn factor_gradients_take_one_launch_up_to_the_rows_and_ranks() {
        use FactorsMode::*;
        assert!(factors_in_one_with(512, 8, Auto));
        assert!(factors_in_one_with(FACTOR_ROWS_MAX, 16, Auto));
        assert!(!factors_in_one_with(FACTOR_ROWS_MAX + 1, 8, Auto));
        assert!(!factors_in_one_with(512, 17, Auto));
        assert!(factors_in_one_with(FACTOR_ROWS_MAX + 1, 8, Kernel));
        assert!(!factors_in_one_with(512, 17, Kernel));
        assert!(!factors_in_one_with(512, 8, Matmul));
        // The shader's columns per workgroup are the launch's.
        assert!(LORA_FACTORS.contains(&format!("const CW: u32 = {FACTOR_COLUMNS}u;")));
    }

    #[test]
    fn variables_choose_among_their_values_or_keep_the_first() {
        let choices = [("auto", 0), ("kernel", 1), ("matmul", 2)];
        assert_eq!(choice_of("V", None, &choices), 0);
        assert_eq!(choice_of("V", Some("matmul"), &choices), 2);
        assert_eq!(
            choice_of("V", Some("Matmul"), &choices),
            0,
            "reported, then ignored"
        );
        assert_eq!(choice_of("V", Some(""), &choices), 0);
    }

    #[test]
    fn storage_buffers_are_counted_right() {
        let counts: Vec<usize> = all_rendered()
            .iter()
            .map(|(_, text)| text.matches("var<storage").count())
            .collect();
        assert_eq!(counts.iter().max(), Some(&STORAGE_BUFFERS), "{counts:?}");
    }

    #[test]
    fn schedules_follow_rows_and_base() {
        assert_eq!(Schedule::choose_with(1, 4864, false, false), Schedule::Rows);
        assert_eq!(Schedule::choose_with(8, 4864, true, false), Schedule::Rows);
        // Tens of rows over codes: by the tiled kernel's tiles (28 and 56 of 32×32 with
        // n = 896; 88 with n = 2816).
        assert_eq!(Schedule::choose_with(9, 896, true, false), Schedule::Rows);
        assert_eq!(Schedule::choose_with(64, 896, true, false), Schedule::Rows);
        assert_eq!(
            Schedule::choose_with(32, 2816, true, false),
            Schedule::Tiled(Tile::SQUARE)
        );
        assert_eq!(
            Schedule::choose_with(65, 896, true, false),
            Schedule::Tiled(Tile::SQUARE)
        );
        assert_eq!(
            Schedule::choose_with(9, 896, false, false),
            Schedule::Epilogue
        );
        assert_eq!(
            Schedule::choose_with(1, 896, false, true),
            Schedule::Tiled(Tile::ROWS)
        );
        assert_eq!(
            Schedule::choose_with(512, 896, false, true),
            Schedule::Tiled(Tile::LARGE)
        );
    }

    #[test]
    fn long_products_over_few_outputs_are_split() {
        // The H200's slow product: k = 4864 over 512×896 outputs, in 4 slices of 1216.
        assert_eq!(split_k_with(512, 896, 4864, false, SPLIT_DEPTH_MIN), 4);
        assert_eq!(split_k_with(512, 896, 4864, true, SPLIT_DEPTH_MIN), 1);
        // k = 896 is too short to split; 512×4864 outputs fill the GPU already.
        assert_eq!(split_k_with(512, 4864, 896, false, SPLIT_DEPTH_MIN), 1);
        assert_eq!(split_k_with(512, 4864, 4864, false, SPLIT_DEPTH_MIN), 1);
        // Fewer outputs take more slices, and only slices that divide k evenly.
        assert_eq!(split_k_with(128, 896, 4864, false, SPLIT_DEPTH_MIN), 8);
        assert_eq!(split_k_with(128, 896, 4863, false, SPLIT_DEPTH_MIN), 1);
        assert_eq!(split_k_with(130, 33, 1536, false, SPLIT_DEPTH_MIN), 2);
        // Tens of rows stay whole: the H200 ran them slower split.
        assert_eq!(split_k_with(127, 896, 4864, false, SPLIT_DEPTH_MIN), 1);
        assert_eq!(split_k_with(32, 896, 4864, false, SPLIT_DEPTH_MIN), 1);
        // The partials' cap is inclusive: 512×1024×4 is exactly 2²¹ values.
        assert_eq!(split_k_with(512, 1024, 2816, false, SPLIT_DEPTH_MIN), 4);
        assert_eq!(split_k_with(512, 1025, 2816, false, SPLIT_DEPTH_MIN), 2);
        // A shorter slice allowed splits k = 896 too, as far as the cap lets it.
        assert_eq!(split_k_with(512, 896, 896, false, 448), 2);
        assert_eq!(split_k_with(512, 896, 896, false, 224), 4);
        assert_eq!(split_k_with(512, 4864, 896, false, 224), 1);
    }

    #[test]
    fn tile_override_is_parsed_or_refused_with_the_reason() {
        assert_eq!(Tile::parse("16x8x32"), Ok(Tile::new(16, 8, 32)));
        for (bad, why) in [
            ("16x16", "WMxWNxTK"),
            ("a×b×c", "WMxWNxTK"),
            ("32x16x16", "1 to 256"),
            ("16x16x6", "multiple of 4"),
            ("16x16x64", "workgroup memory"),
        ] {
            let e = Tile::parse(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
