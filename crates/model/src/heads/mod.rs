pub mod classifier;
pub mod lm;
pub mod probe;
