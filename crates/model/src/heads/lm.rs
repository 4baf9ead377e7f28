//! The causal-LM head over the decoder body (candle's `ModelForCausalLM` split).

use burn::module::{Module, Param};
use burn::tensor::Tensor;

use crate::ModelError;
use crate::cache::KvCache;
use crate::config::ModelConfig;
use crate::decoder::{Decoder, TokenBatch};
use crate::rope::Rope;
use crate::vocab::RowParts;

#[derive(Module, Debug)]
pub struct LmHead {
    /// `[vocab, hidden]`. With tied embeddings this is the embedding tensor itself (shared,
    /// not copied). A `[1, 1]` placeholder when the rows are held in `parts`.
    pub weight: Param<Tensor<2>>,
    /// The head split by rows, for a device whose largest buffer is smaller than it
    /// (inference only); tied to the embedding's parts when the embeddings are tied.
    #[module(skip)]
    pub parts: Option<RowParts>,
}

impl LmHead {
    pub fn new(weight: Tensor<2>) -> Self {
        Self {
            weight: Param::from_tensor(weight),
            parts: None,
        }
    }

    /// A head held in row blocks.
    pub fn split(parts: RowParts) -> Self {
        let device = parts.parts[0].device();
        Self {
            weight: Param::from_tensor(Tensor::zeros([1, 1], &device)),
            parts: Some(parts),
        }
    }

    pub fn forward(&self, hidden: Tensor<3>) -> Tensor<3> {
        let [b, s, h] = hidden.dims();
        let x = hidden.reshape([b * s, h]);
        let logits = match &self.parts {
            Some(parts) => parts.project(x),
            None => x.matmul(self.weight.val().transpose()),
        };
        let vocab = logits.dims()[1];
        logits.reshape([b, s, vocab])
    }
}

#[derive(Module, Debug)]
pub struct CausalLm {
    pub model: Decoder,
    pub lm_head: LmHead,
    #[module(skip)]
    pub config: ModelConfig,
}

impl CausalLm {
    /// A cache sized for this model.
    pub fn new_cache(&self) -> KvCache {
        KvCache::new(self.model.layers.len())
    }

    /// A cache with room for `positions` tokens allocated on first use.
    pub fn new_cache_for(&self, positions: usize) -> KvCache {
        KvCache::with_capacity(self.model.layers.len(), positions)
    }

    /// Rotary tables for up to `len` positions on the model's device.
    pub fn rope(&self, len: usize) -> Rope {
        Rope::new(
            self.config.head_dim(),
            self.config.rope_theta(),
            len,
            &self.model.embed_tokens.weight.device(),
        )
    }

    /// Logits at every position, `[batch, seq, vocab]`.
    pub fn forward(
        &self,
        batch: TokenBatch<'_>,
        rope: &Rope,
        cache: &mut KvCache,
    ) -> Result<Tensor<3>, ModelError> {
        Ok(self
            .lm_head
            .forward(self.model.forward(batch, rope, cache)?))
    }

    /// Logits at the last position only, `[batch, vocab]`: generation needs no more, and the
    /// vocabulary projection is the largest matmul of a step.
    pub fn forward_last(
        &self,
        batch: TokenBatch<'_>,
        rope: &Rope,
        cache: &mut KvCache,
    ) -> Result<Tensor<2>, ModelError> {
        let hidden = self.model.forward(batch, rope, cache)?;
        let [b, s, _] = hidden.dims();
        let logits = self.lm_head.forward(hidden.narrow(1, s - 1, 1));
        let vocab = logits.dims()[2];
        Ok(logits.reshape([b, vocab]))
    }
}
