//! Text generation with the KV cache: batched prompts with left padding, greedy or
//! temperature/top-p sampling, stop on EOS / `<|im_end|>`, a token budget.

use burn::tensor::Tensor;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::ModelError;
use crate::decoder::TokenBatch;
use crate::heads::lm::CausalLm;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sampling {
    Greedy,
    /// Softmax at `temperature`, then the smallest set of tokens whose probability reaches
    /// `top_p` (nucleus sampling, as HF's `TopPLogitsWarper`).
    TopP {
        temperature: f32,
        top_p: f32,
    },
}

#[derive(Debug, Clone)]
pub struct GenerateConfig {
    pub max_new_tokens: usize,
    pub sampling: Sampling,
    pub seed: u64,
    /// Ids that end a sequence (not included in the output).
    pub stop_ids: Vec<u32>,
    /// Id fed for left padding and for sequences that already stopped.
    pub pad_id: u32,
}

/// Reads a `[batch, vocab]` tensor to the host.
pub fn logits_to_rows(logits: Tensor<2>) -> Result<Vec<Vec<f32>>, ModelError> {
    let [_, vocab] = logits.dims();
    Ok(split_rows(&crate::io::values(logits)?, vocab))
}

fn split_rows(flat: &[f32], width: usize) -> Vec<Vec<f32>> {
    flat.chunks(width.max(1)).map(<[f32]>::to_vec).collect()
}

/// Left-pads prompts to one length. Returns the ids and the realness mask.
pub fn left_pad(prompts: &[Vec<u32>], pad_id: u32) -> (Vec<Vec<u32>>, Vec<Vec<bool>>) {
    let len = prompts.iter().map(Vec::len).max().unwrap_or(0);
    prompts
        .iter()
        .map(|p| {
            let pad = len - p.len();
            let mut ids = vec![pad_id; pad];
            ids.extend_from_slice(p);
            let mut valid = vec![false; pad];
            valid.extend(std::iter::repeat_n(true, p.len()));
            (ids, valid)
        })
        .unzip()
}

/// Picks the next token from one row of logits.
pub fn pick(logits: &[f32], sampling: Sampling, rng: &mut impl Rng) -> u32 {
    match sampling {
        Sampling::Greedy => argmax(logits),
        Sampling::TopP { temperature, top_p } => {
            if temperature <= 0.0 {
                return argmax(logits);
            }
            let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let mut probs: Vec<(u32, f32)> = logits
                .iter()
                .enumerate()
                .map(|(i, &l)| (i as u32, ((l - max) / temperature).exp()))
                .collect();
            let total: f32 = probs.iter().map(|p| p.1).sum();
            probs.sort_by(|a, b| b.1.total_cmp(&a.1));
            // Keep tokens until the kept mass reaches top_p (the first one always stays).
            let mut kept = 0.0;
            let mut cut = probs.len();
            for (i, p) in probs.iter().enumerate() {
                kept += p.1 / total;
                if kept >= top_p {
                    cut = i + 1;
                    break;
                }
            }
            probs.truncate(cut.max(1));
            let mass: f32 = probs.iter().map(|p| p.1).sum();
            let mut r = rng.random::<f32>() * mass;
            for (id, p) in &probs {
                r -= p;
                if r <= 0.0 {
                    return *id;
                }
            }
            probs[probs.len() - 1].0
        }
    }
}

pub fn argmax(row: &[f32]) -> u32 {
    let mut best = 0;
    for (i, v) in row.iter().enumerate() {
        if *v > row[best] {
            best = i;
        }
    }
    best as u32
}

/// Generates a continuation of each prompt. `on_token(sequence, id)` is called for every new
/// token as it is produced (for streaming). Returns the new ids of each sequence, stop token
/// excluded.
pub fn generate(
    model: &CausalLm,
    prompts: &[Vec<u32>],
    config: &GenerateConfig,
    mut on_token: impl FnMut(usize, u32),
) -> Result<Vec<Vec<u32>>, ModelError> {
    let (mut state, mut logits) = Generation::start(model, prompts, config)?;
    while let Some(l) = logits {
        logits = state.advance(model, logits_to_rows(l)?, &mut on_token)?;
    }
    Ok(state.out)
}

/// [`generate`] with an asynchronous readback of each step's logits, for the browser.
pub async fn generate_async(
    model: &CausalLm,
    prompts: &[Vec<u32>],
    config: &GenerateConfig,
    mut on_token: impl FnMut(usize, u32),
) -> Result<Vec<Vec<u32>>, ModelError> {
    let (mut state, mut logits) = Generation::start(model, prompts, config)?;
    while let Some(l) = logits {
        let [_, vocab] = l.dims();
        let rows = split_rows(&crate::io::values_async(l).await?, vocab);
        logits = state.advance(model, rows, &mut on_token)?;
    }
    Ok(state.out)
}

/// The state between decoding steps; the caller reads each step's logits (blocking or not)
/// and hands the rows to [`Generation::advance`].
struct Generation<'c> {
    config: &'c GenerateConfig,
    rope: crate::rope::Rope,
    cache: crate::KvCache,
    rng: StdRng,
    out: Vec<Vec<u32>>,
    done: Vec<bool>,
    step: usize,
}

impl<'c> Generation<'c> {
    /// Runs the prompts; returns the state and the first step's logits (none when no token
    /// is asked for).
    fn start(
        model: &CausalLm,
        prompts: &[Vec<u32>],
        config: &'c GenerateConfig,
    ) -> Result<(Self, Option<Tensor<2>>), ModelError> {
        if prompts.is_empty() || prompts.iter().any(Vec::is_empty) {
            return Err(ModelError::Input(
                "every prompt needs at least one token".into(),
            ));
        }
        // Checked before anything is allocated: a prompt far beyond the context would ask
        // for a cache and attention scores of quadratic size and abort the process.
        let longest = prompts.iter().map(Vec::len).max().unwrap_or(0);
        let context = model.config.max_position_embeddings;
        if longest.saturating_add(config.max_new_tokens) > context {
            return Err(ModelError::Input(format!(
                "the prompt has {longest} tokens and up to {} new tokens are asked for, \
                 beyond the model's context of {context} tokens; shorten the prompt or \
                 lower the new-token budget",
                config.max_new_tokens
            )));
        }
        let (ids, valid) = left_pad(prompts, config.pad_id);
        let rope = model.rope(ids[0].len() + config.max_new_tokens);
        let mut cache = model.new_cache_for(rope.len());
        let logits = if config.max_new_tokens == 0 {
            None
        } else {
            Some(model.forward_last(
                TokenBatch {
                    ids: &ids,
                    valid: &valid,
                },
                &rope,
                &mut cache,
            )?)
        };
        let state = Self {
            config,
            rope,
            cache,
            rng: StdRng::seed_from_u64(config.seed),
            out: vec![Vec::new(); prompts.len()],
            done: vec![false; prompts.len()],
            step: 0,
        };
        Ok((state, logits))
    }

    /// Picks each sequence's next token from its logits row; returns the next step's logits,
    /// or none when every sequence has stopped or the budget is spent.
    fn advance(
        &mut self,
        model: &CausalLm,
        rows: Vec<Vec<f32>>,
        on_token: &mut impl FnMut(usize, u32),
    ) -> Result<Option<Tensor<2>>, ModelError> {
        let config = self.config;
        let mut next = Vec::with_capacity(rows.len());
        for (b, row) in rows.iter().enumerate() {
            let id = if self.done[b] {
                config.pad_id
            } else {
                pick(row, config.sampling, &mut self.rng)
            };
            if !self.done[b] {
                if config.stop_ids.contains(&id) {
                    self.done[b] = true;
                } else {
                    self.out[b].push(id);
                    on_token(b, id);
                }
            }
            next.push(vec![id]);
        }
        self.step += 1;
        if self.done.iter().all(|&d| d) || self.step == config.max_new_tokens {
            return Ok(None);
        }
        // Stopped sequences keep stepping (one batch) but their keys are masked out.
        let step_valid: Vec<Vec<bool>> = self.done.iter().map(|&d| vec![!d]).collect();
        let logits = model.forward_last(
            TokenBatch {
                ids: &next,
                valid: &step_valid,
            },
            &self.rope,
            &mut self.cache,
        )?;
        Ok(Some(logits))
    }
}
