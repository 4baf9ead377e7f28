//! `choice` scoring: the log-likelihood of a continuation, computed from a cached prompt for a
//! whole batch, equals the sum of log-softmax values of a plain full-sequence forward.

use model::load_model;
use model::score::{continuation_logprobs, normalise};

use crate::{cpu, fixture, full_logits, logsumexp};

#[test]
fn continuation_logprobs_match_full_forward() {
    let model = load_model(
        &fixture("tiny/llama"),
        &cpu(),
        model::load::LoadOptions::default(),
    )
    .unwrap()
    .model;
    let vocab = model.model.vocab_size();
    let prompts = vec![vec![5u32, 9, 33, 40, 7], vec![11u32, 2, 99]];
    let candidates = vec![vec![17u32, 4, 250], vec![8u32], vec![300u32, 301, 12, 13]];
    let got = continuation_logprobs(&model, &prompts, &candidates, 0).unwrap();
    for (p, prompt) in prompts.iter().enumerate() {
        for (c, cand) in candidates.iter().enumerate() {
            let mut seq = prompt.clone();
            seq.extend(cand);
            let logits = full_logits(&model, &seq);
            let mut want = 0.0;
            for (k, &tok) in cand.iter().enumerate() {
                let pos = prompt.len() - 1 + k;
                let row = &logits[pos * vocab..(pos + 1) * vocab];
                want += row[tok as usize] as f64 - logsumexp(row);
            }
            assert!(
                (got[p][c] - want).abs() < 1e-4,
                "prompt {p} cand {c}: {} vs {want}",
                got[p][c]
            );
        }
        let probs = normalise(&got[p]);
        assert!((probs.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    }
    assert!(continuation_logprobs(&model, &prompts, &[vec![]], 0).is_err());
    assert!(continuation_logprobs(&model, &[vec![]], &candidates, 0).is_err());
}
