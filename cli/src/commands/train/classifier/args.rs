//! The flags of `mentalqlm train classifier`, for every `--mode`.

use std::path::PathBuf;

use clap::Args as ClapArgs;

use crate::commands::train::RunArgs;
use crate::model_arg::ModelArgs;

#[derive(ClapArgs, Debug)]
pub struct ClassifierArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The task. `--mode full`: SAD (from the IMHI files under --data) or DEP-SEVERITY (from
    /// --dep-severity). `--mode head`: DR, dreaddit, Irf, MultiWD, SAD, DEP-SEVERITY, or
    /// `all` (one folder each under --out).
    #[arg(long, visible_alias = "task")]
    pub dataset: String,
    /// `full`: the paper's stage 2 through every layer (LoRA + head). `head`: a head-only
    /// classifier over the frozen model's pooled hidden states, features computed once and
    /// cached: minutes per task on a CPU.
    #[arg(long, value_enum, default_value_t = Mode::Full)]
    pub mode: Mode,
    /// Head mode: depths whose hidden states are pooled (HF numbering; default six spread
    /// to the top, 5,10,...,30 on a 30-layer model).
    #[arg(long, value_delimiter = ',')]
    pub depths: Option<Vec<usize>>,
    /// Prefix mode: LoRA on this many top layers; the layers below run once per example.
    #[arg(long, default_value_t = 2)]
    pub top_k: usize,
    /// Head mode: the depth sets tried, `;`-separated (default: the thirds, and all depths).
    #[arg(long)]
    pub depth_sets: Option<String>,
    /// Head mode: the L2 penalties tried (half decades from 1e3 to 1e-3, fixed in advance).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1000,300,100,30,10,3,1,0.3,0.1,0.03,0.01,0.003,0.001"
    )]
    pub l2: Vec<f64>,
    /// Head mode: the tokens per text tried (default 192,384), all pooled from one pass at
    /// the longest; the shipped classifier cuts texts to the one chosen on validation.
    #[arg(long, value_delimiter = ',')]
    pub max_lengths: Option<Vec<usize>>,
    /// Head mode: once the recipe is chosen on validation, fit it again on training and
    /// validation together (the shipped classifiers are); the validation F1 recorded is the
    /// training-only fit's.
    #[arg(long)]
    pub refit: bool,
    /// Head mode: class weighting tried (balanced weighs each class by n/(classes·n_c)).
    #[arg(long, value_enum, default_value_t = Balance::Both)]
    pub balance: Balance,
    /// Head and prefix modes: where features are cached (default ~/.cache/mentalqlm/features).
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// Head mode: compute features without reading or writing the cache.
    #[arg(long)]
    pub no_cache: bool,
    /// Head mode: after the recipe is chosen on validation, score the test split and record
    /// its weighted F1 in classifier.json (the test set plays no part in the choice).
    #[arg(long)]
    pub score_test: bool,
    /// The IMHI folder (SAD: train/SAD/train.csv and val.csv).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// A DEP-SEVERITY language file, split 80/10/10 stratified with --seed.
    #[arg(long)]
    pub dep_severity: Option<PathBuf>,
    /// Defaults: the paper's (SAD 2e-5, DEP-SEVERITY 2e-4).
    #[arg(long)]
    pub lr: Option<f64>,
    /// Defaults: SAD 1e-6, DEP-SEVERITY 1e-5.
    #[arg(long)]
    pub weight_decay: Option<f64>,
    #[arg(long, default_value_t = 30)]
    pub epochs: usize,
    /// Defaults: SAD 32, DEP-SEVERITY 16; head mode: texts per forward pass, 8.
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Tokens per text. Defaults: SAD 32, DEP-SEVERITY 256; head mode: see --max-lengths.
    #[arg(long)]
    pub max_length: Option<usize>,
    /// Defaults: SAD 0, DEP-SEVERITY 2; head mode 0 (it seeds the Irf/MultiWD validation
    /// slice and --limit's sample).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Evaluate on validation every N steps (and after each epoch).
    #[arg(long, default_value_t = 200)]
    pub eval_every: usize,
    /// Average over padding positions too, as MentalQLM's code does (it passes no mask).
    #[arg(long)]
    pub pool_include_padding: bool,
    /// Train on the data as is, without random oversampling of minority classes.
    #[arg(long)]
    pub no_oversample: bool,
    /// Use a seeded sample of N training (and N/4 validation) examples.
    #[arg(long)]
    pub limit: Option<usize>,
    #[command(flatten)]
    pub run: RunArgs,
}

/// `--mode`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The paper's stage 2 through every layer.
    Full,
    /// LoRA on the top --top-k layers over the cached output of the frozen layers below.
    Prefix,
    /// A head-only classifier over cached pooled features.
    Head,
}

/// `--balance`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Balance {
    Both,
    Yes,
    No,
}
