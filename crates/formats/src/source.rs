use crate::FormatError;

/// Shape and stored type of one tensor, as the file describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    /// Row-major shape, outermost dimension first (PyTorch order, also for GGUF).
    pub shape: Vec<usize>,
    /// The stored type as the file names it (`F32`, `BF16`, `Q4_1`, ...).
    pub dtype: String,
}

/// A file (or set of files) of named tensors that can be read as `f32`.
///
/// Implemented by the safetensors reader (HF folders, sharded or not) and the GGUF reader.
/// Names are the file's own names: the model crate's name table maps them.
pub trait TensorSource {
    /// All tensor names, in file order.
    fn tensor_names(&self) -> Vec<String>;
    /// Shape and dtype of a tensor, or `None` if absent.
    fn info(&self, name: &str) -> Option<TensorInfo>;
    /// The tensor converted to `f32`, row-major, with its shape.
    fn read_f32(&self, name: &str) -> Result<(Vec<f32>, Vec<usize>), FormatError>;
    /// A path or label for error messages.
    fn origin(&self) -> String;
}
