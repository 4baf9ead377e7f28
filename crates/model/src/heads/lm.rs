//! The causal-LM head over the decoder body (candle's `ModelForCausalLM` split).

use burn::module::Module;
use burn::tensor::Tensor;

use crate::ModelError;
use crate::cache::KvCache;
use crate::config::ModelConfig;
use crate::decoder::{Decoder, TokenBatch};
use crate::rope::Rope;
use crate::routes::RowAdapters;
use crate::vocab::VocabTable;

/// The LM head, `[vocab, hidden]`: logits are `hidden · weightᵀ` ([`VocabTable::logits`]).
/// With tied embeddings it shares the embedding's tensors.
pub type LmHead = VocabTable;

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
            &self.model.embed_tokens.device(),
        )
    }

    /// Logits at every position, `[batch, seq, vocab]`.
    pub fn forward(
        &self,
        batch: TokenBatch<'_>,
        rope: &Rope,
        cache: &mut KvCache,
    ) -> Result<Tensor<3>, ModelError> {
        Ok(self.lm_head.logits(self.model.forward(batch, rope, cache)?))
    }

    /// Logits at the last position only, `[batch, vocab]`: generation needs no more, and the
    /// vocabulary projection is the largest matmul of a step.
    pub fn forward_last(
        &self,
        batch: TokenBatch<'_>,
        rope: &Rope,
        cache: &mut KvCache,
    ) -> Result<Tensor<2>, ModelError> {
        self.forward_last_routed(batch, rope, cache, None)
    }

    /// [`CausalLm::forward_last`] for a batch whose rows each add their own adapter to this
    /// model's projections ([`RowAdapters`]); the LM head carries no adapter.
    pub fn forward_last_routed(
        &self,
        batch: TokenBatch<'_>,
        rope: &Rope,
        cache: &mut KvCache,
        routes: Option<&RowAdapters<'_>>,
    ) -> Result<Tensor<2>, ModelError> {
        let hidden = self.model.forward_routed(batch, rope, cache, routes)?;
        let [b, s, _] = hidden.dims();
        let logits = self.lm_head.logits(hidden.narrow(1, s - 1, 1));
        let vocab = logits.dims()[2];
        Ok(logits.reshape([b, vocab]))
    }
}
