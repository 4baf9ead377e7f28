pub mod generate;
pub mod logits;
