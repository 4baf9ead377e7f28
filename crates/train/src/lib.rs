//! Training-side algorithms. `select`: MentalQLM's data pruning (perplexity outliers by the
//! 1.5×IQR rule, then k-center greedy for diversity).

pub mod classifier;
pub mod select;
