use std::path::PathBuf;

use formats::FormatError;

/// Errors of model construction and loading. Messages name the file or tensor and, for
/// shapes, the expected and actual shape.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error(transparent)]
    Format(#[from] FormatError),
    #[error("{path}: {reason}")]
    Config { path: PathBuf, reason: String },
    #[error(
        "{path}: unknown model_type `{model_type}` (supported: qwen2, llama; encoder-decoder: bart, t5)"
    )]
    UnknownModelType { path: PathBuf, model_type: String },
    #[error("tensor `{name}` in {origin}: expected shape {expected:?}, found {actual:?}")]
    Shape {
        name: String,
        origin: String,
        expected: Vec<usize>,
        actual: Vec<usize>,
    },
    #[error("tensor `{name}` is missing from {origin}")]
    MissingTensor { name: String, origin: String },
    #[error("{0}")]
    Input(String),
    #[error("tensor readback failed: {0}")]
    Readback(String),
}
