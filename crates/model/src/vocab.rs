//! A vocabulary-sized table (the token embedding, the LM head) held as consecutive blocks of
//! rows, for a device whose largest buffer is smaller than the table: WebGPU's
//! `maxStorageBufferBindingSize` is 128 MiB by default, and a Qwen 0.5B table is 520 MiB in
//! f32. Lookups and the output projection give what the whole table would.

use burn::module::{Module, Param};
use burn::tensor::{Device, Int, Tensor, TensorData};
use kernels::QuantizedLinear;

use crate::ModelError;

/// A `[vocab, hidden]` table: the token embedding (`model.embed_tokens`) and the LM head
/// (`lm_head`; with tied embeddings the same tensors, shared, not copied).
#[derive(Module, Debug)]
pub struct VocabTable {
    /// `[vocab, hidden]`; a `[1, 1]` placeholder when the rows are held in `parts` or
    /// `quantized`.
    pub weight: Param<Tensor<2>>,
    /// The table split by rows, for a device whose largest buffer is smaller than it
    /// (inference only: no gradient reaches it).
    #[module(skip)]
    pub parts: Option<RowParts>,
    /// The table kept as GGUF codes (inference only): rows are dequantized as they are
    /// looked up, and the logits come from the quantized kernel.
    #[module(skip)]
    pub quantized: Option<QuantizedLinear>,
}

impl VocabTable {
    pub fn new(weight: Tensor<2>) -> Self {
        Self {
            weight: Param::from_tensor(weight),
            parts: None,
            quantized: None,
        }
    }

    /// A table kept quantized.
    pub fn quantized(table: QuantizedLinear) -> Self {
        let device = table.scales.device();
        Self {
            weight: Param::from_tensor(Tensor::zeros([1, 1], &device)),
            parts: None,
            quantized: Some(table),
        }
    }

    /// A table held in row blocks.
    pub fn split(parts: RowParts) -> Self {
        let device = parts.parts[0].device();
        Self {
            weight: Param::from_tensor(Tensor::zeros([1, 1], &device)),
            parts: Some(parts),
            quantized: None,
        }
    }

    /// `[vocab, hidden]`.
    pub fn dims(&self) -> [usize; 2] {
        match (&self.parts, &self.quantized) {
            (Some(p), _) => [p.rows, p.cols],
            (_, Some(q)) => [q.n, q.k],
            _ => self.weight.dims(),
        }
    }

    /// The rows of `ids`, `[ids.len(), hidden]`: the embedding lookup.
    pub fn lookup(&self, ids: Vec<i64>) -> Tensor<2> {
        if let Some(p) = &self.parts {
            return p.select(&ids);
        }
        let n = ids.len();
        let ids = Tensor::<1, Int>::from_data(TensorData::new(ids, [n]), &self.weight.device());
        match &self.quantized {
            Some(q) => q.rows(ids),
            None => self.weight.val().select(0, ids),
        }
    }

    /// `hidden · tableᵀ` over the last dimension, `[batch, seq, vocab]`: the LM head's logits.
    pub fn logits(&self, hidden: Tensor<3>) -> Tensor<3> {
        let [b, s, h] = hidden.dims();
        let x = hidden.reshape([b * s, h]);
        let logits = self.project(x);
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
        Ok(match (&self.parts, &self.quantized) {
            (None, None) if fused_nll() => kernels::vocab_nll(hidden, self.weight.val(), targets),
            _ => kernels::nll::nll_of_logits(self.project(hidden), targets),
        })
    }

    /// `x · tableᵀ` for `x: [n, hidden]`, `[n, vocab]`, however the table is held.
    fn project(&self, x: Tensor<2>) -> Tensor<2> {
        match (&self.parts, &self.quantized) {
            (Some(parts), _) => parts.project(x),
            (_, Some(q)) => q.project(x),
            _ => x.matmul(self.weight.val().transpose()),
        }
    }
}

/// Whether the loss takes the fused op: the settings' `fused_nll`; off
/// (`MENTALQLM_FUSED_NLL=0`) takes the log-softmax of the whole logits, for comparisons.
fn fused_nll() -> bool {
    kernels::settings::current().fused_nll
}

#[derive(Clone, Debug)]
pub struct RowParts {
    /// `[rows_i, cols]` each; together the table's rows in order. Never empty: a table is
    /// split only when it is larger than the limit.
    pub parts: Vec<Tensor<2>>,
    pub rows: usize,
    pub cols: usize,
}

impl RowParts {
    /// Splits a row-major `[rows, cols]` table of f32 into blocks of at most `max_bytes`.
    /// `name` names the tensor in the error when not even one row fits.
    pub fn split(
        name: &str,
        values: Vec<f32>,
        [rows, cols]: [usize; 2],
        max_bytes: u64,
        device: &Device,
    ) -> Result<Self, ModelError> {
        let row_bytes = (cols as u64) * 4;
        let per_part = (max_bytes / row_bytes.max(1)) as usize;
        if per_part == 0 {
            return Err(ModelError::Input(format!(
                "{name}: one row of {cols} f32 values ({row_bytes} bytes) is larger than the \
                 device's largest buffer ({max_bytes} bytes)"
            )));
        }
        let parts = values
            .chunks(per_part * cols)
            .map(|block| {
                Tensor::from_data(
                    TensorData::new(block.to_vec(), [block.len() / cols.max(1), cols]),
                    device,
                )
            })
            .collect();
        Ok(Self { parts, rows, cols })
    }

    /// The rows at `ids` (each below `rows`), `[ids.len(), cols]`. Each part gathers the
    /// ids that fall in it (others read its row 0 and are zeroed by a mask); parts that
    /// hold none of the ids are skipped.
    pub fn select(&self, ids: &[i64]) -> Tensor<2> {
        let device = &self.parts[0].device();
        let n = ids.len();
        let mut out: Option<Tensor<2>> = None;
        let mut start = 0i64;
        for part in &self.parts {
            let len = part.dims()[0] as i64;
            let inside = |id: i64| id >= start && id < start + len;
            let hits = ids.iter().filter(|&&id| inside(id)).count();
            if hits > 0 {
                let local: Vec<i64> = ids
                    .iter()
                    .map(|&id| if inside(id) { id - start } else { 0 })
                    .collect();
                let local = Tensor::<1, Int>::from_data(TensorData::new(local, [n]), device);
                let mut rows = part.clone().select(0, local);
                if hits < n {
                    let mask: Vec<f32> = ids.iter().map(|&id| f32::from(inside(id))).collect();
                    rows = rows * Tensor::<2>::from_data(TensorData::new(mask, [n, 1]), device);
                }
                out = Some(match out {
                    Some(sum) => sum + rows,
                    None => rows,
                });
            }
            start += len;
        }
        out.unwrap_or_else(|| Tensor::zeros([n, self.cols], device))
    }

    /// `x · tableᵀ` for `x: [n, cols]`, `[n, rows]`: one product per part, joined.
    pub fn project(&self, x: Tensor<2>) -> Tensor<2> {
        let outs: Vec<Tensor<2>> = self
            .parts
            .iter()
            .map(|part| x.clone().matmul(part.clone().transpose()))
            .collect();
        Tensor::cat(outs, 1)
    }
}
