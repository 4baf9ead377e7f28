//! The CPU's inference ops of a decoder block (`kernels::attention_inference` and
//! `kernels::inference`): equal to the same steps in Burn ops, for grouped KV heads, keys
//! read through the cache's strided views, a causal mask with a padding query, a decoding
//! step's single query and a prompt's many; and declined (`None`) where they do not apply.

use burn::tensor::activation::softmax;
use burn::tensor::{Int, Tensor, TensorData};
use model::rope::Rope;

use crate::max_abs_diff;

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    model::io::values(t).unwrap()
}

/// Attention in plain Burn ops, K/V repeated per query head: `[b, s, h·d]`.
fn attention_reference(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, mask: Tensor<4>) -> Tensor<3> {
    let [b, h, s, d] = q.dims();
    let [_, kvh, t, _] = k.dims();
    let repeat = |x: Tensor<4>| {
        x.unsqueeze_dim::<5>(2)
            .repeat_dim(2, h / kvh)
            .reshape([b, h, t, d])
    };
    let scores = q.matmul(repeat(k).swap_dims(2, 3)) / (d as f64).sqrt() + mask;
    let out = softmax(scores, 3).matmul(repeat(v));
    out.swap_dims(1, 2).reshape([b, s, h * d])
}

/// A mask `[b, 1, s, t]` for `s` new queries after `t - s` cached keys: causal, key 0 of
/// sequence 1 is padding, and (when `s > 1`) query 0 of sequence 1 sees no key at all.
fn mask(b: usize, s: usize, t: usize) -> Vec<f32> {
    let mut m = vec![0f32; b * s * t];
    for bi in 0..b {
        for i in 0..s {
            for j in 0..t {
                let future = j > t - s + i;
                let padding = bi == 1 && (j == 0 || (s > 1 && i == 0));
                if future || padding {
                    m[(bi * s + i) * t + j] = -1e30;
                }
            }
        }
    }
    m
}

#[test]
fn attention_equals_burn_ops_for_prompts_and_decoding_steps() {
    let device = crate::cpu();
    let (b, h, kvh) = (2, 6, 2);
    // One query (a decoding step), the few-query path's limit, and prompts of one, two
    // and three blocks of 32 queries (the last after 5 cached keys); heads of 16 values,
    // of 64 (the decoding step's sum held in registers) and of 80 (64 held, 16 not).
    let shapes = [(1, 9), (4, 4), (7, 12), (33, 33), (70, 75)].map(|(s, t)| (s, t, 16));
    for (s, t, d) in shapes.into_iter().chain([(1, 9, 64), (3, 20, 80)]) {
        // Q from a projection's layout [b, s, h·d] as a strided view, as the model's.
        let q = crate::uniform([b, s, h * d], (-1.0, 1.0), 1, &device)
            .reshape([b, s, h, d])
            .swap_dims(1, 2);
        // K and V as the first t positions of a larger cache buffer.
        let k = crate::uniform([b, kvh, t + 5, d], (-1.0, 1.0), 2, &device).narrow(2, 0, t);
        let v = crate::uniform([b, kvh, t + 5, d], (-1.0, 1.0), 3, &device).narrow(2, 0, t);
        let m = Tensor::<4>::from_data(TensorData::new(mask(b, s, t), [b, 1, s, t]), &device);
        let want = values(attention_reference(
            q.clone(),
            k.clone(),
            v.clone(),
            m.clone(),
        ));
        let got = kernels::attention_inference(q, k, v, m).expect("the CPU op takes these");
        assert_eq!(got.dims(), [b, s, h * d]);
        let diff = max_abs_diff(&values(got), &want);
        assert!(diff < 1e-5, "s {s} t {t} d {d}: max |Δ| {diff}");
    }
}

/// A decoding step of a sequence left-padded in a batch (hidden keys in front) computes, to
/// the bit, what it computes alone without them: continuous batching gives each request
/// the tokens it gets alone.
#[test]
fn a_padded_decoding_row_equals_its_row_alone() {
    let device = crate::cpu();
    let (h, kvh, d, t, pad) = (6, 2, 64, 40, 7);
    let q = crate::uniform([2, h, 1, d], (-1.0, 1.0), 4, &device);
    let k = crate::uniform([2, kvh, t, d], (-1.0, 1.0), 5, &device);
    let v = crate::uniform([2, kvh, t, d], (-1.0, 1.0), 6, &device);
    let mut m = vec![0f32; 2 * t];
    m[t..t + pad].fill(-1e30);
    let m = Tensor::<4>::from_data(TensorData::new(m, [2, 1, 1, t]), &device);
    let batch = values(kernels::attention_inference(q.clone(), k.clone(), v.clone(), m).unwrap());
    let alone = kernels::attention_inference(
        q.narrow(0, 1, 1),
        k.narrow(0, 1, 1).narrow(2, pad, t - pad),
        v.narrow(0, 1, 1).narrow(2, pad, t - pad),
        Tensor::<4>::zeros([1, 1, 1, t - pad], &device),
    )
    .unwrap();
    let alone = values(alone);
    assert_eq!(alone.len(), h * d);
    let row = &batch[h * d..];
    assert!(
        row.iter()
            .zip(&alone)
            .all(|(a, b)| a.to_bits() == b.to_bits()),
        "max |Δ| {}",
        max_abs_diff(row, &alone)
    );
}

/// A decoding step takes every query head that reads one KV head in one pass over its keys
/// and values (several query rows per value row): each head's output equals, to the bit,
/// that head's attention alone.
#[test]
fn query_heads_sharing_a_kv_head_equal_each_head_alone() {
    let device = crate::cpu();
    let (b, h, kvh, t) = (2, 6, 2, 23);
    for (s, d) in [(1, 64), (3, 80), (4, 16)] {
        let q = crate::uniform([b, h, s, d], (-1.0, 1.0), 7, &device);
        let k = crate::uniform([b, kvh, t, d], (-1.0, 1.0), 8, &device);
        let v = crate::uniform([b, kvh, t, d], (-1.0, 1.0), 9, &device);
        let m = Tensor::<4>::from_data(TensorData::new(mask(b, s, t), [b, 1, s, t]), &device);
        let all = values(
            kernels::attention_inference(q.clone(), k.clone(), v.clone(), m.clone()).unwrap(),
        );
        for hi in 0..h {
            let kh = hi / (h / kvh);
            let alone = kernels::attention_inference(
                q.clone().narrow(1, hi, 1),
                k.clone().narrow(1, kh, 1),
                v.clone().narrow(1, kh, 1),
                m.clone(),
            )
            .unwrap();
            let alone = values(alone);
            for bi in 0..b {
                for i in 0..s {
                    let got = &all[(bi * s + i) * h * d + hi * d..][..d];
                    let want = &alone[(bi * s + i) * d..][..d];
                    assert!(
                        got.iter()
                            .zip(want)
                            .all(|(a, b)| a.to_bits() == b.to_bits()),
                        "s {s} d {d}: head {hi}, sequence {bi}, query {i}: max |Δ| {}",
                        max_abs_diff(got, want)
                    );
                }
            }
        }
    }
}

#[test]
fn attention_is_declined_under_autodiff_and_for_mismatched_shapes() {
    let device = crate::cpu();
    let q = crate::uniform([1, 4, 3, 8], (-1.0, 1.0), 1, &device);
    let kv = crate::uniform([1, 2, 3, 8], (-1.0, 1.0), 2, &device);
    let m = Tensor::<4>::zeros([1, 1, 3, 3], &device);
    assert!(kernels::attention_inference(q.clone(), kv.clone(), kv.clone(), m.clone()).is_some());
    // 4 query heads do not group over 3 KV heads.
    let kv3 = crate::uniform([1, 3, 3, 8], (-1.0, 1.0), 2, &device);
    assert!(kernels::attention_inference(q.clone(), kv3.clone(), kv3, m.clone()).is_none());
    // A mask for another number of keys.
    let m4 = Tensor::<4>::zeros([1, 1, 3, 4], &device);
    assert!(kernels::attention_inference(q.clone(), kv.clone(), kv.clone(), m4).is_none());
    let ad = device.clone().autodiff();
    let to = |t: Tensor<4>| Tensor::<4>::from_data(t.into_data(), &ad);
    assert!(kernels::attention_inference(to(q), to(kv.clone()), to(kv), to(m)).is_none());
}

#[test]
fn rms_norm_equals_burn_ops() {
    let device = crate::cpu();
    // Rows shorter and longer than a vector, and more rows than one task takes.
    for [rows, width] in [[1, 5], [3, 576], [700, 48]] {
        let x = crate::uniform([rows, width], (-3.0, 3.0), 4, &device);
        let w = crate::uniform([width], (0.5, 1.5), 5, &device);
        let eps = 1e-5;
        let rms = (x.clone().square().mean_dim(1) + eps).sqrt();
        let want = values((x.clone() / rms) * w.clone().unsqueeze());
        let got = kernels::inference::rms_norm(x, w, eps).expect("the CPU op takes these");
        let diff = max_abs_diff(&values(got), &want);
        assert!(diff < 1e-5, "[{rows}, {width}]: max |Δ| {diff}");
    }
    let x = crate::uniform([2, 8], (-1.0, 1.0), 4, &device);
    let short = crate::uniform([7], (-1.0, 1.0), 5, &device);
    assert!(kernels::inference::rms_norm(x, short, 1e-5).is_none());
}

#[test]
fn rope_heads_equal_the_split_and_rotation_in_burn_ops() {
    let device = crate::cpu();
    let (b, s, heads, d) = (2, 5, 3, 8);
    let rope = Rope::new(d, 10_000.0, 16, &device);
    // Sequence 1 starts at position 4, as after a cached prefix.
    let positions: Vec<i64> = (0..s as i64).chain(4..4 + s as i64).collect();
    let positions = Tensor::<1, Int>::from_data(TensorData::new(positions, [b * s]), &device);
    let (cos, sin) = rope.tables(positions, b, s);
    let x = crate::uniform([b, s, heads * d], (-2.0, 2.0), 6, &device);
    let split = x.clone().reshape([b, s, heads, d]).swap_dims(1, 2);
    let want = values(Rope::apply(split, &cos, &sin));
    let got = kernels::inference::rope_heads(x.clone(), &cos, &sin, heads).expect("taken");
    assert_eq!(got.dims(), [b, heads, s, d]);
    let diff = max_abs_diff(&values(got), &want);
    assert!(diff < 1e-6, "max |Δ| {diff}");
    // Widths that are not heads × head_dim are declined.
    assert!(kernels::inference::rope_heads(x, &cos, &sin, 2).is_none());
}

#[test]
fn add_equals_burn_addition_and_falls_back_under_autodiff() {
    let device = crate::cpu();
    let a = crate::uniform([3, 70_000], (-1.0, 1.0), 7, &device);
    let b = crate::uniform([3, 70_000], (-1.0, 1.0), 8, &device);
    let want = values(a.clone() + b.clone());
    assert_eq!(values(kernels::inference::add(a.clone(), b.clone())), want);
    let ad = device.autodiff();
    let a = Tensor::<2>::from_data(a.into_data(), &ad).require_grad();
    let b = Tensor::<2>::from_data(b.into_data(), &ad);
    let sum = kernels::inference::add(a.clone(), b);
    assert_eq!(values(sum.clone()), want);
    let grads = sum.sum().backward();
    assert!(
        a.grad(&grads).is_some(),
        "the gradient flows through the fallback"
    );
}

#[test]
fn linear_equals_matmul_and_bias() {
    let device = crate::cpu();
    // A transposed view of x too: the op reads strides.
    let x = crate::uniform([40, 24], (-1.0, 1.0), 9, &device);
    let xt = crate::uniform([24, 40], (-1.0, 1.0), 10, &device).transpose();
    let w = crate::uniform([33, 24], (-1.0, 1.0), 11, &device);
    let bias = crate::uniform([33], (-1.0, 1.0), 12, &device);
    for x in [x, xt] {
        let plain = x.clone().matmul(w.clone().transpose());
        let with_bias = plain.clone() + bias.clone().unsqueeze_dim(0);
        let got = kernels::inference::linear(&x, &w, Some(bias.clone())).expect("taken");
        assert!(max_abs_diff(&values(got), &values(with_bias)) < 1e-5);
        let got = kernels::inference::linear(&x, &w, None).expect("taken");
        assert!(max_abs_diff(&values(got), &values(plain)) < 1e-5);
    }
    let short = crate::uniform([33, 23], (-1.0, 1.0), 11, &device);
    let x = crate::uniform([4, 24], (-1.0, 1.0), 9, &device);
    assert!(kernels::inference::linear(&x, &short, None).is_none());
    let ad = device.autodiff();
    let xa = Tensor::<2>::from_data(x.into_data(), &ad);
    let wa = Tensor::<2>::from_data(w.into_data(), &ad);
    assert!(kernels::inference::linear(&xa, &wa, None).is_none());
}

/// Two or three quantized weights in one op (a decoding step's query, key and value
/// projections, or gate and up): each output equals, to the bit, the weight's own quantized
/// op, for 1, 8 and 19 rows (19: the rows taken 8 at a time) and mixed formats, x read
/// through a strided view; declined for a prompt's rows, other counts, a `k` that differs,
/// and under autodiff.
#[test]
fn quantized_projections_in_one_op_equal_each_alone() {
    use kernels::{PackedWeight, QuantFormat, QuantizedLinear};
    let device = crate::cpu();
    let k = 96;
    let weight = |format: QuantFormat, n: usize, seed: u64| {
        let w = values(crate::uniform([n, k], (-1.0, 1.0), seed, &device));
        let gguf = kernels::quant::quantize_gguf(format, &w);
        QuantizedLinear::new(
            &PackedWeight::from_gguf(format.ggml(), &gguf, n, k).unwrap(),
            &device,
        )
    };
    let ws = [
        weight(QuantFormat::Q4_1, 70, 21),
        weight(QuantFormat::Q4_1, 17, 22),
        weight(QuantFormat::Q8_0, 41, 23),
    ];
    for m in [1, 8, 19] {
        let x = crate::uniform([k, m], (-1.0, 1.0), 24, &device).transpose();
        for count in [2, 3] {
            let refs: Vec<&QuantizedLinear> = ws.iter().take(count).collect();
            let ys = kernels::inference::project_quantized(&x, &refs).expect("taken");
            assert_eq!(ys.len(), count);
            for (j, (w, y)) in refs.iter().zip(ys).enumerate() {
                let alone = values(w.project(x.clone()));
                let y = values(y);
                assert_eq!(y.len(), m * w.n, "m{m} weight {j}: shape");
                let same = alone
                    .iter()
                    .zip(&y)
                    .all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(
                    same,
                    "m{m} of {count}, weight {j}: max |Δ| {}",
                    max_abs_diff(&alone, &y)
                );
            }
        }
    }
    let x = crate::uniform([4, k], (-1.0, 1.0), 25, &device);
    let prompt = crate::uniform(
        [kernels::inference::PROJECT_ROWS + 1, k],
        (-1.0, 1.0),
        25,
        &device,
    );
    let other_k = {
        let w = values(crate::uniform([8, 64], (-1.0, 1.0), 26, &device));
        let gguf = kernels::quant::quantize_gguf(QuantFormat::Q4_1, &w);
        QuantizedLinear::new(
            &PackedWeight::from_gguf(QuantFormat::Q4_1.ggml(), &gguf, 8, 64).unwrap(),
            &device,
        )
    };
    assert!(kernels::inference::project_quantized(&prompt, &[&ws[0], &ws[1]]).is_none());
    assert!(kernels::inference::project_quantized(&x, &[&ws[0]]).is_none());
    assert!(kernels::inference::project_quantized(&x, &[&ws[0], &other_k]).is_none());
    let xa = Tensor::<2>::from_data(x.into_data(), &device.autodiff());
    assert!(kernels::inference::project_quantized(&xa, &[&ws[0], &ws[1]]).is_none());
}
