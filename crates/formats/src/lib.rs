//! Model file formats: safetensors and GGUF reading, dequantization, tokenizer building
//! (HF `tokenizer.json`, GGUF metadata, SentencePiece models, byte-level BPE files).
//!
//! Pure Rust with no Burn dependency, so it can be fuzzed and compiled for wasm32.
//! Every reader hands out tensors as `f32` with their shape through [`TensorSource`];
//! the model crate maps names onto modules.

pub mod atomic;
pub mod byte_bpe;
pub mod dequant;
pub mod error;
pub mod fingerprint;
pub mod folder;
pub mod gguf;
pub mod gguf_tokenizer;
pub mod safetensors;
pub mod sentencepiece;
pub mod source;
pub mod tokenizer;

pub use error::FormatError;
pub use folder::Folder;
pub use source::{TensorInfo, TensorSource};
