//! Every WGSL file of `shaders/`, and the one way its `{{ name }}` placeholders are filled;
//! with what each kernel can take (rows, ranks, tiles, bindings). Which kernel runs when is
//! [`crate::schedule`].

/// `shaders/lora_matmul.wgsl`: the one-pass tiled product of the LoRA linear, for a
/// quantized base over more than [`crate::schedule::QUANTIZED_ROWS_MAX`] rows (and every
/// product under `MENTALQLM_LORA_SCHEDULE=tiled`).
pub const LORA_MATMUL: &str = include_str!("../../../shaders/lora_matmul.wgsl");

/// `shaders/lora_rows.wgsl`: the same product for up to [`ROWS_MAX`] rows (decoding), and
/// over codes for up to [`crate::schedule::QUANTIZED_ROWS_MAX`] in blocks of [`ROWS_MAX`].
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
    fn storage_buffers_are_counted_right() {
        let counts: Vec<usize> = all_rendered()
            .iter()
            .map(|(_, text)| text.matches("var<storage").count())
            .collect();
        assert_eq!(counts.iter().max(), Some(&STORAGE_BUFFERS), "{counts:?}");
    }

    #[test]
    fn factor_columns_are_the_shaders() {
        // The shader's columns per workgroup are the launch's.
        assert!(LORA_FACTORS.contains(&format!("const CW: u32 = {FACTOR_COLUMNS}u;")));
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
