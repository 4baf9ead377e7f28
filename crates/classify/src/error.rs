//! Errors of the classify pipeline; each names the text, file or setting at fault.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ClassifyError {
    #[error(transparent)]
    Model(#[from] model::ModelError),
    #[error(transparent)]
    Format(#[from] formats::FormatError),
    #[error(transparent)]
    Data(#[from] data::DataError),
    /// A text, question or setting the caller gave.
    #[error("{0}")]
    Input(String),
    /// A classifier folder that does not fit the model or the task.
    #[error("{path}: {reason}")]
    Classifier { path: PathBuf, reason: String },
    #[error("this step must wait for the device, which blocking code cannot do here (a browser)")]
    Blocking,
}
