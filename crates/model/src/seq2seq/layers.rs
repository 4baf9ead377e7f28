//! Parts BART and T5 share: HF's LayerNorm, multi-head attention whose keys and values may
//! come from another sequence (cross-attention), the decoder's cache, and the masks.

use burn::module::{Module, Param};
use burn::tensor::activation::softmax;
use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::linear::Linear;

/// Additive mask value for hidden keys: finite, so a row with every key hidden stays a
/// number, and far below any score.
pub const MASKED: f32 = -1.0e30;

/// `torch.nn.LayerNorm` over the last dimension, with HF's parameter names.
#[derive(Module, Debug)]
pub struct LayerNorm {
    /// `[hidden]`
    pub weight: Param<Tensor<1>>,
    /// `[hidden]`
    pub bias: Param<Tensor<1>>,
    pub eps: f64,
}

impl LayerNorm {
    pub fn new(weight: Tensor<1>, bias: Tensor<1>, eps: f64) -> Self {
        Self {
            weight: Param::from_tensor(weight),
            bias: Param::from_tensor(bias),
            eps,
        }
    }

    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let centred = x.clone() - x.mean_dim(2);
        let var = centred.clone().square().mean_dim(2);
        centred / (var + self.eps).sqrt() * self.weight.val().unsqueeze::<3>()
            + self.bias.val().unsqueeze::<3>()
    }
}

/// Multi-head attention with separate query and key/value inputs. BART names the layers
/// `q_proj`/`k_proj`/`v_proj`/`out_proj`, T5 `q`/`k`/`v`/`o` (the loaders map T5's names
/// onto these fields). `scale` multiplies the scores: `head_dim^-0.5` for BART, 1 for T5
/// (whose initialisation folds the scaling into `q`).
#[derive(Module, Debug)]
pub struct Attention {
    pub q_proj: Linear,
    pub k_proj: Linear,
    pub v_proj: Linear,
    pub out_proj: Linear,
    pub num_heads: usize,
    pub head_dim: usize,
    pub scale: f64,
}

impl Attention {
    /// `[b, s, heads·d]` → `[b, heads, s, d]`.
    fn heads(&self, x: Tensor<3>) -> Tensor<4> {
        let [b, s, _] = x.dims();
        x.reshape([b, s, self.num_heads, self.head_dim])
            .swap_dims(1, 2)
    }

    /// The keys and values of `x` (`[b, t, hidden]`), `[b, heads, t, d]` each.
    pub fn keys_values(&self, x: Tensor<3>) -> (Tensor<4>, Tensor<4>) {
        (
            self.heads(self.k_proj.forward(x.clone())),
            self.heads(self.v_proj.forward(x)),
        )
    }

    /// Attends from `x` (`[b, s, hidden]`) over `k`/`v` (`[b, heads, t, d]`); `bias` is
    /// added to the scores (`[b or 1, heads or 1, s, t]`: masks, T5's position bias).
    pub fn attend(&self, x: Tensor<3>, k: Tensor<4>, v: Tensor<4>, bias: Tensor<4>) -> Tensor<3> {
        let [b, s, _] = x.dims();
        let q = self.heads(self.q_proj.forward(x));
        let mut scores = q.matmul(k.swap_dims(2, 3));
        if self.scale != 1.0 {
            scores = scores * self.scale;
        }
        let probs = softmax(scores + bias, 3);
        let out = probs
            .matmul(v)
            .swap_dims(1, 2)
            .reshape([b, s, self.num_heads * self.head_dim]);
        self.out_proj.forward(out)
    }
}

/// What the encoder hands the decoder: its last hidden state and which positions are real.
#[derive(Clone, Debug)]
pub struct Encoded {
    /// `[batch, source, hidden]`
    pub hidden: Tensor<3>,
    /// `[batch, 1, 1, source]`: 0 for real tokens, [`MASKED`] for padding.
    pub mask: Tensor<4>,
}

impl Encoded {
    /// The rows of `rows` (a sequence may appear several times: one per beam).
    pub fn select(&self, rows: &[usize]) -> Self {
        let idx = index(rows, &self.hidden.device());
        Self {
            hidden: self.hidden.clone().select(0, idx.clone()),
            mask: self.mask.clone().select(0, idx),
        }
    }
}

/// The decoder's runtime state: every layer's self-attention keys and values so far, and
/// the cross-attention keys and values, computed once from the encoder output.
#[derive(Clone, Debug)]
pub struct DecoderState {
    pub encoded: Encoded,
    /// Per layer `[b, heads, t, d]` keys and values of the decoded tokens (`None` before the
    /// first step).
    pub self_kv: Vec<Option<(Tensor<4>, Tensor<4>)>>,
    /// Per layer, the encoder output's keys and values.
    pub cross_kv: Vec<(Tensor<4>, Tensor<4>)>,
    /// Decoder positions done.
    pub len: usize,
}

impl DecoderState {
    /// A state before the first decoder token: `cross_kv` holds each layer's keys and
    /// values of `encoded`.
    pub fn new(encoded: Encoded, cross_kv: Vec<(Tensor<4>, Tensor<4>)>) -> Self {
        Self {
            self_kv: vec![None; cross_kv.len()],
            encoded,
            cross_kv,
            len: 0,
        }
    }

    pub fn batch(&self) -> usize {
        self.encoded.hidden.dims()[0]
    }

    /// Appends this step's keys and values of `layer`, returning all of them.
    pub fn append(&mut self, layer: usize, k: Tensor<4>, v: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
        let joined = match self.self_kv[layer].take() {
            Some((pk, pv)) => (Tensor::cat(vec![pk, k], 2), Tensor::cat(vec![pv, v], 2)),
            None => (k, v),
        };
        self.self_kv[layer] = Some(joined.clone());
        joined
    }

    /// Keeps the rows of `rows`, in that order (beam search's reordering).
    pub fn select(&mut self, rows: &[usize]) {
        let idx = index(rows, &self.encoded.hidden.device());
        let pick = |t: Tensor<4>| t.select(0, idx.clone());
        for kv in self.self_kv.iter_mut().flatten() {
            *kv = (pick(kv.0.clone()), pick(kv.1.clone()));
        }
        for kv in &mut self.cross_kv {
            *kv = (pick(kv.0.clone()), pick(kv.1.clone()));
        }
        self.encoded = self.encoded.select(rows);
    }
}

/// `[rows.len()]` row indices on `device`.
pub fn index(rows: &[usize], device: &Device) -> Tensor<1, Int> {
    let ids: Vec<i64> = rows.iter().map(|&r| r as i64).collect();
    Tensor::from_data(TensorData::new(ids, [rows.len()]), device)
}

/// Token ids `[batch·seq]` row-major, as the embedding lookup takes them.
pub fn flat_ids(ids: &[Vec<u32>]) -> Vec<i64> {
    ids.iter().flatten().map(|&t| t as i64).collect()
}

/// The decoder's causal mask for `seq` new tokens after `past` cached ones,
/// `[1, 1, seq, past + seq]`.
pub fn causal_mask(past: usize, seq: usize, device: &Device) -> Tensor<4> {
    let total = past + seq;
    let mut mask = vec![0.0f32; seq * total];
    for i in 0..seq {
        for j in past + i + 1..total {
            mask[i * total + j] = MASKED;
        }
    }
    Tensor::from_data(TensorData::new(mask, [1, 1, seq, total]), device)
}

/// Right-pads `ids` with `pad` to one length, returning the ids and the padding mask
/// `[batch, 1, 1, len]` (HF's tokenizers pad encoder inputs on the right).
pub fn pad_right(ids: &[Vec<u32>], pad: u32, device: &Device) -> (Vec<Vec<u32>>, Tensor<4>) {
    let len = ids.iter().map(Vec::len).max().unwrap_or(0);
    let mut mask = Vec::with_capacity(ids.len() * len);
    let padded = ids
        .iter()
        .map(|row| {
            mask.extend((0..len).map(|i| if i < row.len() { 0.0 } else { MASKED }));
            let mut row = row.clone();
            row.resize(len, pad);
            row
        })
        .collect();
    let mask = Tensor::from_data(TensorData::new(mask, [ids.len(), 1, 1, len]), device);
    (padded, mask)
}
