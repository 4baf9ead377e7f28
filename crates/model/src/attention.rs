//! Multi-head self-attention with grouped-query heads, rotary positions and a KV cache.

use burn::module::Module;
use burn::tensor::Tensor;

use crate::cache::KvCache;
use crate::linear::Linear;
use crate::rope::Rope;
use crate::routes::{self, Pick, RowAdapters};

#[derive(Module, Debug)]
pub struct Attention {
    pub q_proj: Linear,
    pub k_proj: Linear,
    pub v_proj: Linear,
    pub o_proj: Linear,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
}

/// Per-step inputs shared by every layer.
pub struct AttentionInput<'a> {
    /// `[batch, 1, seq, head_dim]` rotary tables at this step's positions.
    pub cos: Tensor<4>,
    pub sin: Tensor<4>,
    /// `[batch, 1, seq, total]` additive mask.
    pub mask: Tensor<4>,
    pub cache: &'a mut KvCache,
    /// Each row's own adapter over this base (a batch mixing adapters), or `None`.
    pub routes: Option<&'a RowAdapters<'a>>,
}

impl Attention {
    /// `x`: `[batch, seq, hidden]` → `[batch, seq, hidden]`.
    pub fn forward(&self, x: Tensor<3>, layer: usize, input: &mut AttentionInput<'_>) -> Tensor<3> {
        let [b, s, _] = x.dims();
        let (h, kvh, d) = (self.num_heads, self.num_kv_heads, self.head_dim);
        let heads = |t: Tensor<3>, n: usize| t.reshape([b, s, n, d]).swap_dims(1, 2);
        // The rotation and the split into heads in one pass on the CPU (inference).
        let rotated = |t: Tensor<3>, n: usize| {
            kernels::inference::rope_heads(t.clone(), &input.cos, &input.sin, n)
                .unwrap_or_else(|| Rope::apply(heads(t, n), &input.cos, &input.sin))
        };
        let picks: [Pick; 3] = [
            |b| &b.self_attn.q_proj,
            |b| &b.self_attn.k_proj,
            |b| &b.self_attn.v_proj,
        ];
        let layers = [&self.q_proj, &self.k_proj, &self.v_proj];
        let [q, k, v] = routes::project(layers, picks, x, layer, input.routes);
        let (q, k, v) = (rotated(q, h), rotated(k, kvh), heads(v, kvh));
        let (k, v) = input.cache.append(layer, k, v);
        let t = k.dims()[2];

        if fused_attention() {
            let out =
                kernels::attention_inference(q.clone(), k.clone(), v.clone(), input.mask.clone());
            if let Some(out) = out {
                return self.project_out(out, layer, input.routes);
            }
        }

        // Grouped-query attention without copying K/V: the `group` query heads that share a
        // KV head are stacked along the sequence axis (head h uses KV head h / group, as HF's
        // `repeat_kv`).
        let group = h / kvh;
        let q = q.reshape([b, kvh, group * s, d]);
        let scores = q.matmul(k.swap_dims(2, 3)) / (d as f64).sqrt();
        let scores = scores.reshape([b, h, s, t]) + input.mask.clone();
        let probs = kernels::softmax_last(scores).reshape([b, kvh, group * s, t]);
        let out = probs.matmul(v).reshape([b, h, s, d]);
        self.project_out(
            out.swap_dims(1, 2).reshape([b, s, h * d]),
            layer,
            input.routes,
        )
    }

    /// The output projection, with each row's adapter term when the batch mixes adapters.
    fn project_out(
        &self,
        out: Tensor<3>,
        layer: usize,
        routes: Option<&RowAdapters<'_>>,
    ) -> Tensor<3> {
        let [y] = routes::project(
            [&self.o_proj],
            [|b| &b.self_attn.o_proj],
            out,
            layer,
            routes,
        );
        y
    }
}

/// Whether attention takes our op for inference on the CPU (`kernels::attention_inference`:
/// one task per sequence and head, the output in the projection's layout), which declines
/// under autodiff and on other devices. It replaced Burn's fused CPU attention for prompts
/// (which had itself replaced the grouped products below: 8.8 s against 10.6 s for a 16 ×
/// 256-token prefill) and the grouped products for decoding steps.
/// The settings' `fused_attention`; off (`MENTALQLM_FUSED_ATTENTION=0`) for comparisons.
fn fused_attention() -> bool {
    kernels::settings::current().fused_attention
}
