//! Stage 1: instruction tuning of a LoRA on every linear layer (PAPER.md: r 8, alpha 16,
//! AdamW at 5e-5 with cosine decay, batch 16, max grad norm 1.0, cutoff 512 tokens, loss on
//! the answer tokens only, the IMHI sets mixed, the last checkpoint kept).

use std::path::PathBuf;

use burn::module::Module;
use burn::tensor::{Int, Tensor, TensorData};
use model::ModelError;
use model::decoder::TokenBatch;
use model::heads::lm::CausalLm;
use rand::seq::SliceRandom;
use serde::Serialize;

use crate::checkpoint::{self, CheckpointState};
use crate::optim::AdamW;
use crate::prefix::PrefixCache;
use crate::schedule::cosine;
use crate::trainer::{Event, Trainer};

/// One training sequence: the ChatML prompt followed by the answer, already cut to the
/// cutoff; the loss covers `ids[answer_start..]`, and `ids[answer_start..label_end]` is
/// the answer's label (the words before "Reasoning:"), which `SftConfig::label_weight`
/// can weigh more, times the example's own `label_scale` (1 unless its class is balanced
/// against the others of its set).
#[derive(Debug, Clone, PartialEq)]
pub struct SftExample {
    pub ids: Vec<u32>,
    pub answer_start: usize,
    pub label_end: usize,
    pub label_scale: f32,
}

impl SftExample {
    /// `prompt + answer` cut to `cutoff` tokens from the end of the answer. `None` when no
    /// answer token is left (nothing to learn from).
    pub fn new(prompt: &[u32], answer: &[u32], cutoff: usize) -> Option<Self> {
        let mut ids = [prompt, answer].concat();
        ids.truncate(cutoff);
        (ids.len() > prompt.len() && !prompt.is_empty()).then_some(Self {
            ids,
            answer_start: prompt.len(),
            label_end: prompt.len(),
            label_scale: 1.0,
        })
    }

    /// This example's label tokens weigh `scale` times `SftConfig::label_weight`.
    pub fn with_label_scale(mut self, scale: f32) -> Self {
        self.label_scale = scale;
        self
    }

    /// The first `n` answer tokens are its label (as many as the cutoff left).
    pub fn with_label_tokens(mut self, n: usize) -> Self {
        self.label_end = (self.answer_start + n).min(self.ids.len());
        self
    }

    pub fn answer_tokens(&self) -> usize {
        self.ids.len() - self.answer_start
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct SftConfig {
    pub lr: f64,
    pub weight_decay: f64,
    pub epochs: usize,
    /// Examples per optimizer update.
    pub batch_size: usize,
    /// Examples per forward pass; gradients of `batch_size / micro_batch_size` passes are
    /// accumulated.
    pub micro_batch_size: usize,
    pub warmup_steps: usize,
    pub max_grad_norm: Option<f64>,
    pub seed: u64,
    pub pad_id: u32,
    /// Evaluate the answer loss on validation every N updates (0: only at the end).
    pub eval_every: usize,
    /// Stop after this many updates, the schedule ending there (an equal budget for
    /// training sets of different sizes); `None` runs every epoch.
    pub max_steps: Option<usize>,
    /// The training loss weight of each example's label tokens (`SftExample::label_end`);
    /// the other answer tokens weigh 1. 1 is the paper's plain answer loss, and validation
    /// always uses it. (Left out of the saved settings at 1, so older runs still resume.)
    #[serde(skip_serializing_if = "is_one")]
    pub label_weight: f64,
}

fn is_one(w: &f64) -> bool {
    *w == 1.0
}

/// Where and how often a run is checkpointed, and whether it continues an earlier one.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub out: Option<PathBuf>,
    pub save_every: usize,
    pub keep: usize,
    pub resume: bool,
    /// Return after this update, as a killed run would (tests, and `--stop-after`).
    pub stop_after: Option<usize>,
}

impl RunOptions {
    /// The output folder when update `step` of `total` is to be checkpointed.
    pub fn checkpoint_due(&self, step: usize, total: usize) -> Option<&std::path::Path> {
        let due = (self.save_every > 0 && step % self.save_every == 0) || step == total;
        self.out.as_deref().filter(|_| due)
    }
}

/// Examples per group sorted by length before batching: big enough that batches hold
/// similar lengths, small enough that the order stays random (HF's length-grouped sampler
/// uses 50 batches too).
const BUCKET_BATCHES: usize = 50;

/// The batches of one epoch, as indices into the examples: a shuffle seeded by (seed,
/// epoch), then groups of 50 batches sorted by length (longest first) and cut into
/// batches, and the batches shuffled again. Every example appears once; only the very last
/// batch may be short.
pub fn epoch_batches(
    lens: &[usize],
    batch_size: usize,
    seed: u64,
    epoch: usize,
) -> Vec<Vec<usize>> {
    let batch_size = batch_size.max(1);
    let mut rng = checkpoint::epoch_rng(seed, epoch);
    let mut order: Vec<usize> = (0..lens.len()).collect();
    order.shuffle(&mut rng);
    let mut batches: Vec<Vec<usize>> = Vec::new();
    for group in order.chunks(batch_size * BUCKET_BATCHES) {
        let mut group = group.to_vec();
        group.sort_by_key(|&i| std::cmp::Reverse(lens[i]));
        batches.extend(group.chunks(batch_size).map(<[usize]>::to_vec));
    }
    // The short batch (if any) stays last so every other update sees a full batch.
    let last = batches.pop();
    batches.shuffle(&mut rng);
    batches.extend(last);
    batches
}

/// Where a batch's hidden states come from: token ids through every layer, or the cached
/// output of the frozen layers below `start` (example `i` of a set is row `i` of its cache).
#[derive(Clone, Copy)]
pub enum SftInputs<'a> {
    Tokens,
    Prefix {
        start: usize,
        train: &'a PrefixCache,
        val: &'a PrefixCache,
    },
}

impl<'a> SftInputs<'a> {
    /// The cache of the training (`val` false) or validation set, with its depth.
    fn cache(&self, val: bool) -> Option<(usize, &'a PrefixCache)> {
        match *self {
            Self::Tokens => None,
            Self::Prefix {
                start,
                train,
                val: v,
            } => Some((start, if val { v } else { train })),
        }
    }

    /// Checks that each cache holds one row per example, of the example's length.
    pub fn check(&self, train: &[SftExample], val: &[SftExample]) -> Result<(), ModelError> {
        for (set, is_val, name) in [(train, false, "training"), (val, true, "validation")] {
            let Some((_, cache)) = self.cache(is_val) else {
                continue;
            };
            if cache.len() != set.len() {
                return Err(ModelError::Input(format!(
                    "the {name} prefix cache holds {} rows for {} examples",
                    cache.len(),
                    set.len()
                )));
            }
            if let Some(i) = (0..set.len()).find(|&i| cache.row_len(i) != set[i].ids.len()) {
                return Err(ModelError::Input(format!(
                    "{name} example {i} has {} tokens but its cached prefix {}",
                    set[i].ids.len(),
                    cache.row_len(i)
                )));
            }
        }
        Ok(())
    }
}

/// Summed negative log-likelihood of the answer tokens of `rows` (left-padded into one
/// batch) and their count. Only the answer positions go through the vocabulary projection.
pub fn answer_nll(
    lm: &CausalLm,
    rows: &[&SftExample],
    pad_id: u32,
) -> Result<(Tensor<1>, usize), ModelError> {
    nll_of_tokens(lm, rows, pad_id, None)
}

/// [`answer_nll`] with each label token's NLL counted `label_weight` times its example's
/// `label_scale` (the count stays one per token).
pub fn answer_nll_weighted(
    lm: &CausalLm,
    rows: &[&SftExample],
    pad_id: u32,
    label_weight: f64,
) -> Result<(Tensor<1>, usize), ModelError> {
    nll_of_tokens(lm, rows, pad_id, Some(label_weight))
}

/// The answer NLL of `rows` run from their tokens: plain (`None`), or label tokens weighed
/// `label_weight × label_scale`.
fn nll_of_tokens(
    lm: &CausalLm,
    rows: &[&SftExample],
    pad_id: u32,
    label_weight: Option<f64>,
) -> Result<(Tensor<1>, usize), ModelError> {
    let seqs: Vec<Vec<u32>> = rows.iter().map(|r| r.ids.clone()).collect();
    let (ids, valid) = model::generate::left_pad(&seqs, pad_id);
    let s = ids.first().map_or(0, Vec::len);
    let rope = lm.rope(s);
    let mut cache = lm.new_cache();
    let hidden = lm.model.forward(
        TokenBatch {
            ids: &ids,
            valid: &valid,
        },
        &rope,
        &mut cache,
    )?;
    answer_nll_of(lm, hidden, rows, label_weight)
}

/// [`answer_nll`] of examples `idx` of a set whose frozen layers below `start` ran once
/// and were kept in `cache` (row `i` of the cache is example `i`).
pub fn answer_nll_prefix(
    lm: &CausalLm,
    set: &[SftExample],
    idx: &[usize],
    start: usize,
    cache: &PrefixCache,
    label_weight: Option<f64>,
) -> Result<(Tensor<1>, usize), ModelError> {
    let device = lm.model.embed_tokens.device();
    let (x, valid) = cache.batch(idx, &device)?;
    let rope = lm.rope(x.dims()[1]);
    let mut kv = lm.new_cache();
    let hidden = lm.model.forward_from(x, start, &valid, &rope, &mut kv)?;
    let rows: Vec<&SftExample> = idx.iter().map(|&i| &set[i]).collect();
    answer_nll_of(lm, hidden, &rows, label_weight)
}

/// The answer tokens' summed NLL from the final hidden states `[b, s, hidden]` of `rows`,
/// left-padded to the longest, label tokens counted `label_weight × label_scale` times
/// (each token once for `None`: the plain loss).
fn answer_nll_of(
    lm: &CausalLm,
    hidden: Tensor<3>,
    rows: &[&SftExample],
    label_weight: Option<f64>,
) -> Result<(Tensor<1>, usize), ModelError> {
    let [b, s, h] = hidden.dims();
    let mut positions = Vec::new();
    let mut targets = Vec::new();
    let mut weights = Vec::new();
    for (r, row) in rows.iter().enumerate() {
        let offset = s - row.ids.len();
        for j in row.answer_start.max(1)..row.ids.len() {
            // The hidden state at j - 1 predicts token j.
            positions.push((r * s + offset + j - 1) as i64);
            targets.push(row.ids[j] as i64);
            weights.push(match label_weight {
                Some(w) if j < row.label_end => w as f32 * row.label_scale,
                _ => 1.0,
            });
        }
    }
    let n = positions.len();
    if n == 0 {
        return Err(ModelError::Input("a batch without answer tokens".into()));
    }
    let device = hidden.device();
    let picked = hidden.reshape([b * s, h]).select(
        0,
        Tensor::<1, Int>::from_data(TensorData::new(positions, [n]), &device),
    );
    let nll = lm.lm_head.nll(picked, targets)?;
    let nll = if weights.iter().all(|&w| w == 1.0) {
        nll.sum()
    } else {
        let weights = Tensor::<1>::from_data(TensorData::new(weights, [n]), &device);
        (nll * weights).sum()
    };
    Ok((nll, n))
}

/// The summed answer NLL of examples `idx` of the training (`val` false) or validation set.
fn batch_nll(
    lm: &CausalLm,
    set: &[SftExample],
    idx: &[usize],
    inputs: SftInputs<'_>,
    val: bool,
    pad_id: u32,
    label_weight: Option<f64>,
) -> Result<(Tensor<1>, usize), ModelError> {
    match inputs.cache(val) {
        None => {
            let rows: Vec<&SftExample> = idx.iter().map(|&i| &set[i]).collect();
            nll_of_tokens(lm, &rows, pad_id, label_weight)
        }
        Some((start, cache)) => answer_nll_prefix(lm, set, idx, start, cache, label_weight),
    }
}

/// Mean answer-token loss over `examples` (no gradients).
pub fn evaluate(
    lm: &CausalLm,
    examples: &[SftExample],
    batch: usize,
    pad_id: u32,
) -> Result<f64, ModelError> {
    evaluate_with(lm, examples, batch, pad_id, SftInputs::Tokens)
}

/// [`evaluate`] on the validation set's inputs (its prefix cache, when `inputs` has one).
pub fn evaluate_with(
    lm: &CausalLm,
    examples: &[SftExample],
    batch: usize,
    pad_id: u32,
    inputs: SftInputs<'_>,
) -> Result<f64, ModelError> {
    let (mut sum, mut count) = (0.0, 0usize);
    let all: Vec<usize> = (0..examples.len()).collect();
    for idx in all.chunks(batch.max(1)) {
        let (nll, n) = batch_nll(lm, examples, idx, inputs, true, pad_id, None)?;
        sum += model::io::values(nll)?[0] as f64;
        count += n;
    }
    Ok(sum / count.max(1) as f64)
}

/// The training data's digest, which a resumed run must match: the tokens, where each
/// answer starts, and a label scale other than 1 (so digests of unscaled data are those of
/// runs from before scales existed).
fn fingerprint(examples: &[SftExample]) -> String {
    checkpoint::data_digest(examples.iter().map(|e| {
        let tag = e.answer_start as u32;
        let tag = if e.label_scale == 1.0 {
            tag
        } else {
            tag ^ e.label_scale.to_bits().rotate_left(16)
        };
        (e.ids.as_slice(), tag)
    }))
}

pub struct SftOutcome {
    pub model: CausalLm,
    /// Updates done in total (including those before a resume).
    pub steps: usize,
    /// False when the run stopped early at `stop_after`.
    pub finished: bool,
    /// Wall time of the whole run, every invocation of a resumed one included; `None` when
    /// it resumed from a checkpoint that did not record its time.
    pub seconds: Option<f64>,
}

/// Total updates of a run.
pub fn total_steps(examples: usize, config: &SftConfig) -> usize {
    let all = examples.div_ceil(config.batch_size.max(1)) * config.epochs;
    config.max_steps.map_or(all, |m| m.min(all))
}

/// Trains the LoRA factors of `model` (on an autodiff device; the base frozen). With
/// `run.out`, a checkpoint is written every `run.save_every` updates and at the end, and
/// `run.resume` continues from the newest one with the same data order, optimizer state
/// and schedule.
pub fn train_sft(
    model: CausalLm,
    train: &[SftExample],
    val: &[SftExample],
    config: &SftConfig,
    run: &RunOptions,
    on_event: impl FnMut(&Event),
) -> Result<SftOutcome, ModelError> {
    train_sft_with(model, train, val, config, SftInputs::Tokens, run, on_event)
}

/// [`train_sft`] from `inputs`: with a cached prefix, only the layers from its depth up run
/// (the LoRA must sit on those layers alone: the frozen ones below never see a gradient).
pub fn train_sft_with(
    model: CausalLm,
    train: &[SftExample],
    val: &[SftExample],
    config: &SftConfig,
    inputs: SftInputs<'_>,
    run: &RunOptions,
    mut on_event: impl FnMut(&Event),
) -> Result<SftOutcome, ModelError> {
    inputs.check(train, val)?;
    if train.is_empty() {
        return Err(ModelError::Input("the training set is empty".into()));
    }
    if config.batch_size == 0
        || config.micro_batch_size == 0
        || config.epochs == 0
        || config.max_steps == Some(0)
    {
        return Err(ModelError::Input(
            "batch size, micro-batch size, epochs and max steps must be at least 1".into(),
        ));
    }
    let device = model.model.embed_tokens.device();
    let mut trainer = Trainer {
        model,
        optim: AdamW::new(config.weight_decay),
        max_grad_norm: config.max_grad_norm,
        device,
        seed: config.seed,
    };
    let settings = serde_json::json!({
        "stage": "sft", "config": config, "train": fingerprint(train), "val": fingerprint(val),
        "prefix_depth": inputs.cache(false).map(|(depth, _)| depth),
    });
    let clock = std::time::Instant::now();
    // Seconds spent by the invocations before this one (recorded in each checkpoint).
    let mut earlier = Some(0.0);
    let mut start = 0;
    if run.resume {
        let out = run
            .out
            .as_ref()
            .ok_or_else(|| ModelError::Input("resuming needs the run's output folder".into()))?;
        let state = checkpoint::restore(out, &mut trainer.model, &mut trainer.optim, &settings)?;
        start = state.step;
        earlier = state.run.get("seconds").and_then(serde_json::Value::as_f64);
    }
    let seconds = || earlier.map(|e| e + clock.elapsed().as_secs_f64());
    let total = total_steps(train.len(), config);
    let per_epoch = train.len().div_ceil(config.batch_size);
    let lens: Vec<usize> = train.iter().map(|e| e.ids.len()).collect();
    let mut epoch_cache: Option<(usize, Vec<Vec<usize>>)> = None;
    // The answer loss on validation, reported as an event.
    let validate =
        |model: &CausalLm, step: usize, epoch: usize, lr: f64| -> Result<Event, ModelError> {
            let val_loss = evaluate_with(
                &model.valid(),
                val,
                config.micro_batch_size,
                config.pad_id,
                inputs,
            )?;
            Ok(Event::Eval {
                step,
                epoch,
                val_loss,
                val_weighted_f1: None,
                val_accuracy: None,
                lr,
                best: None,
            })
        };
    if start == 0 && !val.is_empty() {
        // The validation loss before any update: where the curve starts.
        on_event(&validate(&trainer.model, 0, 0, config.lr)?);
    }
    for step in start + 1..=total {
        let epoch = (step - 1) / per_epoch;
        if epoch_cache.as_ref().is_none_or(|(e, _)| *e != epoch) {
            epoch_cache = Some((
                epoch,
                epoch_batches(&lens, config.batch_size, config.seed, epoch),
            ));
        }
        let batch = &epoch_cache.as_ref().expect("just set").1[(step - 1) % per_epoch];
        let micro: Vec<&[usize]> = batch.chunks(config.micro_batch_size).collect();
        let answer_tokens: usize = batch.iter().map(|&i| train[i].answer_tokens()).sum();
        let tokens: usize = batch.iter().map(|&i| train[i].ids.len()).sum();
        let lr = cosine(config.lr, step - 1, total, config.warmup_steps);
        let update = trainer.update(step, micro.len(), lr, |m, i| {
            // Every answer token of the batch weighs the same, however it is split.
            let (nll, _) = batch_nll(
                m,
                train,
                micro[i],
                inputs,
                false,
                config.pad_id,
                Some(config.label_weight),
            )?;
            Ok(nll / answer_tokens as f64)
        })?;
        on_event(&update.event(step, epoch, lr, tokens));
        let last = step == total;
        if !val.is_empty() && ((config.eval_every > 0 && step % config.eval_every == 0) || last) {
            on_event(&validate(&trainer.model, step, epoch, lr)?);
        }
        if let Some(out) = run.checkpoint_due(step, total) {
            let state = CheckpointState {
                step,
                settings: settings.clone(),
                run: serde_json::json!({ "seconds": seconds() }),
            };
            let path = checkpoint::save(out, &mut trainer.model, &trainer.optim, &state, run.keep)?;
            on_event(&Event::Checkpoint { step, path });
        }
        if run.stop_after == Some(step) {
            return Ok(SftOutcome {
                model: trainer.model,
                steps: step,
                finished: step == total,
                seconds: seconds(),
            });
        }
    }
    Ok(SftOutcome {
        seconds: seconds(),
        model: trainer.model,
        steps: total,
        finished: true,
    })
}
