//! Training-side algorithms: `select` (MentalQLM's data pruning: perplexity outliers by the
//! 1.5×IQR rule, then k-center greedy), `sft` (stage 1) and `classifier` (stage 2), on a
//! shared AdamW (`optim`), update step (`trainer`), schedules, checkpoints and run log.

pub mod checkpoint;
pub mod classifier;
pub mod log;
pub mod optim;
pub mod schedule;
pub mod select;
pub mod sft;
pub mod trainer;
