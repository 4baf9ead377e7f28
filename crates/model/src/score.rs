//! Log-likelihoods of fixed continuations (answer sentences) after prompts: the `choice`
//! scoring mode, which ranks labels without free generation.

use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, Tensor, TensorData};

use crate::ModelError;
use crate::decoder::TokenBatch;
use crate::generate::left_pad;
use crate::heads::lm::CausalLm;

fn read(t: Tensor<2>) -> Result<Vec<f32>, ModelError> {
    let data = t
        .try_into_data()
        .map_err(|e| ModelError::Readback(format!("{e:?}")))?;
    data.try_to_vec()
        .map_err(|e| ModelError::Readback(format!("{e:?}")))
}

/// `out[p][c]` = Σ log P(candidate c's tokens | prompt p), in nats.
///
/// The prompts are run once (left-padded batch); each candidate then continues from a copy
/// of the cache, for all prompts at once. Candidates must be non-empty.
pub fn continuation_logprobs(
    model: &CausalLm,
    prompts: &[Vec<u32>],
    candidates: &[Vec<u32>],
    pad_id: u32,
) -> Result<Vec<Vec<f64>>, ModelError> {
    if prompts.is_empty() || prompts.iter().any(Vec::is_empty) {
        return Err(ModelError::Input(
            "every prompt needs at least one token".into(),
        ));
    }
    if candidates.is_empty() || candidates.iter().any(Vec::is_empty) {
        return Err(ModelError::Input(
            "every candidate needs at least one token".into(),
        ));
    }
    let device = model.model.embed_tokens.weight.device();
    let b = prompts.len();
    let (ids, valid) = left_pad(prompts, pad_id);
    let longest = candidates.iter().map(Vec::len).max().unwrap_or(0);
    let rope = model.rope(ids[0].len() + longest);
    let mut cache = model.new_cache_for(rope.len());
    let last = log_softmax(
        model.forward_last(
            TokenBatch {
                ids: &ids,
                valid: &valid,
            },
            &rope,
            &mut cache,
        )?,
        1,
    );

    // First tokens of all candidates, scored from the prompt's last position.
    let k = candidates.len();
    let firsts: Vec<i64> = (0..b)
        .flat_map(|_| candidates.iter().map(|c| c[0] as i64))
        .collect();
    let firsts = Tensor::<2, Int>::from_data(TensorData::new(firsts, [b, k]), &device);
    let first = read(last.gather(1, firsts))?;
    let mut out: Vec<Vec<f64>> = (0..b)
        .map(|i| {
            first[i * k..(i + 1) * k]
                .iter()
                .map(|&v| v as f64)
                .collect()
        })
        .collect();

    for (c, cand) in candidates.iter().enumerate() {
        let n = cand.len() - 1;
        if n == 0 {
            continue;
        }
        let rows: Vec<Vec<u32>> = vec![cand[..n].to_vec(); b];
        let real = vec![vec![true; n]; b];
        let mut branch = cache.clone();
        let logits = log_softmax(
            model.forward(
                TokenBatch {
                    ids: &rows,
                    valid: &real,
                },
                &rope,
                &mut branch,
            )?,
            2,
        );
        let targets: Vec<i64> = (0..b)
            .flat_map(|_| cand[1..].iter().map(|&t| t as i64))
            .collect();
        let targets = Tensor::<3, Int>::from_data(TensorData::new(targets, [b, n, 1]), &device);
        let picked = logits.gather(2, targets).sum_dim(1).reshape([b, 1]);
        for (i, v) in read(picked)?.into_iter().enumerate() {
            out[i][c] += v as f64;
        }
    }
    Ok(out)
}

/// Softmax of log-likelihoods: the probability of each candidate among the candidates.
pub fn normalise(logprobs: &[f64]) -> Vec<f64> {
    let max = logprobs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let exps: Vec<f64> = logprobs.iter().map(|l| (l - max).exp()).collect();
    let total: f64 = exps.iter().sum();
    exps.iter().map(|e| e / total).collect()
}
