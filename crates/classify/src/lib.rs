//! The classify pipeline, one for every entry point: the CLI's `classify` and `eval`, and the
//! web page's worker (`web/src/session.rs`) call these functions, so a text gets the same
//! probabilities wherever it is classified.
//!
//! - [`prompt`]: a text and its question as a ChatML prompt fitted to a token budget.
//! - [`choice`]: each label's answer sentence scored by the model's likelihood (no training).
//! - [`probe`]: a trained head-only classifier over pooled hidden states (the shipped ones).
//! - [`head`]: a stage-2 LoRA adapter with its dense head.
//! - [`explain`]: the model's own answer with its reasoning.
//! - [`explainer`]: the shipped stage-1 adapter that writes explanations.
//! - [`pipeline`]: a loaded model and the scorer for a task, giving [`Classification`]s,
//!   and the model's explanation.
//! - [`seq2seq`]: the same for encoder-decoder models (MentalBART, MentalT5).
//!
//! Every function reads tensors back with an asynchronous read (a browser cannot block on a
//! WebGPU buffer); the native entry points wrap them with [`blocking`].

pub mod choice;
pub mod error;
pub mod explain;
pub mod explainer;
pub mod head;
pub mod pipeline;
pub mod probe;
pub mod prompt;
pub mod seq2seq;

pub use error::ClassifyError;
pub use explain::reasoning;
pub use head::StageTwo;
pub use pipeline::{Classification, NOTE, Pipeline, Scorer, argmax};
pub use probe::LoadedProbe;
pub use prompt::{FormatSource, Prompt, Prompter, chat_format};
pub use seq2seq::Seq2SeqPipeline;

/// Runs an asynchronous pipeline step to its end on this thread (native code; in a browser
/// only a step that needs no wait completes, else [`ClassifyError::Blocking`]).
pub fn blocking<T>(
    step: impl Future<Output = Result<T, ClassifyError>>,
) -> Result<T, ClassifyError> {
    burn::tensor::try_read_sync(step).ok_or(ClassifyError::Blocking)?
}
