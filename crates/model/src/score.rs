//! Log-likelihoods of fixed continuations (answer sentences) after prompts: the `choice`
//! scoring mode, which ranks labels without free generation.

use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, Tensor, TensorData};

use crate::ModelError;
use crate::decoder::TokenBatch;
use crate::generate::left_pad;
use crate::heads::lm::CausalLm;

use crate::io::{values as read, values_async};

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
    let scores = continuation_logprobs_tensor(model, prompts, candidates, pad_id)?;
    Ok(to_rows(&read(scores)?, candidates.len()))
}

/// [`continuation_logprobs`] with an asynchronous readback, for the browser (where a
/// blocking read of a WebGPU buffer is impossible).
pub async fn continuation_logprobs_async(
    model: &CausalLm,
    prompts: &[Vec<u32>],
    candidates: &[Vec<u32>],
    pad_id: u32,
) -> Result<Vec<Vec<f64>>, ModelError> {
    let scores = continuation_logprobs_tensor(model, prompts, candidates, pad_id)?;
    Ok(to_rows(&values_async(scores).await?, candidates.len()))
}

fn to_rows(flat: &[f32], k: usize) -> Vec<Vec<f64>> {
    flat.chunks(k.max(1))
        .map(|row| row.iter().map(|&v| v as f64).collect())
        .collect()
}

/// The scores of [`continuation_logprobs`] as a `[prompts, candidates]` tensor, still on the
/// device: nothing is read back, so one read (blocking or not) serves the whole batch.
pub fn continuation_logprobs_tensor(
    model: &CausalLm,
    prompts: &[Vec<u32>],
    candidates: &[Vec<u32>],
    pad_id: u32,
) -> Result<Tensor<2>, ModelError> {
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
    let device = model.model.embed_tokens.device();
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
    let first = last.gather(1, firsts);

    let mut columns = Vec::with_capacity(k);
    for (c, cand) in candidates.iter().enumerate() {
        let column = first.clone().narrow(1, c, 1);
        let n = cand.len() - 1;
        if n == 0 {
            columns.push(column);
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
        columns.push(column + picked);
    }
    Ok(Tensor::cat(columns, 1))
}

/// Hidden states `[batch, seq, hidden]`, the left-padded ids, and their realness mask.
type HiddenBatch = (Tensor<3>, Vec<Vec<u32>>, Vec<Vec<bool>>);

/// Final hidden states of a left-padded batch of whole sequences, with the padded ids and
/// the realness mask.
fn hidden_states(
    model: &CausalLm,
    seqs: &[Vec<u32>],
    pad_id: u32,
) -> Result<HiddenBatch, ModelError> {
    let (ids, valid) = left_pad(seqs, pad_id);
    let n = ids[0].len();
    let rope = model.rope(n);
    let mut cache = model.new_cache_for(n);
    let batch = TokenBatch {
        ids: &ids,
        valid: &valid,
    };
    let hidden = model.model.forward(batch, &rope, &mut cache)?;
    Ok((hidden, ids, valid))
}

/// Softmax of log-likelihoods: the probability of each candidate among the candidates.
pub fn normalise(logprobs: &[f64]) -> Vec<f64> {
    let max = logprobs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let exps: Vec<f64> = logprobs.iter().map(|l| (l - max).exp()).collect();
    let total: f64 = exps.iter().sum();
    exps.iter().map(|e| e / total).collect()
}

/// Mean negative log-likelihood of the last `scored[i]` tokens of each sequence, each
/// predicted from everything before it: the answer's cross-entropy given the instruction
/// (`exp` of it is the answer perplexity). `scored[i]` must be in `1..seqs[i].len()`; a row
/// with nothing to score gives NaN.
///
/// Rows are left-padded, so every row's answer ends at the last position and only the last
/// `max(scored)` positions go through the vocabulary projection.
pub fn answer_nll(
    model: &CausalLm,
    seqs: &[Vec<u32>],
    scored: &[usize],
    pad_id: u32,
) -> Result<Vec<f64>, ModelError> {
    let scored = check_scored(seqs, scored)?;
    if scored.iter().all(|&a| a == 0) {
        return Ok(vec![f64::NAN; seqs.len()]);
    }
    let (hidden, ids, _) = hidden_states(model, seqs, pad_id)?;
    nll_of_hidden(model, hidden, &ids, &scored)
}

/// [`answer_nll`], and from the same forward pass the hidden states after the first `depth`
/// layers `[batch, longest, hidden]`, left-padded as the rows are (what a cached prefix of
/// the frozen layers below `depth` keeps), with the realness mask.
pub fn answer_nll_and_states(
    model: &CausalLm,
    seqs: &[Vec<u32>],
    scored: &[usize],
    pad_id: u32,
    depth: usize,
) -> Result<(Vec<f64>, Tensor<3>, Vec<Vec<bool>>), ModelError> {
    let scored = check_scored(seqs, scored)?;
    let layers = model.model.layers.len();
    if depth == 0 || depth >= layers {
        return Err(ModelError::Input(format!(
            "states after {depth} layers: the depth must be within 1..{layers}"
        )));
    }
    let (ids, valid) = left_pad(seqs, pad_id);
    let n = ids[0].len();
    let rope = model.rope(n);
    let mut cache = model.new_cache_for(n);
    let mut out = model.model.forward_depths(
        TokenBatch {
            ids: &ids,
            valid: &valid,
        },
        &rope,
        &mut cache,
        &[depth, layers],
    )?;
    let hidden = out.pop().expect("two depths");
    let states = out.pop().expect("two depths");
    let nll = if scored.iter().all(|&a| a == 0) {
        vec![f64::NAN; seqs.len()]
    } else {
        nll_of_hidden(model, hidden, &ids, &scored)?
    };
    Ok((nll, states, valid))
}

/// Checks the rows and clamps each scored length to what its row can predict.
fn check_scored(seqs: &[Vec<u32>], scored: &[usize]) -> Result<Vec<usize>, ModelError> {
    if seqs.len() != scored.len() {
        return Err(ModelError::Input(format!(
            "{} sequences but {} answer lengths",
            seqs.len(),
            scored.len()
        )));
    }
    if seqs.is_empty() || seqs.iter().any(Vec::is_empty) {
        return Err(ModelError::Input(
            "every sequence needs at least one token".into(),
        ));
    }
    Ok(seqs
        .iter()
        .zip(scored)
        .map(|(s, &a)| a.min(s.len() - 1))
        .collect())
}

/// The mean NLL of each row's last `scored[i]` tokens from the final hidden states of the
/// left-padded batch `ids`.
fn nll_of_hidden(
    model: &CausalLm,
    hidden: Tensor<3>,
    ids: &[Vec<u32>],
    scored: &[usize],
) -> Result<Vec<f64>, ModelError> {
    let b = ids.len();
    let width = scored.iter().copied().max().unwrap_or(0);
    let device = hidden.device();
    let n = ids[0].len();
    // Positions n-1-width .. n-2 predict tokens n-width .. n-1.
    let logits = model.lm_head.logits(hidden.narrow(1, n - 1 - width, width));
    let logp = log_softmax(logits, 2);
    let targets: Vec<i64> = ids
        .iter()
        .flat_map(|row| row[n - width..].iter().map(|&t| t as i64))
        .collect();
    let targets = Tensor::<3, Int>::from_data(TensorData::new(targets, [b, width, 1]), &device);
    let mask: Vec<f32> = scored
        .iter()
        .flat_map(|&a| (0..width).map(move |j| if j >= width - a { 1.0 } else { 0.0 }))
        .collect();
    let mask = Tensor::<2>::from_data(TensorData::new(mask, [b, width]), &device);
    let picked = logp.gather(2, targets).reshape([b, width]) * mask;
    let sums = read(picked.sum_dim(1))?;
    Ok(sums
        .iter()
        .zip(scored)
        .map(|(&s, &a)| {
            if a == 0 {
                f64::NAN
            } else {
                -(s as f64) / a as f64
            }
        })
        .collect())
}

/// Mean of the last hidden state (after the final norm, as HF's `hidden_states[-1]`) over
/// each sequence's real tokens: one embedding per sequence.
pub fn mean_pooled(
    model: &CausalLm,
    seqs: &[Vec<u32>],
    pad_id: u32,
) -> Result<Vec<Vec<f32>>, ModelError> {
    if seqs.is_empty() || seqs.iter().any(Vec::is_empty) {
        return Err(ModelError::Input(
            "every sequence needs at least one token".into(),
        ));
    }
    let device = model.model.embed_tokens.device();
    let (hidden, ids, valid) = hidden_states(model, seqs, pad_id)?;
    let (b, n) = (ids.len(), ids[0].len());
    let h = hidden.dims()[2];
    let weights: Vec<f32> = valid
        .iter()
        .flat_map(|row| {
            let count = row.iter().filter(|&&v| v).count() as f32;
            row.iter().map(move |&v| if v { 1.0 / count } else { 0.0 })
        })
        .collect();
    let weights = Tensor::<3>::from_data(TensorData::new(weights, [b, n, 1]), &device);
    let pooled = (hidden * weights).sum_dim(1).reshape([b, h]);
    Ok(read(pooled)?.chunks(h).map(<[f32]>::to_vec).collect())
}
