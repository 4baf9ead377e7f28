//! A vocabulary-sized table (the token embedding, the LM head), held whole, as GGUF codes, or
//! as consecutive blocks of rows for a device whose largest buffer is smaller than the table
//! (WebGPU's `maxStorageBufferBindingSize` is 128 MiB by default, and a Qwen 0.5B table is
//! 520 MiB in f32). Lookups, logits and the loss give what the whole f32 table would.

use burn::module::Module;
use burn::tensor::{Device, Int, Tensor, TensorData};
use kernels::QuantizedLinear;

use crate::ModelError;
pub use crate::weight::RowParts;
use crate::weight::{Codes, Weight};

/// A `[vocab, hidden]` table (the token embedding `model.embed_tokens`, and the LM head
/// `lm_head`; with tied embeddings the same tensors, shared, not copied).
#[derive(Module, Debug)]
pub struct VocabTable {
    pub weight: Weight,
}

impl VocabTable {
    pub fn new(weight: Tensor<2>) -> Self {
        Self {
            weight: Weight::new(weight),
        }
    }

    /// A table kept as GGUF codes (inference only): rows are dequantized as they are looked
    /// up, and the logits come from the quantized kernel.
    pub fn quantized(table: QuantizedLinear) -> Self {
        Self {
            weight: Weight::Quantized(Codes(table)),
        }
    }

    /// A table held in row blocks, for a device whose largest buffer is smaller than it
    /// (inference only: no gradient reaches it).
    pub fn split(parts: RowParts) -> Self {
        Self {
            weight: Weight::Rows(parts),
        }
    }

    /// `[vocab, hidden]`.
    pub fn dims(&self) -> [usize; 2] {
        self.weight.dims()
    }

    /// The device the table is on.
    pub fn device(&self) -> Device {
        self.weight.device()
    }

    /// The rows of `ids`, `[ids.len(), hidden]`: the embedding lookup.
    pub fn lookup(&self, ids: Vec<i64>) -> Tensor<2> {
        self.weight.lookup(ids)
    }

    /// `hidden · tableᵀ` over the last dimension, `[batch, seq, vocab]`: the LM head's logits.
    pub fn logits(&self, hidden: Tensor<3>) -> Tensor<3> {
        let [b, s, h] = hidden.dims();
        let x = hidden.reshape([b * s, h]);
        let logits = self.weight.project(x);
        let vocab = logits.dims()[1];
        logits.reshape([b, s, vocab])
    }
}

impl VocabTable {
    /// Per-row negative log-likelihood of `targets` (one token id per row of `hidden [n,
    /// hidden]`) under the softmax of the LM head's logits, `[n]`: the training and scoring
    /// loss. A whole table goes through `kernels::vocab_nll`, which on the CPU never keeps
    /// the `[n, vocab]` logits and gives `hidden` its gradient in the same pass; a table in
    /// row blocks (inference only) takes the logits and their log-softmax.
    pub fn nll(&self, hidden: Tensor<2>, targets: Vec<i64>) -> Result<Tensor<1>, ModelError> {
        let [vocab, _] = self.dims();
        let n = targets.len();
        if hidden.dims()[0] != n {
            return Err(ModelError::Input(format!(
                "{n} target tokens for {} hidden rows",
                hidden.dims()[0]
            )));
        }
        if let Some(&bad) = targets.iter().find(|&&t| t < 0 || t >= vocab as i64) {
            return Err(ModelError::Input(format!(
                "target token id {bad} is outside the vocabulary of {vocab}"
            )));
        }
        let device = hidden.device();
        let targets = Tensor::<1, Int>::from_data(TensorData::new(targets, [n]), &device);
        Ok(match self.weight.dense() {
            Some(table) if fused_nll() => kernels::vocab_nll(hidden, table, targets),
            _ => kernels::nll::nll_of_logits(self.weight.project(hidden), targets),
        })
    }
}

/// Whether the loss takes the fused op: the settings' `fused_nll`; off
/// (`MENTALQLM_FUSED_NLL=0`) takes the log-softmax of the whole logits, for comparisons.
fn fused_nll() -> bool {
    kernels::settings::current().fused_nll
}
