pub mod bench;
pub mod classify;
pub mod eval;
pub mod generate;
pub mod logits;
pub mod score;
pub mod select;
pub mod train;
