//! One batch over a shared base whose rows use different LoRA adapters (vLLM's and LoRAX's
//! multi-adapter batches): every base product is computed once for all rows, and each row
//! adds its own adapter's low-rank term. A server decodes the requests for the base and for
//! each adapter in one batch this way, none of them merged into the base.

use burn::tensor::{IndexingUpdateOp, Int, Tensor, TensorData};

use crate::ModelError;
use crate::block::Block;
use crate::decoder::Decoder;
use crate::linear::Linear;

/// Where a projection sits in a layer, to find its twin in each adapter's decoder.
pub(crate) type Pick = fn(&Block) -> &Linear;

/// Which adapter each row of a batch adds to the base.
pub struct RowAdapters<'a> {
    /// Rows in the batch.
    rows: usize,
    /// Per adapter with rows in the batch: its decoder (a copy of the base with LoRA on some
    /// projections; only its adapters are read) and the indices of its rows.
    groups: Vec<(&'a Decoder, Tensor<1, Int>)>,
}

impl<'a> RowAdapters<'a> {
    /// `rows[i]` is row i's index into `decoders`, or `None` for the base alone. Checks that
    /// every row names one of `decoders`, and that each has the base's layers.
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
        // The index tensors once per batch, not once per projection.
        let device = base.embed_tokens.device();
        let groups = decoders
            .iter()
            .enumerate()
            .filter_map(|(i, &decoder)| {
                let own: Vec<i64> = (0..rows.len())
                    .filter(|&r| rows[r] == Some(i))
                    .map(|r| r as i64)
                    .collect();
                let n = own.len();
                (n > 0).then(|| {
                    let index = Tensor::<1, Int>::from_data(TensorData::new(own, [n]), &device);
                    (decoder, index)
                })
            })
            .collect();
        Ok(Self {
            rows: rows.len(),
            groups,
        })
    }

    /// Rows in the batch.
    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// `y + s·x·Aᵀ·Bᵀ` for each row's adapter on the projection `pick` chooses in layer
    /// `layer` (`x`: `[rows, seq, in]`, `y`: `[rows, seq, out]`). Rows without an adapter
    /// there keep `y` as it is; each adapter's term is one product over its own rows.
    fn add(&self, y: Tensor<3>, x: &Tensor<3>, layer: usize, pick: Pick) -> Tensor<3> {
        let [_, s, d] = x.dims();
        let out = y.dims()[2];
        let mut y = y;
        for (decoder, index) in &self.groups {
            let Some(lora) = decoder
                .layers
                .get(layer)
                .and_then(|b| pick(b).lora.as_ref())
            else {
                continue;
            };
            let n = index.dims()[0];
            let rows = x.clone().select(0, index.clone()).reshape([n * s, d]);
            let term = lora.forward_2d(rows).reshape([n, s, out]);
            y = y.select_assign(0, index.clone(), term, IndexingUpdateOp::Add);
        }
        y
    }
}

/// `layers` over one input `x` as [`Linear::forward_many`] gives them, plus, when `routes`
/// is given, each row's adapter term on the projection `picks` names in layer `layer`.
pub(crate) fn project<const N: usize>(
    layers: [&Linear; N],
    picks: [Pick; N],
    x: Tensor<3>,
    layer: usize,
    routes: Option<&RowAdapters<'_>>,
) -> [Tensor<3>; N] {
    let Some(routes) = routes else {
        return Linear::forward_many(layers, x);
    };
    let ys = Linear::forward_many(layers, x.clone());
    let mut picks = picks.into_iter();
    ys.map(|y| routes.add(y, &x, layer, picks.next().expect("one pick per layer")))
}
