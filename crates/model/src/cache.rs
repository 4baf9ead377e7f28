//! The KV cache and the attention bookkeeping that goes with it: which key positions are
//! real tokens (left padding is not) and the position id of every new token.
//!
//! Runtime state, passed to `forward`; `reset` starts a new batch.

use burn::tensor::Tensor;

/// Additive mask value for hidden keys. Finite, so a query row whose keys are all hidden
/// (a padding position) gives a uniform softmax instead of NaN.
const MASKED: f32 = -1.0e30;

pub struct KvCache {
    /// Per layer: keys and values `[batch, kv_heads, seq, head_dim]`, before head repetition.
    layers: Vec<Option<(Tensor<4>, Tensor<4>)>>,
    /// Per sequence: whether each cached key position is a real token.
    valid: Vec<Vec<bool>>,
}

/// What one forward step needs from the cache, computed on the host.
pub struct StepLayout {
    /// Position id of each new token, `[batch·seq]` row-major. Padding gets 0.
    pub positions: Vec<i64>,
    /// Additive attention mask `[batch, 1, seq, total]` (causal and padding).
    pub mask: Vec<f32>,
    pub total: usize,
}

impl KvCache {
    pub fn new(layers: usize) -> Self {
        Self { layers: vec![None; layers], valid: Vec::new() }
    }

    pub fn reset(&mut self) {
        self.layers.iter_mut().for_each(|l| *l = None);
        self.valid.clear();
    }

    /// Number of positions cached so far (padding included).
    pub fn seq_len(&self) -> usize {
        self.valid.first().map_or(0, Vec::len)
    }

    pub fn batch(&self) -> usize {
        self.valid.len()
    }

    /// Registers a new chunk of tokens whose realness is `chunk_valid[b][i]` and returns
    /// their positions (HF's `cumsum(mask) - 1`, so left padding does not shift them) and the
    /// attention mask over all cached keys.
    pub fn extend(&mut self, chunk_valid: &[Vec<bool>]) -> StepLayout {
        if self.valid.is_empty() {
            self.valid = vec![Vec::new(); chunk_valid.len()];
        }
        let past = self.seq_len();
        let seq = chunk_valid.first().map_or(0, Vec::len);
        let total = past + seq;
        let batch = chunk_valid.len();
        let mut positions = Vec::with_capacity(batch * seq);
        let mut mask = Vec::with_capacity(batch * seq * total);
        for (keys, new) in self.valid.iter_mut().zip(chunk_valid) {
            let mut next = keys.iter().filter(|&&v| v).count() as i64;
            keys.extend_from_slice(new);
            for (i, &real) in new.iter().enumerate() {
                positions.push(if real { next } else { 0 });
                next += real as i64;
                let query = past + i;
                mask.extend(
                    keys.iter()
                        .enumerate()
                        .map(|(k, &key_real)| if k <= query && key_real { 0.0 } else { MASKED }),
                );
            }
        }
        StepLayout { positions, mask, total }
    }

    /// Appends this step's keys and values for `layer` and returns the full cached ones.
    pub fn append(&mut self, layer: usize, k: Tensor<4>, v: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
        let (k, v) = match self.layers[layer].take() {
            Some((pk, pv)) => (Tensor::cat(vec![pk, k], 2), Tensor::cat(vec![pv, v], 2)),
            None => (k, v),
        };
        self.layers[layer] = Some((k.clone(), v.clone()));
        (k, v)
    }
}
