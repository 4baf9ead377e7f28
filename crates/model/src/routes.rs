//! One batch over a shared base whose rows use different LoRA adapters (vLLM's and LoRAX's
//! multi-adapter batches): every base product is computed once for all rows, and each row
//! adds its own adapter's low-rank term. A server decodes the requests for the base and for
//! each adapter in one batch this way, none of them merged into the base.

use burn::tensor::{IndexingUpdateOp, Int, Tensor, TensorData};

use crate::ModelError;
use crate::block::Block;
use crate::decoder::Decoder;
use crate::linear::Linear;

/// Which adapter each row of a batch adds to the base.
pub struct RowAdapters<'a> {
    /// The decoders carrying the adapters: copies of the base with LoRA on some projections.
    /// Only their adapters are read; the base weights are those of the model run.
    decoders: Vec<&'a Decoder>,
    /// Each row's index into `decoders`, or `None` for the base alone.
    rows: Vec<Option<usize>>,
}

impl<'a> RowAdapters<'a> {
    /// Checks that every row names one of `decoders`, and that each has the base's layers.
    pub fn new(
        base: &Decoder,
        decoders: Vec<&'a Decoder>,
        rows: Vec<Option<usize>>,
    ) -> Result<Self, ModelError> {
        if let Some((row, i)) = rows
            .iter()
            .enumerate()
            .find_map(|(r, i)| i.filter(|&i| i >= decoders.len()).map(|i| (r, i)))
        {
            return Err(ModelError::Input(format!(
                "batch row {row} names adapter {i}, but {} are given",
                decoders.len()
            )));
        }
        if let Some(d) = decoders
            .iter()
            .find(|d| d.layers.len() != base.layers.len() || d.hidden_size() != base.hidden_size())
        {
            return Err(ModelError::Input(format!(
                "an adapter's model has {} layers of width {}, the base {} of width {}",
                d.layers.len(),
                d.hidden_size(),
                base.layers.len(),
                base.hidden_size()
            )));
        }
        Ok(Self { decoders, rows })
    }

    /// Rows in the batch.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// `y + s·x·Aᵀ·Bᵀ` for each row's adapter on the projection `pick` chooses in layer
    /// `layer` (`x`: `[rows, seq, in]`, `y`: `[rows, seq, out]`). Rows without an adapter
    /// there keep `y` as it is; each adapter's term is one product over its own rows.
    pub(crate) fn add(
        &self,
        y: Tensor<3>,
        x: &Tensor<3>,
        layer: usize,
        pick: impl Fn(&Block) -> &Linear,
    ) -> Tensor<3> {
        let [_, s, d] = x.dims();
        let out = y.dims()[2];
        let mut y = y;
        for (i, decoder) in self.decoders.iter().enumerate() {
            let Some(lora) = decoder
                .layers
                .get(layer)
                .and_then(|b| pick(b).lora.as_ref())
            else {
                continue;
            };
            let own: Vec<i64> = (0..self.rows.len())
                .filter(|&r| self.rows[r] == Some(i))
                .map(|r| r as i64)
                .collect();
            if own.is_empty() {
                continue;
            }
            let n = own.len();
            let index = Tensor::<1, Int>::from_data(TensorData::new(own, [n]), &x.device());
            let rows = x.clone().select(0, index.clone()).reshape([n * s, d]);
            let term = lora.forward_2d(rows).reshape([n, s, out]);
            y = y.select_assign(0, index, term, IndexingUpdateOp::Add);
        }
        y
    }
}
