//! Training-side algorithms: `select` (MentalQLM's data pruning: perplexity outliers by the
//! 1.5×IQR rule, then k-center greedy), `sft` (stage 1) and `classifier` (stage 2), on a
//! shared AdamW (`optim`), update step (`trainer`), schedules, checkpoints and run log; and
//! the head-only classifier (`probe`) over cached features of the frozen model (`features`).

pub mod checkpoint;
pub mod classifier;
pub mod features;
pub mod log;
pub mod optim;
pub mod prefix;
pub mod probe;
pub mod schedule;
pub mod select;
pub mod sft;
pub mod trainer;
