//! Every WGSL file of `shaders/`, and the one way its `{{ name }}` placeholders are filled.

/// `shaders/lora_matmul.wgsl`: every product of the LoRA linear, forward and backward.
pub const LORA_MATMUL: &str = include_str!("../../../shaders/lora_matmul.wgsl");

/// Every shader with each set of placeholder values the runtime uses, for validation.
pub fn all_rendered() -> Vec<(&'static str, String)> {
    let mut all = Vec::new();
    for bits in [32, 8, 4] {
        for tile in [Tile::Large, Tile::Square, Tile::Rows] {
            all.push(("lora_matmul.wgsl", lora_matmul(bits, tile)));
        }
    }
    all
}

/// The kernel's output tile: threads of 4×4 values each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tile {
    /// 64×64 (256 threads), walking k by 16: long inputs, half the loads per product.
    Large,
    /// 32×32, walking k by 32: many rows (prefill, training).
    Square,
    /// 8×128, walking k by 16: up to 8 rows (decoding), without padding to 32.
    Rows,
}

impl Tile {
    /// The tile for `m` rows.
    pub fn for_rows(m: usize) -> Self {
        match m {
            0..=8 => Self::Rows,
            9..=127 => Self::Square,
            _ => Self::Large,
        }
    }

    /// Threads along m and along n.
    pub fn threads(self) -> (usize, usize) {
        match self {
            Self::Large => (16, 16),
            Self::Square => (8, 8),
            Self::Rows => (2, 32),
        }
    }

    /// Rows and columns of the output tile.
    pub fn size(self) -> (usize, usize) {
        let (wm, wn) = self.threads();
        (4 * wm, 4 * wn)
    }

    /// The step along k (the workgroup arrays stay under WebGPU's 16 KiB default).
    pub fn depth(self) -> usize {
        match self {
            Self::Large => 16,
            Self::Square => 32,
            Self::Rows => 16,
        }
    }
}

/// The kernel's text for a weight of `bits` per value (32 for f32, 8 or 4 for codes) and
/// an output tile.
pub fn lora_matmul(bits: u32, tile: Tile) -> String {
    let (wm, wn) = tile.threads();
    render(
        LORA_MATMUL,
        &[
            ("bits", bits.to_string()),
            ("wm", wm.to_string()),
            ("wn", wn.to_string()),
            ("tk", tile.depth().to_string()),
        ],
    )
}

/// Replaces each `{{ name }}` by its value.
pub fn render(template: &str, values: &[(&str, String)]) -> String {
    let mut out = template.to_string();
    for (name, value) in values {
        out = out.replace(&format!("{{{{ {name} }}}}"), value);
    }
    out
}
