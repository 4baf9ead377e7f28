//! LoRA with PEFT's semantics and file format: `y = base(x) + B·A·dropout(x) · alpha / r`,
//! A Kaiming-uniform, B zero, the base frozen; adapters are `adapter_model.safetensors` +
//! `adapter_config.json` with PEFT's names, so they move between this runtime and PEFT.

pub mod config;
pub mod linear;
pub mod peft_io;

pub use config::LoraConfig;
pub use linear::LoraAdapter;
