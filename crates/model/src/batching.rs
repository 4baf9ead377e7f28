//! Continuous batching: one batch of sequences decoding together, which new sequences join
//! at any step (after a prefill of their own) and finished ones leave. A server keeps one
//! such batch over the base and steps it while requests come and go, each row with its own
//! adapter ([`RowAdapters`]); `generate` is the fixed batch of one call.

use crate::ModelError;
use crate::cache::KvCache;
use crate::decoder::TokenBatch;
use crate::generate::{left_pad, logits_to_rows};
use crate::heads::lm::CausalLm;
use crate::rope::Rope;
use crate::routes::RowAdapters;

pub struct LiveBatch {
    rope: Rope,
    cache: KvCache,
}

impl LiveBatch {
    /// An empty batch, with rotary tables for the model's whole context.
    pub fn new(model: &CausalLm) -> Self {
        Self {
            rope: model.rope(model.config.max_position_embeddings),
            cache: model.new_cache(),
        }
    }

    /// Sequences decoding now.
    pub fn len(&self) -> usize {
        self.cache.batch()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Key positions the cache holds per sequence (padding included): the longest living
    /// sequence's prompt and new tokens, once rows have left.
    pub fn width(&self) -> usize {
        self.cache.seq_len()
    }

    /// The model's context: a sequence's prompt and new tokens must fit in it.
    pub fn context(&self) -> usize {
        self.rope.len()
    }

    /// Runs `prompts` (left-padded among themselves) and adds them as the last rows; returns
    /// each one's next-token logits.
    pub fn join(
        &mut self,
        model: &CausalLm,
        prompts: &[Vec<u32>],
        pad_id: u32,
    ) -> Result<Vec<Vec<f32>>, ModelError> {
        if prompts.is_empty() {
            return Ok(Vec::new());
        }
        if let Some(p) = prompts
            .iter()
            .find(|p| p.is_empty() || p.len() > self.context())
        {
            return Err(ModelError::Input(format!(
                "a prompt has {} tokens; it needs 1 to {} (the model's context)",
                p.len(),
                self.context()
            )));
        }
        let (ids, valid) = left_pad(prompts, pad_id);
        let mut cache = model.new_cache();
        let logits = model.forward_last(
            TokenBatch {
                ids: &ids,
                valid: &valid,
            },
            &self.rope,
            &mut cache,
        )?;
        let rows = logits_to_rows(logits)?;
        self.cache.join(cache);
        Ok(rows)
    }

    /// Feeds each row its next token; returns each row's next-token logits.
    pub fn step(&mut self, model: &CausalLm, ids: &[u32]) -> Result<Vec<Vec<f32>>, ModelError> {
        self.step_routed(model, ids, None)
    }

    /// [`LiveBatch::step`] for rows that each add their own adapter to `model` (its base):
    /// each product over the base once for the batch, and each row's low-rank term.
    pub fn step_routed(
        &mut self,
        model: &CausalLm,
        ids: &[u32],
        routes: Option<&RowAdapters<'_>>,
    ) -> Result<Vec<Vec<f32>>, ModelError> {
        if ids.len() != self.len() {
            return Err(ModelError::Input(format!(
                "{} tokens for a batch of {} sequences",
                ids.len(),
                self.len()
            )));
        }
        let next: Vec<Vec<u32>> = ids.iter().map(|&id| vec![id]).collect();
        let valid = vec![vec![true]; ids.len()];
        let logits = model.forward_last_routed(
            TokenBatch {
                ids: &next,
                valid: &valid,
            },
            &self.rope,
            &mut self.cache,
            routes,
        )?;
        logits_to_rows(logits)
    }

    /// Keeps the rows where `keep` is true, in order.
    pub fn retain(&mut self, keep: &[bool]) {
        self.cache.retain(keep);
    }
}
