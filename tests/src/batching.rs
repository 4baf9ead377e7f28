//! Continuous batching (`model::LiveBatch`): sequences that join a decoding batch at
//! different steps, and leave it when done, get the tokens and logits they get alone.

use model::LiveBatch;
use model::generate::{GenerateConfig, Sampling, argmax, generate};

use crate::{cpu, max_abs_diff, model_parity};

fn load(name: &str) -> model::CausalLm {
    model_parity::load(name, &cpu())
}

/// Prompts of 9, 41, 21 and 36 tokens from the parity reference.
fn prompts() -> Vec<Vec<u32>> {
    let r = model_parity::reference();
    r["token_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(model_parity::ids)
        .collect()
}

struct Seq {
    prompt: usize,
    out: Vec<u32>,
    logits: Vec<Vec<f32>>,
}

#[test]
fn sequences_joining_and_leaving_decode_as_they_do_alone() {
    const NEW: usize = 7;
    for name in ["qwen2", "llama"] {
        let model = load(name);
        let prompts = prompts();
        let alone: Vec<Vec<u32>> = prompts
            .iter()
            .map(|p| {
                let config = GenerateConfig {
                    max_new_tokens: NEW,
                    sampling: Sampling::Greedy,
                    seed: 0,
                    stop_ids: vec![],
                    pad_id: 0,
                };
                generate(&model, std::slice::from_ref(p), &config, |_, _| {}).unwrap()[0].clone()
            })
            .collect();
        // The solo logits of every step, for a closer check than the argmax.
        let solo_logits: Vec<Vec<Vec<f32>>> = prompts
            .iter()
            .zip(&alone)
            .map(|(p, out)| {
                let mut batch = LiveBatch::new(&model);
                let mut rows =
                    vec![batch.join(&model, std::slice::from_ref(p), 0).unwrap()[0].clone()];
                for &id in &out[..NEW - 1] {
                    rows.push(batch.step(&model, &[id]).unwrap()[0].clone());
                }
                rows
            })
            .collect();

        // Prompt 0 starts alone; 1 and 2 join together at step 2 (one prefill of two
        // left-padded prompts); 3 joins at step 4, after 0 has left at step 7.
        let joins = [(0usize, vec![0usize]), (2, vec![1, 2]), (4, vec![3])];
        let mut batch = LiveBatch::new(&model);
        let mut live: Vec<Seq> = Vec::new();
        let mut done: Vec<Seq> = Vec::new();
        let mut widest = 0;
        for step in 0..40 {
            if !live.is_empty() {
                let ids: Vec<u32> = live.iter().map(|s| *s.out.last().unwrap()).collect();
                let rows = batch.step(&model, &ids).unwrap();
                for (s, row) in live.iter_mut().zip(rows) {
                    s.out.push(argmax(&row));
                    s.logits.push(row);
                }
            }
            if let Some((_, which)) = joins.iter().find(|(at, _)| *at == step) {
                let joining: Vec<Vec<u32>> = which.iter().map(|&i| prompts[i].clone()).collect();
                let rows = batch.join(&model, &joining, 0).unwrap();
                for (&i, row) in which.iter().zip(rows) {
                    live.push(Seq {
                        prompt: i,
                        out: vec![argmax(&row)],
                        logits: vec![row],
                    });
                }
            }
            let keep: Vec<bool> = live.iter().map(|s| s.out.len() < NEW).collect();
            batch.retain(&keep);
            let mut k = keep.iter();
            let (stay, left): (Vec<Seq>, Vec<Seq>) =
                live.into_iter().partition(|_| *k.next().unwrap());
            live = stay;
            done.extend(left);
            assert_eq!(batch.len(), live.len());
            widest = widest.max(batch.width());
            if live.is_empty() && done.len() == prompts.len() {
                break;
            }
        }
        assert_eq!(
            done.len(),
            prompts.len(),
            "{name}: not every sequence ended"
        );
        assert!(batch.is_empty());
        for s in &done {
            assert_eq!(s.out, alone[s.prompt], "{name}: prompt {}", s.prompt);
            for (step, (a, b)) in s.logits.iter().zip(&solo_logits[s.prompt]).enumerate() {
                let diff = max_abs_diff(a, b);
                assert!(
                    diff < 1e-4,
                    "{name}: prompt {} step {step}: {diff}",
                    s.prompt
                );
            }
        }
        // Leading positions no living row uses are dropped: never wider than the longest
        // prompt's span plus its new tokens, and a few steps of alignment.
        let longest = prompts.iter().map(Vec::len).max().unwrap();
        assert!(
            widest <= longest + 2 * NEW,
            "{name}: cache {widest} positions wide"
        );
    }
}

#[test]
fn a_wrong_step_or_prompt_is_an_error_not_a_panic() {
    let model = load("qwen2");
    let mut batch = LiveBatch::new(&model);
    assert!(batch.join(&model, &[vec![]], 0).is_err());
    let too_long = vec![1u32; batch.context() + 1];
    assert!(batch.join(&model, &[too_long], 0).is_err());
    batch.join(&model, &[vec![1, 2, 3]], 0).unwrap();
    let err = batch.step(&model, &[1, 2]).unwrap_err().to_string();
    assert!(err.contains("2 tokens for a batch of 1"), "{err}");
    batch.retain(&[false]);
    assert!(batch.is_empty());
}

/// The tiny Qwen2 model (f32) with its two PEFT adapter fixtures, the base last.
fn qwen2_and_adapters() -> Vec<model::CausalLm> {
    let base = load("qwen2");
    let adapted = |name: &str| {
        let mut m = base.clone();
        let dir = crate::fixture(&format!("lora/{name}"));
        model::lora::peft_io::load_adapter(&mut m, &crate::disk(&dir)).unwrap();
        m
    };
    vec![adapted("qwen2-adapter"), adapted("head-adapter"), base]
}

/// The tiny Llama-2-chat folder with its projections held as Q8_0 codes (the quantized
/// kernels' path, as a GGUF model's), and two random adapters over it (one on every
/// projection, one on the second layer's attention only), the base last.
fn quantized_llama_and_adapters() -> Vec<model::CausalLm> {
    let options = model::LoadOptions {
        codes_at_load: Some(kernels::QuantFormat::Q8_0),
        ..Default::default()
    };
    let base = model::load_model(&crate::fixture("tiny/llama2-chat"), &cpu(), options)
        .unwrap()
        .model;
    let adapted = |seed: u64, config: model::lora::LoraConfig| {
        let mut m = base.clone();
        model::lora::peft_io::attach_new(&mut m, &config, seed, &cpu());
        for (i, (_, _, linear)) in m.model.linears_mut().into_iter().enumerate() {
            if let Some(lora) = linear.lora.as_mut() {
                let shape = lora.lora_B.dims();
                let b = crate::uniform(shape, (-0.5, 0.5), seed * 100 + i as u64, &cpu());
                lora.lora_B = burn::module::Param::from_tensor(b);
            }
        }
        m
    };
    let all = model::lora::LoraConfig::new(4, 8.0, 0.0, &["all"]);
    let attention = model::lora::LoraConfig::new(2, 4.0, 0.0, &["q_proj", "v_proj", "o_proj"])
        .with_layers(&[1]);
    vec![adapted(1, all), adapted(2, attention), base]
}

/// Row i decodes `prompts[i]` with `models[uses[i]]`, all rows in one batch stepped over
/// the base (the last model) with each row's adapter; each row's tokens and logits are
/// those of decoding alone with its own model (1e-4).
fn check_mixed_rows(models: &[model::CausalLm], prompts: &[Vec<u32>], uses: &[usize], what: &str) {
    const NEW: usize = 6;
    let base_at = models.len() - 1;
    let base = &models[base_at];
    let solo = |m: &model::CausalLm, p: &Vec<u32>| {
        let mut batch = LiveBatch::new(m);
        let mut row = batch.join(m, std::slice::from_ref(p), 0).unwrap()[0].clone();
        let mut steps = vec![row.clone()];
        for _ in 1..NEW {
            row = batch.step(m, &[argmax(&row)]).unwrap()[0].clone();
            steps.push(row.clone());
        }
        steps
    };
    let alone: Vec<Vec<Vec<f32>>> = prompts
        .iter()
        .zip(uses)
        .map(|(p, &m)| solo(&models[m], p))
        .collect();
    // Each adapter changes the logits, so a batch that dropped them would fail below.
    for (i, &m) in uses.iter().enumerate().filter(|(_, m)| **m != base_at) {
        let diff = max_abs_diff(&solo(base, &prompts[i])[1], &alone[i][1]);
        assert!(
            diff > 1e-3,
            "{what}: model {m} leaves row {i} as the base's"
        );
    }

    // Every row joins with its own model's prefill, then all decode as one batch.
    let mut batch = LiveBatch::new(base);
    let mut got: Vec<Vec<Vec<f32>>> = prompts
        .iter()
        .zip(uses)
        .map(|(p, &m)| {
            let row = batch.join(&models[m], std::slice::from_ref(p), 0).unwrap();
            vec![row[0].clone()]
        })
        .collect();
    let decoders: Vec<&model::Decoder> = models.iter().map(|m| &m.model).collect();
    let rows: Vec<Option<usize>> = uses.iter().map(|&m| (m != base_at).then_some(m)).collect();
    let routes = model::RowAdapters::new(&base.model, decoders, rows).unwrap();
    for _ in 1..NEW {
        let ids: Vec<u32> = got.iter().map(|s| argmax(s.last().unwrap())).collect();
        let out = batch.step_routed(base, &ids, Some(&routes)).unwrap();
        for (s, row) in got.iter_mut().zip(out) {
            s.push(row);
        }
    }
    let tokens = |s: &Vec<Vec<f32>>| s.iter().map(|r| argmax(r)).collect::<Vec<_>>();
    for (i, (g, a)) in got.iter().zip(&alone).enumerate() {
        assert_eq!(tokens(g), tokens(a), "{what}: row {i}");
        for (step, (g, a)) in g.iter().zip(a).enumerate() {
            let diff = max_abs_diff(g, a);
            assert!(diff < 1e-4, "{what}: row {i} step {step}: {diff}");
        }
    }
}

#[test]
fn rows_with_different_adapters_decode_as_they_do_alone() {
    let prompts = prompts();
    // The base is model 2: rows of the base, adapter 0, adapter 1 and adapter 0 again.
    check_mixed_rows(&qwen2_and_adapters(), &prompts, &[2, 0, 1, 0], "qwen2, f32");
    let short: Vec<Vec<u32>> = prompts
        .iter()
        .map(|p| p.iter().map(|&id| id % 3000).collect())
        .collect();
    check_mixed_rows(
        &quantized_llama_and_adapters(),
        &short,
        &[1, 2, 0, 1],
        "llama-2-chat, Q8_0 codes",
    );
}

#[test]
fn wrong_adapter_rows_are_an_error_not_a_panic() {
    let models = qwen2_and_adapters();
    let base = &models[2];
    let decoders = || models.iter().map(|m| &m.model).collect::<Vec<_>>();
    let err = model::RowAdapters::new(&base.model, decoders(), vec![None, Some(3)])
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("batch row 1 names adapter 3, but 3 are given"),
        "{err}"
    );
    let llama = load("llama");
    let err = model::RowAdapters::new(&llama.model, decoders(), vec![None])
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("an adapter's model has"), "{err}");
    // Adapters for a different number of rows than the batch has.
    let mut batch = LiveBatch::new(base);
    batch.join(base, &[vec![1, 2, 3]], 0).unwrap();
    let routes = model::RowAdapters::new(&base.model, decoders(), vec![None, Some(0)]).unwrap();
    let err = batch
        .step_routed(base, &[4], Some(&routes))
        .unwrap_err()
        .to_string();
    assert!(err.contains("adapters for 2 rows, batch has 1"), "{err}");
}
