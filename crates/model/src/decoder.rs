//! The decoder body: token embedding → layers → final norm. Returns hidden states; the
//! heads (LM, classifier) are separate modules.

use burn::module::Module;
use burn::tensor::{Int, Tensor, TensorData};

use crate::ModelError;
use crate::attention::AttentionInput;
use crate::block::Block;
use crate::cache::KvCache;
use crate::linear::Linear;
use crate::norm::RmsNorm;
use crate::rope::Rope;
use crate::routes::RowAdapters;
use crate::vocab::VocabTable;

/// The token embedding, `[vocab, hidden]`.
pub type Embedding = VocabTable;

#[derive(Module, Debug)]
pub struct Decoder {
    pub embed_tokens: Embedding,
    pub layers: Vec<Block>,
    pub norm: RmsNorm,
}

/// A batch of token rows of equal length; `valid[b][i]` is false for (left) padding.
pub struct TokenBatch<'a> {
    pub ids: &'a [Vec<u32>],
    pub valid: &'a [Vec<bool>],
}

impl<'a> TokenBatch<'a> {
    /// Checks the batch is rectangular and `ids` and `valid` agree.
    fn dims(&self) -> Result<(usize, usize), ModelError> {
        let b = self.ids.len();
        let s = self.ids.first().map_or(0, Vec::len);
        if b == 0 || s == 0 {
            return Err(ModelError::Input("empty token batch".into()));
        }
        if self.valid.len() != b {
            return Err(ModelError::Input(format!(
                "{b} token rows but {} mask rows",
                self.valid.len()
            )));
        }
        for (i, (row, mask)) in self.ids.iter().zip(self.valid).enumerate() {
            if row.len() != s || mask.len() != s {
                return Err(ModelError::Input(format!(
                    "batch row {i} has {} tokens and {} mask entries, expected {s}",
                    row.len(),
                    mask.len()
                )));
            }
        }
        Ok((b, s))
    }
}

impl Decoder {
    /// Every projection of every layer with its layer index and HF path
    /// (`self_attn.q_proj`, `mlp.down_proj`, ...): where LoRA adapters attach.
    pub fn linears_mut(&mut self) -> Vec<(usize, &'static str, &mut Linear)> {
        let mut out = Vec::with_capacity(self.layers.len() * 7);
        for (i, block) in self.layers.iter_mut().enumerate() {
            let a = &mut block.self_attn;
            let m = &mut block.mlp;
            out.push((i, "self_attn.q_proj", &mut a.q_proj));
            out.push((i, "self_attn.k_proj", &mut a.k_proj));
            out.push((i, "self_attn.v_proj", &mut a.v_proj));
            out.push((i, "self_attn.o_proj", &mut a.o_proj));
            out.push((i, "mlp.gate_proj", &mut m.gate_proj));
            out.push((i, "mlp.up_proj", &mut m.up_proj));
            out.push((i, "mlp.down_proj", &mut m.down_proj));
        }
        out
    }

    pub fn vocab_size(&self) -> usize {
        self.embed_tokens.dims()[0]
    }

    pub fn hidden_size(&self) -> usize {
        self.embed_tokens.dims()[1]
    }

    /// Hidden states after the final norm, `[batch, seq, hidden]`, for a new chunk of tokens
    /// appended to `cache` (an empty cache for a whole sequence).
    pub fn forward(
        &self,
        batch: TokenBatch<'_>,
        rope: &Rope,
        cache: &mut KvCache,
    ) -> Result<Tensor<3>, ModelError> {
        self.forward_routed(batch, rope, cache, None)
    }

    /// [`Decoder::forward`] for a batch whose rows each add their own adapter (`routes`, one
    /// entry per row) to this decoder's projections, computed once for all rows.
    pub fn forward_routed(
        &self,
        batch: TokenBatch<'_>,
        rope: &Rope,
        cache: &mut KvCache,
        routes: Option<&RowAdapters<'_>>,
    ) -> Result<Tensor<3>, ModelError> {
        if let Some(r) = routes.filter(|r| r.len() != batch.ids.len()) {
            return Err(ModelError::Input(format!(
                "adapters for {} rows, batch has {}",
                r.len(),
                batch.ids.len()
            )));
        }
        let (mut x, mut input) = self.prepare(&batch, rope, cache)?;
        input.routes = routes;
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.forward(x, i, &mut input);
        }
        Ok(self.norm.forward(x))
    }

    /// The hidden states after the first `depth` layers, for each depth of `depths`
    /// (ascending), as HF's `output_hidden_states` numbers them: 0 is the embedding, and the
    /// full depth is the output after the final norm. Layers above the deepest are not run.
    pub fn forward_depths(
        &self,
        batch: TokenBatch<'_>,
        rope: &Rope,
        cache: &mut KvCache,
        depths: &[usize],
    ) -> Result<Vec<Tensor<3>>, ModelError> {
        let n = self.layers.len();
        if depths.is_empty() || depths.windows(2).any(|w| w[0] >= w[1]) {
            return Err(ModelError::Input(format!(
                "layer depths {depths:?} must be a non-empty ascending list"
            )));
        }
        if let Some(&bad) = depths.iter().find(|&&d| d > n) {
            return Err(ModelError::Input(format!(
                "layer depth {bad} is deeper than the model's {n} layers"
            )));
        }
        let (mut x, mut input) = self.prepare(&batch, rope, cache)?;
        let mut out = Vec::with_capacity(depths.len());
        let deepest = *depths.last().expect("non-empty");
        if depths[0] == 0 {
            out.push(x.clone());
        }
        for (i, layer) in self.layers.iter().enumerate().take(deepest) {
            x = layer.forward(x, i, &mut input);
            if i + 1 == n {
                out.push(self.norm.forward(x.clone()));
            } else if depths.contains(&(i + 1)) {
                out.push(x.clone());
            }
        }
        Ok(out)
    }

    /// Layers `start..` and the final norm over `x` `[batch, seq, hidden]`, the hidden states
    /// after the first `start` layers (as [`Decoder::forward_depths`] returns them), for a
    /// whole sequence in an empty `cache`. With the layers below `start` frozen, their output
    /// can be computed once and kept: training the layers above then starts here.
    pub fn forward_from(
        &self,
        x: Tensor<3>,
        start: usize,
        valid: &[Vec<bool>],
        rope: &Rope,
        cache: &mut KvCache,
    ) -> Result<Tensor<3>, ModelError> {
        let [b, s, h] = x.dims();
        if start > self.layers.len() || h != self.hidden_size() {
            return Err(ModelError::Input(format!(
                "a prefix of depth {start} and width {h} does not fit a model of {} layers and width {}",
                self.layers.len(),
                self.hidden_size()
            )));
        }
        if valid.len() != b || valid.iter().any(|row| row.len() != s) {
            return Err(ModelError::Input(format!(
                "the mask does not match the prefix's {b} rows of {s} positions"
            )));
        }
        let mut input = self.attention_input(valid, b, s, rope, cache)?;
        let mut x = x;
        for (i, layer) in self.layers.iter().enumerate().skip(start) {
            x = layer.forward(x, i, &mut input);
        }
        Ok(self.norm.forward(x))
    }

    /// Checks the batch, lays it into the cache and embeds it: the input of the first layer
    /// and the attention's positions and mask.
    fn prepare<'c>(
        &self,
        batch: &TokenBatch<'_>,
        rope: &Rope,
        cache: &'c mut KvCache,
    ) -> Result<(Tensor<3>, AttentionInput<'c>), ModelError> {
        let (b, s) = batch.dims()?;
        let vocab = self.vocab_size();
        if let Some(&bad) = batch.ids.iter().flatten().find(|&&id| id as usize >= vocab) {
            return Err(ModelError::Input(format!(
                "token id {bad} is outside the vocabulary of {vocab}"
            )));
        }
        let input = self.attention_input(batch.valid, b, s, rope, cache)?;
        let ids: Vec<i64> = batch.ids.iter().flatten().map(|&id| id as i64).collect();
        let hidden = self.hidden_size();
        Ok((self.embed_tokens.lookup(ids).reshape([b, s, hidden]), input))
    }

    /// Lays a chunk of `b` rows of `s` positions into the cache: the rotary tables at their
    /// positions and the attention mask.
    fn attention_input<'c>(
        &self,
        valid: &[Vec<bool>],
        b: usize,
        s: usize,
        rope: &Rope,
        cache: &'c mut KvCache,
    ) -> Result<AttentionInput<'c>, ModelError> {
        if cache.batch() != 0 && cache.batch() != b {
            return Err(ModelError::Input(format!(
                "cache holds {} sequences, batch has {b}",
                cache.batch()
            )));
        }
        if cache.seq_len() + s > rope.len() {
            return Err(ModelError::Input(format!(
                "sequence of {} tokens exceeds the {} positions this model was set up for",
                cache.seq_len() + s,
                rope.len()
            )));
        }
        let device = self.embed_tokens.device();
        let layout = cache.extend(valid);
        let positions =
            Tensor::<1, Int>::from_data(TensorData::new(layout.positions, [b * s]), &device);
        let (cos, sin) = rope.tables(positions, b, s);
        let mask = Tensor::<4>::from_data(
            TensorData::new(layout.mask, [b, 1, s, layout.total]),
            &device,
        );
        Ok(AttentionInput {
            cos,
            sin,
            mask,
            cache,
            routes: None,
        })
    }
}
