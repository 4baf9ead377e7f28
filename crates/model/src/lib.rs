//! The MentalQLM network in Burn: a decoder-only transformer covering the Qwen2 family
//! (Qwen1.5, Qwen2, Qwen2.5) and the Llama family (SmolLM2), with separate heads; and the
//! encoder-decoder BART and T5 ([`seq2seq`], MentaLLaMA's MentalBART and MentalT5).
//!
//! Library code takes a `&Device` and never prints; the CLI and the wasm crate choose the
//! device.

pub mod attention;
pub mod batching;
pub mod block;
pub mod cache;
pub mod config;
pub mod decoder;
pub mod error;
pub mod generate;
pub mod heads;
pub mod init;
pub mod io;
pub mod linear;
pub mod load;
pub mod lora;
pub mod mlp;
pub mod norm;
pub mod rope;
pub mod routes;
pub mod score;
pub mod seq2seq;
pub mod vocab;
pub mod weight;

pub use batching::LiveBatch;
pub use cache::KvCache;
pub use config::ModelConfig;
pub use decoder::Decoder;
pub use error::ModelError;
pub use heads::lm::CausalLm;
pub use load::{BuildProgress, LoadOptions, LoadedModel, load_folder, load_model, load_tokenizer};
pub use routes::RowAdapters;
pub use weight::Weight;
