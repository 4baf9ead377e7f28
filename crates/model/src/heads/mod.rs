pub mod classifier;
pub mod lm;
