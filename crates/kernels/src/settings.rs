//! The run-time settings of the kernels and the model, in one struct. The edges (the CLI, the
//! web crate, a test harness) build it once, from flags and, where kept, from the
//! environment through [`Settings::from_variables`], and [`install`] it for the process; the
//! library reads [`current`] and never the environment. Functions whose choice depends on a
//! setting take it as an argument, so a test passes the settings it wants.

use std::sync::RwLock;

use crate::shaders::Tile;

/// How LoRA products are scheduled on wgpu (`MENTALQLM_LORA_SCHEDULE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoraSchedule {
    /// By rows and base, long products split over k, close calls timed on the device
    /// (`lora::tune`).
    Auto,
    /// By rows and base, never timed.
    Rules,
    /// Every product on the tiled kernel.
    Tiled,
    /// Every product on the tiled kernel, split over k where `schedule::split_k` says.
    TiledSplit,
    /// As `Rules`, no product split.
    Unsplit,
}

/// How the backward computes the two factor gradients on wgpu (`MENTALQLM_LORA_FACTORS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FactorsMode {
    /// One launch of `lora_factors.wgsl` up to `schedule::FACTOR_ROWS_MAX` rows.
    Auto,
    /// That launch at any row count.
    Kernel,
    /// Two products.
    Matmul,
}

/// Every run-time switch. The defaults are the fast paths; the others exist for comparisons
/// and tuning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// LoRA layers run as our fused op (WGSL kernels on wgpu, gemm on the CPU); off, as
    /// plain Burn ops (`MENTALQLM_KERNELS=0`).
    pub fused_lora: bool,
    /// The loss through the LM head takes our op on the CPU; off, the log-softmax of the
    /// whole logits (`MENTALQLM_FUSED_NLL=0`).
    pub fused_nll: bool,
    /// Attention for inference on the CPU takes our op; off, grouped Burn products
    /// (`MENTALQLM_FUSED_ATTENTION=0`).
    pub fused_attention: bool,
    /// CPU loops use the widest vector instructions the CPU has; off, the portable code
    /// (`MENTALQLM_SIMD=0`).
    pub simd: bool,
    /// On, decoding's product over 4- and 8-bit codes quantizes the activations to bytes
    /// per block of 32 and takes integer dot products (`MENTALQLM_INT_DOT=1`), as precise
    /// as llama.cpp. Greedy tokens can change at near ties, so it is off by default and the
    /// activations stay f32; since the f32 product forms each block's weights once, it is
    /// also the slower of the two (docs/bench.md).
    pub int_dot: bool,
    pub lora_schedule: LoraSchedule,
    pub lora_factors: FactorsMode,
    /// The tiled kernel's tile above 8 rows, replacing the choice by rows
    /// (`MENTALQLM_LORA_TILE=WMxWNxTK`, for sweeps).
    pub lora_tile: Option<Tile>,
    /// The shortest slice of k in a product split over k (`MENTALQLM_LORA_SPLIT_DEPTH`).
    pub lora_split_depth: usize,
}

impl Settings {
    pub const DEFAULT: Self = Self {
        fused_lora: true,
        fused_nll: true,
        fused_attention: true,
        simd: true,
        int_dot: false,
        lora_schedule: LoraSchedule::Auto,
        lora_factors: FactorsMode::Auto,
        lora_tile: None,
        lora_split_depth: crate::schedule::SPLIT_DEPTH_MIN,
    };

    /// The environment variables read by [`Settings::from_variables`].
    pub const VARIABLES: [&'static str; 9] = [
        "MENTALQLM_KERNELS",
        "MENTALQLM_FUSED_NLL",
        "MENTALQLM_FUSED_ATTENTION",
        "MENTALQLM_SIMD",
        "MENTALQLM_INT_DOT",
        "MENTALQLM_LORA_SCHEDULE",
        "MENTALQLM_LORA_FACTORS",
        "MENTALQLM_LORA_TILE",
        "MENTALQLM_LORA_SPLIT_DEPTH",
    ];

    /// The settings that variables' values give (`value(name)`, `None` where unset), and a
    /// message for each value that was not understood and so left at its default, naming
    /// the variable and what it takes. The caller decides whether to print them.
    pub fn from_variables(value: impl Fn(&str) -> Option<String>) -> (Self, Vec<String>) {
        let mut s = Self::DEFAULT;
        let mut notes = Vec::new();
        let switch = |name: &str, field: &mut bool| {
            if let Some(v) = value(name) {
                *field = v != "0";
            }
        };
        switch("MENTALQLM_KERNELS", &mut s.fused_lora);
        switch("MENTALQLM_FUSED_NLL", &mut s.fused_nll);
        switch("MENTALQLM_FUSED_ATTENTION", &mut s.fused_attention);
        switch("MENTALQLM_SIMD", &mut s.simd);
        switch("MENTALQLM_INT_DOT", &mut s.int_dot);
        let name = "MENTALQLM_LORA_SCHEDULE";
        s.lora_schedule = choice(
            name,
            value(name).as_deref(),
            &[
                ("auto", LoraSchedule::Auto),
                ("rules", LoraSchedule::Rules),
                ("tiled", LoraSchedule::Tiled),
                ("tiled-split", LoraSchedule::TiledSplit),
                ("unsplit", LoraSchedule::Unsplit),
            ],
            &mut notes,
        );
        let name = "MENTALQLM_LORA_FACTORS";
        s.lora_factors = choice(
            name,
            value(name).as_deref(),
            &[
                ("auto", FactorsMode::Auto),
                ("kernel", FactorsMode::Kernel),
                ("matmul", FactorsMode::Matmul),
            ],
            &mut notes,
        );
        if let Some(v) = value("MENTALQLM_LORA_TILE") {
            match Tile::parse(&v) {
                Ok(tile) => s.lora_tile = Some(tile),
                Err(e) => notes.push(format!("MENTALQLM_LORA_TILE ignored: {e}")),
            }
        }
        if let Some(v) = value("MENTALQLM_LORA_SPLIT_DEPTH") {
            match v.trim().parse::<usize>() {
                Ok(depth) if depth > 0 => s.lora_split_depth = depth,
                _ => notes.push(format!(
                    "MENTALQLM_LORA_SPLIT_DEPTH={v} ignored: use a positive integer"
                )),
            }
        }
        (s, notes)
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// The value `value` names among `choices` (the first, where it is unset); another value is
/// noted, naming the choices, and the first taken.
fn choice<T: Copy>(
    name: &str,
    value: Option<&str>,
    choices: &[(&str, T)],
    notes: &mut Vec<String>,
) -> T {
    let default = choices[0].1;
    let Some(value) = value else {
        return default;
    };
    match choices.iter().find(|(key, _)| *key == value) {
        Some(&(_, chosen)) => chosen,
        None => {
            let names: Vec<&str> = choices.iter().map(|(key, _)| *key).collect();
            notes.push(format!("{name}={value} ignored: use {}", names.join(", ")));
            default
        }
    }
}

static CURRENT: RwLock<Settings> = RwLock::new(Settings::DEFAULT);

/// Makes `settings` the process's: called once at an edge, before any model work.
pub fn install(settings: Settings) {
    *CURRENT.write().unwrap_or_else(|e| e.into_inner()) = settings;
}

/// The process's settings ([`Settings::DEFAULT`] until an edge installs others).
pub fn current() -> Settings {
    *CURRENT.read().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(pairs: &[(&str, &str)]) -> (Settings, Vec<String>) {
        Settings::from_variables(|name| {
            pairs
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn unset_variables_give_the_defaults() {
        assert_eq!(from(&[]), (Settings::DEFAULT, vec![]));
    }

    #[test]
    fn each_variable_sets_its_field() {
        let (s, notes) = from(&[
            ("MENTALQLM_KERNELS", "0"),
            ("MENTALQLM_FUSED_NLL", "0"),
            ("MENTALQLM_FUSED_ATTENTION", "0"),
            ("MENTALQLM_SIMD", "0"),
            ("MENTALQLM_INT_DOT", "1"),
            ("MENTALQLM_LORA_SCHEDULE", "tiled-split"),
            ("MENTALQLM_LORA_FACTORS", "matmul"),
            ("MENTALQLM_LORA_TILE", "8x8x32"),
            ("MENTALQLM_LORA_SPLIT_DEPTH", "224"),
        ]);
        assert!(notes.is_empty(), "{notes:?}");
        assert!(!s.fused_lora && !s.fused_nll && !s.fused_attention && !s.simd);
        assert!(s.int_dot);
        assert_eq!(s.lora_schedule, LoraSchedule::TiledSplit);
        assert_eq!(s.lora_factors, FactorsMode::Matmul);
        assert_eq!(s.lora_tile, Some(Tile::new(8, 8, 32)));
        assert_eq!(s.lora_split_depth, 224);
        // Any value but 0 leaves a switch on.
        assert!(from(&[("MENTALQLM_KERNELS", "1")]).0.fused_lora);
    }

    #[test]
    fn bad_values_are_noted_by_name_and_left_at_their_defaults() {
        let (s, notes) = from(&[
            ("MENTALQLM_LORA_SCHEDULE", "Tiled"),
            ("MENTALQLM_LORA_FACTORS", ""),
            ("MENTALQLM_LORA_TILE", "64x64"),
            ("MENTALQLM_LORA_SPLIT_DEPTH", "0"),
        ]);
        assert_eq!(s, Settings::DEFAULT);
        assert_eq!(notes.len(), 4, "{notes:?}");
        assert!(notes[0].contains("MENTALQLM_LORA_SCHEDULE=Tiled ignored: use auto, rules"));
        assert!(notes[1].contains("MENTALQLM_LORA_FACTORS= ignored"));
        assert!(notes[2].contains("MENTALQLM_LORA_TILE ignored: tile `64x64`"));
        assert!(notes[3].contains("MENTALQLM_LORA_SPLIT_DEPTH=0 ignored"));
    }
}
