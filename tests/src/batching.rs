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
