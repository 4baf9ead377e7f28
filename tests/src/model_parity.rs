//! Logits parity with HF transformers on the tiny random-weight fixtures
//! (tests/scripts/gen_tiny_models.py): full sequences, cached incremental decoding, batched
//! left padding, greedy generation, half-precision weights, and the wgpu backend.

use burn::tensor::Device;
use model::decoder::TokenBatch;
use model::generate::{GenerateConfig, Sampling, generate, left_pad};
use model::{CausalLm, load_model};
use serde_json::Value;

use crate::{cpu, fixture, full_logits, max_abs_diff, wgpu};

pub(crate) fn reference() -> Value {
    let text = std::fs::read_to_string(fixture("tiny/reference.json")).expect("reference.json");
    serde_json::from_str(&text).expect("reference.json parses")
}

pub(crate) fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

pub(crate) fn load(name: &str, device: &Device) -> CausalLm {
    load_model(
        &fixture(&format!("tiny/{name}")),
        device,
        model::load::LoadOptions::default(),
    )
    .unwrap_or_else(|e| panic!("{name}: {e}"))
    .model
}

fn check_full(name: &str, device: &Device, tol: f32, ref_name: &str) {
    let r = reference();
    let model = load(name, device);
    for (i, row) in r["token_ids"]
        .as_array()
        .unwrap()
        .iter()
        .take(2)
        .enumerate()
    {
        let got = full_logits(&model, &ids(row));
        let want = crate::json_matrix(&r["models"][ref_name]["logits"][i]);
        let diff = max_abs_diff(&got, &want);
        assert!(diff <= tol, "{name} seq {i}: max |Δlogit| = {diff} > {tol}");
    }
}

#[test]
fn qwen2_logits_match_transformers_on_cpu() {
    check_full("qwen2", &cpu(), 1e-4, "qwen2");
}

#[test]
fn llama_logits_match_transformers_on_cpu() {
    check_full("llama", &cpu(), 1e-4, "llama");
}

#[test]
fn logits_match_transformers_on_wgpu() {
    let Some(device) = wgpu() else { return };
    check_full("qwen2", &device, 1e-3, "qwen2");
    check_full("llama", &device, 1e-3, "llama");
}

#[test]
fn half_precision_weights_load_and_match() {
    // Against the same rounded weights computed in f32 by transformers: tight.
    check_full("qwen2-f16", &cpu(), 1e-4, "qwen2-f16");
    check_full("qwen2-bf16", &cpu(), 1e-4, "qwen2-bf16");
    // Against the f32 model: within the formats' precision.
    check_full("qwen2-f16", &cpu(), 2e-2, "qwen2");
    check_full("qwen2-bf16", &cpu(), 2e-1, "qwen2");
}

/// Decoding token by token with the cache equals recomputing the whole sequence.
#[test]
fn kv_cache_matches_full_recompute() {
    let r = reference();
    let device = cpu();
    for name in ["qwen2", "llama"] {
        let model = load(name, &device);
        let row = ids(&r["token_ids"][1]);
        let full = full_logits(&model, &row);
        let vocab = model.model.vocab_size();
        let rope = model.rope(row.len());
        let mut cache = model.new_cache();
        // A prefill of 5 tokens, then one token at a time.
        let split = 5;
        let prefix = vec![row[..split].to_vec()];
        let mut got: Vec<f32> = model
            .forward(
                TokenBatch {
                    ids: &prefix,
                    valid: &[vec![true; split]],
                },
                &rope,
                &mut cache,
            )
            .unwrap()
            .into_data()
            .try_to_vec()
            .unwrap();
        for &id in &row[split..] {
            let step = model
                .forward_last(
                    TokenBatch {
                        ids: &[vec![id]],
                        valid: &[vec![true]],
                    },
                    &rope,
                    &mut cache,
                )
                .unwrap();
            got.extend(step.into_data().try_to_vec::<f32>().unwrap());
        }
        assert_eq!(got.len(), row.len() * vocab);
        let diff = max_abs_diff(&got, &full);
        assert!(diff <= 1e-4, "{name}: cached vs full max diff {diff}");
    }
}

/// Left-padded batches give each row the logits it has alone (and HF's batched logits).
#[test]
fn batched_left_padding_matches() {
    let r = reference();
    let device = cpu();
    for name in ["qwen2", "llama"] {
        let model = load(name, &device);
        let rows: Vec<Vec<u32>> = (0..3).map(|i| ids(&r["token_ids"][i])).collect();
        let pad = r["pad_id"].as_u64().unwrap() as u32;
        let (padded, valid) = left_pad(&rows, pad);
        let n = padded[0].len();
        let rope = model.rope(n + 4);
        let mut cache = model.new_cache();
        let logits = model
            .forward(
                TokenBatch {
                    ids: &padded,
                    valid: &valid,
                },
                &rope,
                &mut cache,
            )
            .unwrap();
        let vocab = model.model.vocab_size();
        let flat: Vec<f32> = logits.into_data().try_to_vec().unwrap();
        for (i, row) in rows.iter().enumerate() {
            let start = (i * n + n - row.len()) * vocab;
            let got = &flat[start..(i + 1) * n * vocab];
            let want = crate::json_matrix(&r["models"][name]["batched"][i]);
            let diff = max_abs_diff(got, &want);
            assert!(
                diff <= 1e-4,
                "{name} row {i}: batched vs HF max diff {diff}"
            );
        }
        // Then a cached step for the whole batch equals each row's full recompute.
        let next: Vec<Vec<u32>> = vec![vec![5], vec![6], vec![7]];
        let step: Vec<f32> = model
            .forward_last(
                TokenBatch {
                    ids: &next,
                    valid: &[vec![true], vec![true], vec![true]],
                },
                &rope,
                &mut cache,
            )
            .unwrap()
            .into_data()
            .try_to_vec()
            .unwrap();
        for (i, row) in rows.iter().enumerate() {
            let mut extended = row.clone();
            extended.push(next[i][0]);
            let full = full_logits(&model, &extended);
            let want = &full[(extended.len() - 1) * vocab..];
            let diff = max_abs_diff(&step[i * vocab..(i + 1) * vocab], want);
            assert!(
                diff <= 1e-4,
                "{name} row {i}: cached padded step vs full max diff {diff}"
            );
        }
    }
}

/// Greedy generation from a left-padded batch equals `transformers.generate`, wherever the
/// reference's top-2 margin makes the choice well defined.
#[test]
fn greedy_generation_matches_transformers() {
    let r = reference();
    let device = cpu();
    for name in ["qwen2", "llama"] {
        let model = load(name, &device);
        let rows: Vec<Vec<u32>> = (0..3).map(|i| ids(&r["token_ids"][i])).collect();
        let config = GenerateConfig {
            max_new_tokens: 8,
            sampling: Sampling::Greedy,
            seed: 0,
            stop_ids: vec![],
            pad_id: r["pad_id"].as_u64().unwrap() as u32,
        };
        let mut streamed = vec![Vec::new(); rows.len()];
        let out = generate(&model, &rows, &config, |b, id| streamed[b].push(id)).unwrap();
        assert_eq!(out, streamed, "streamed tokens equal the returned ones");
        let mut compared = 0;
        for (i, seq) in out.iter().enumerate() {
            let want = ids(&r["models"][name]["greedy"][i]);
            let margins = r["models"][name]["greedy_margins"][i].as_array().unwrap();
            for (step, (&got, &w)) in seq.iter().zip(&want).enumerate() {
                if margins[step].as_f64().unwrap() < 1e-3 {
                    break; // a near-tie: later tokens depend on it
                }
                assert_eq!(got, w, "{name} seq {i} step {step}");
                compared += 1;
            }
        }
        assert!(
            compared >= 12,
            "{name}: only {compared} tokens were comparable"
        );
    }
}

/// Generation stops at a stop id and respects the budget.
#[test]
fn generation_stops_and_samples_reproducibly() {
    let r = reference();
    let model = load("qwen2", &cpu());
    let row = ids(&r["token_ids"][0]);
    let greedy = ids(&r["models"]["qwen2"]["greedy"][0]);
    let config = GenerateConfig {
        max_new_tokens: 8,
        sampling: Sampling::Greedy,
        seed: 0,
        stop_ids: vec![greedy[3]],
        pad_id: 0,
    };
    let out = generate(&model, std::slice::from_ref(&row), &config, |_, _| {}).unwrap();
    let first_stop = greedy.iter().position(|&t| t == greedy[3]).unwrap();
    assert_eq!(out[0], greedy[..first_stop].to_vec());

    let sample = GenerateConfig {
        max_new_tokens: 6,
        sampling: Sampling::TopP {
            temperature: 1.0,
            top_p: 0.9,
        },
        seed: 42,
        stop_ids: vec![],
        pad_id: 0,
    };
    let a = generate(&model, std::slice::from_ref(&row), &sample, |_, _| {}).unwrap();
    let b = generate(&model, std::slice::from_ref(&row), &sample, |_, _| {}).unwrap();
    assert_eq!(a, b, "same seed, same sample");
    assert_eq!(a[0].len(), 6);
}

/// The Rust tokenizer gives HF's ids.
#[test]
fn tokenizer_matches_hf() {
    let r = reference();
    let loaded = load_model(
        &fixture("tiny/qwen2"),
        &cpu(),
        model::load::LoadOptions::default(),
    )
    .unwrap();
    let tok = loaded.tokenizer.expect("tokenizer.json is loaded");
    for (text, want) in r["texts"]
        .as_array()
        .unwrap()
        .iter()
        .zip(r["token_ids"].as_array().unwrap())
    {
        let got = tok.encode(text.as_str().unwrap()).unwrap();
        assert_eq!(got, ids(want), "{text}");
    }
    assert!(
        tok.stop_ids
            .contains(&(r["eos_id"].as_u64().unwrap() as u32))
    );
}

/// Embedding tables and LM heads larger than the device's largest buffer (WebGPU's
/// `maxStorageBufferBindingSize`) are held in row blocks and give the whole table's logits:
/// tied (Qwen2) and untied (Llama) heads, ids spread over every block and ids inside one.
#[test]
fn vocabulary_split_into_row_blocks_gives_the_same_logits() {
    let mut devices = vec![cpu()];
    devices.extend(wgpu());
    for device in &devices {
        for name in ["qwen2", "llama"] {
            let whole = load(name, device);
            let [vocab, hidden] = whole.model.embed_tokens.dims();
            // 100 rows per block: 330 rows make blocks of 100, 100, 100 and 30.
            let options = model::LoadOptions {
                max_tensor_bytes: Some((100 * hidden * 4 + 8) as u64),
                ..Default::default()
            };
            let split = model::load_model(&fixture(&format!("tiny/{name}")), device, options)
                .unwrap()
                .model;
            let blocks = |t: &model::vocab::VocabTable| {
                t.weight
                    .row_parts()
                    .map(|p| p.parts.iter().map(|t| t.dims()[0]).collect::<Vec<_>>())
            };
            assert_eq!(
                blocks(&split.model.embed_tokens),
                Some(vec![100, 100, 100, 30])
            );
            assert_eq!(blocks(&split.lm_head), Some(vec![100, 100, 100, 30]));
            assert_eq!(split.model.embed_tokens.dims(), [vocab, hidden]);
            assert!(
                split.model.embed_tokens.weight.dense().is_none(),
                "no whole table"
            );
            let spread: Vec<u32> = (0..24).map(|i| (i * 97 % vocab) as u32).collect();
            let one_block: Vec<u32> = vec![5, 17, 99, 42, 0, 63];
            for row in [spread, one_block] {
                let want = full_logits(&whole, &row);
                let got = full_logits(&split, &row);
                let diff = max_abs_diff(&got, &want);
                assert!(diff <= 1e-5, "{name} {device:?}: max |Δlogit| = {diff}");
            }
        }
    }
}

/// A limit below one row of the table fails naming the tensor.
#[test]
fn a_buffer_limit_below_one_row_is_refused_naming_the_tensor() {
    let options = model::LoadOptions {
        max_tensor_bytes: Some(16),
        ..Default::default()
    };
    let err = match model::load_model(&fixture("tiny/qwen2"), &cpu(), options) {
        Ok(_) => panic!("a 16-byte buffer limit was accepted"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("model.embed_tokens.weight"), "{err}");
    assert!(err.contains("largest buffer"), "{err}");
}
