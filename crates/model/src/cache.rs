//! The KV cache and the attention bookkeeping that goes with it: which key positions are
//! real tokens (left padding is not) and the position id of every new token.
//!
//! Runtime state, passed to `forward`; `reset` starts a new batch.

use burn::tensor::{Int, Tensor, TensorData};

/// Additive mask value for hidden keys. Finite, so a query row whose keys are all hidden
/// (a padding position) gives a uniform softmax instead of NaN.
const MASKED: f32 = -1.0e30;

#[derive(Clone)]
pub struct KvCache {
    /// Per layer: key and value buffers `[batch, kv_heads, capacity, head_dim]` (before head
    /// repetition), of which the first `seq_len()` positions are filled. Writing into a
    /// preallocated buffer keeps a decoding step O(1) in the cache length; copying the whole
    /// cache with `cat` every step made long generations quadratic.
    layers: Vec<Option<(Tensor<4>, Tensor<4>)>>,
    /// Positions to allocate on first use (0: exactly the first chunk, then doubling).
    capacity: usize,
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
        Self::with_capacity(layers, 0)
    }

    /// A cache that allocates room for `capacity` positions up front (prompt + new tokens).
    pub fn with_capacity(layers: usize, capacity: usize) -> Self {
        Self {
            layers: vec![None; layers],
            capacity,
            valid: Vec::new(),
        }
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
        StepLayout {
            positions,
            mask,
            total,
        }
    }

    /// Appends this step's keys and values for `layer` and returns all cached ones. Call after
    /// [`KvCache::extend`], which has already counted the new positions.
    pub fn append(&mut self, layer: usize, k: Tensor<4>, v: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
        let [b, h, s, d] = k.dims();
        let end = self.seq_len();
        let start = end - s;
        let (kb, vb) = match self.layers[layer].take() {
            Some((kb, vb)) if kb.dims()[2] >= end => (kb, vb),
            old => {
                // Allocate (or grow by doubling), keeping what was cached.
                let cap = self
                    .capacity
                    .max(end)
                    .max(old.as_ref().map_or(0, |(kb, _)| 2 * kb.dims()[2]));
                let device = k.device();
                let mut kb = Tensor::zeros([b, h, cap, d], &device);
                let mut vb = Tensor::zeros([b, h, cap, d], &device);
                if let Some((ok, ov)) = old {
                    let n = ok.dims()[2].min(start);
                    kb = kb.slice_assign([0..b, 0..h, 0..n, 0..d], ok.narrow(2, 0, n));
                    vb = vb.slice_assign([0..b, 0..h, 0..n, 0..d], ov.narrow(2, 0, n));
                }
                (kb, vb)
            }
        };
        let kb = kb.slice_assign([0..b, 0..h, start..end, 0..d], k);
        let vb = vb.slice_assign([0..b, 0..h, start..end, 0..d], v);
        self.layers[layer] = Some((kb.clone(), vb.clone()));
        (kb.narrow(2, 0, end), vb.narrow(2, 0, end))
    }

    /// The sequences of `other` (a cache of its own prefill) become new rows after this
    /// cache's, for continuous batching. The two are aligned on their last position: the
    /// shorter side gets hidden keys in front, which shift no position (positions count real
    /// keys only).
    pub fn join(&mut self, other: KvCache) {
        if other.batch() == 0 {
            return;
        }
        if self.batch() == 0 {
            let layers = self.layers.len();
            *self = other;
            self.layers.resize(layers.max(self.layers.len()), None);
            return;
        }
        let (mine, theirs) = (self.seq_len(), other.seq_len());
        let len = mine.max(theirs);
        // One buffer for both, with room to grow as `append` would leave it (doubling), so
        // that the next step writes into it instead of copying the whole cache again.
        let cap = self.capacity.max(2 * len);
        for (a, b) in self.layers.iter_mut().zip(other.layers) {
            *a = match (a.take(), b) {
                (Some((ka, va)), Some((kb, vb))) => Some((
                    side_by_side(ka, mine, kb, theirs, len, cap),
                    side_by_side(va, mine, vb, theirs, len, cap),
                )),
                // A layer neither side has run: nothing cached to align.
                (a, _) => a,
            };
        }
        for row in self.valid.iter_mut() {
            row.splice(0..0, std::iter::repeat_n(false, len - mine));
        }
        for mut row in other.valid {
            row.splice(0..0, std::iter::repeat_n(false, len - theirs));
            self.valid.push(row);
        }
    }

    /// Keeps the rows where `keep` is true (sequences that ended, or whose client left, go),
    /// then drops the leading positions no remaining row uses, so a batch that lives on
    /// while sequences come and go does not grow without bound.
    pub fn retain(&mut self, keep: &[bool]) {
        let rows: Vec<usize> = (0..self.batch())
            .filter(|&b| keep.get(b) == Some(&true))
            .collect();
        if rows.is_empty() {
            self.reset();
            return;
        }
        let len = self.seq_len();
        let mut valid: Vec<Vec<bool>> = rows.iter().map(|&b| self.valid[b].clone()).collect();
        let start = valid
            .iter()
            .map(|r| r.iter().position(|&v| v).unwrap_or(len))
            .min()
            .unwrap_or(0);
        for row in valid.iter_mut() {
            row.drain(..start);
        }
        let all = rows.len() == self.batch();
        for layer in self.layers.iter_mut() {
            if let Some((k, v)) = layer.take() {
                let device = k.device();
                let index = Tensor::<1, Int>::from_data(
                    TensorData::new(
                        rows.iter().map(|&b| b as i64).collect::<Vec<_>>(),
                        [rows.len()],
                    ),
                    &device,
                );
                let (k, v) = if all {
                    (k, v)
                } else {
                    (k.select(0, index.clone()), v.select(0, index))
                };
                *layer = Some((
                    k.narrow(2, start, len - start),
                    v.narrow(2, start, len - start),
                ));
            }
        }
        self.valid = valid;
    }
}

/// The rows of `a` then those of `b` (`[batch, heads, capacity, dim]`, of which the first
/// `filled_a` and `filled_b` positions are filled) in one buffer of `cap` positions, each
/// aligned to end at position `len`: zeros in front of the shorter.
fn side_by_side(
    a: Tensor<4>,
    filled_a: usize,
    b: Tensor<4>,
    filled_b: usize,
    len: usize,
    cap: usize,
) -> Tensor<4> {
    let ([ba, h, _, d], bb) = (a.dims(), b.dims()[0]);
    let out = Tensor::zeros([ba + bb, h, cap, d], &a.device());
    let out = out.slice_assign(
        [0..ba, 0..h, len - filled_a..len, 0..d],
        a.narrow(2, 0, filled_a),
    );
    out.slice_assign(
        [ba..ba + bb, 0..h, len - filled_b..len, 0..d],
        b.narrow(2, 0, filled_b),
    )
}
