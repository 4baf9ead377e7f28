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
use crate::schedule::cosine;
use crate::trainer::{Event, Trainer};

/// One training sequence: the ChatML prompt followed by the answer, already cut to the
/// cutoff; the loss covers `ids[answer_start..]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SftExample {
    pub ids: Vec<u32>,
    pub answer_start: usize,
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
        })
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

/// Summed negative log-likelihood of the answer tokens of `rows` (left-padded into one
/// batch) and their count. Only the answer positions go through the vocabulary projection.
pub fn answer_nll(
    lm: &CausalLm,
    rows: &[&SftExample],
    pad_id: u32,
) -> Result<(Tensor<1>, usize), ModelError> {
    let seqs: Vec<Vec<u32>> = rows.iter().map(|r| r.ids.clone()).collect();
    let (ids, valid) = model::generate::left_pad(&seqs, pad_id);
    let (b, s) = (ids.len(), ids.first().map_or(0, Vec::len));
    let mut positions = Vec::new();
    let mut targets = Vec::new();
    for (r, row) in rows.iter().enumerate() {
        let offset = s - row.ids.len();
        for j in row.answer_start.max(1)..row.ids.len() {
            // The hidden state at j - 1 predicts token j.
            positions.push((r * s + offset + j - 1) as i64);
            targets.push(row.ids[j] as i64);
        }
    }
    let n = positions.len();
    if n == 0 {
        return Err(ModelError::Input("a batch without answer tokens".into()));
    }
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
    let h = hidden.dims()[2];
    let device = hidden.device();
    let picked = hidden.reshape([b * s, h]).select(
        0,
        Tensor::<1, Int>::from_data(TensorData::new(positions, [n]), &device),
    );
    let nll = lm.lm_head.nll(picked, targets)?.sum();
    Ok((nll, n))
}

/// Mean answer-token loss over `examples` (no gradients).
pub fn evaluate(
    lm: &CausalLm,
    examples: &[SftExample],
    batch: usize,
    pad_id: u32,
) -> Result<f64, ModelError> {
    let (mut sum, mut count) = (0.0, 0usize);
    for chunk in examples.chunks(batch.max(1)) {
        let refs: Vec<&SftExample> = chunk.iter().collect();
        let (nll, n) = answer_nll(lm, &refs, pad_id)?;
        sum += model::io::values(nll)?[0] as f64;
        count += n;
    }
    Ok(sum / count.max(1) as f64)
}

fn fingerprint(examples: &[SftExample]) -> String {
    checkpoint::data_digest(
        examples
            .iter()
            .map(|e| (e.ids.as_slice(), e.answer_start as u32)),
    )
}

pub struct SftOutcome {
    pub model: CausalLm,
    /// Updates done in total (including those before a resume).
    pub steps: usize,
    /// False when the run stopped early at `stop_after`.
    pub finished: bool,
}

/// Total updates of a run.
pub fn total_steps(examples: usize, config: &SftConfig) -> usize {
    examples.div_ceil(config.batch_size.max(1)) * config.epochs
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
    mut on_event: impl FnMut(&Event),
) -> Result<SftOutcome, ModelError> {
    if train.is_empty() {
        return Err(ModelError::Input("the training set is empty".into()));
    }
    if config.batch_size == 0 || config.micro_batch_size == 0 || config.epochs == 0 {
        return Err(ModelError::Input(
            "batch size, micro-batch size and epochs must be at least 1".into(),
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
    });
    let mut start = 0;
    if run.resume {
        let out = run
            .out
            .as_ref()
            .ok_or_else(|| ModelError::Input("resuming needs the run's output folder".into()))?;
        start = checkpoint::restore(out, &mut trainer.model, &mut trainer.optim, &settings)?.step;
    }
    let total = total_steps(train.len(), config);
    let per_epoch = train.len().div_ceil(config.batch_size);
    let lens: Vec<usize> = train.iter().map(|e| e.ids.len()).collect();
    let mut epoch_cache: Option<(usize, Vec<Vec<usize>>)> = None;
    // The answer loss on validation, reported as an event.
    let validate =
        |model: &CausalLm, step: usize, epoch: usize, lr: f64| -> Result<Event, ModelError> {
            let val_loss = evaluate(&model.valid(), val, config.micro_batch_size, config.pad_id)?;
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
        let micro: Vec<Vec<&SftExample>> = batch
            .chunks(config.micro_batch_size)
            .map(|c| c.iter().map(|&i| &train[i]).collect())
            .collect();
        let answer_tokens: usize = batch.iter().map(|&i| train[i].answer_tokens()).sum();
        let tokens: usize = batch.iter().map(|&i| train[i].ids.len()).sum();
        let lr = cosine(config.lr, step - 1, total, config.warmup_steps);
        let update = trainer.update(step, micro.len(), lr, |m, i| {
            // Every answer token of the batch weighs the same, however it is split.
            let (nll, _) = answer_nll(m, &micro[i], config.pad_id)?;
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
                run: serde_json::Value::Null,
            };
            let path = checkpoint::save(out, &mut trainer.model, &trainer.optim, &state, run.keep)?;
            on_event(&Event::Checkpoint { step, path });
        }
        if run.stop_after == Some(step) {
            return Ok(SftOutcome {
                model: trainer.model,
                steps: step,
                finished: step == total,
            });
        }
    }
    Ok(SftOutcome {
        model: trainer.model,
        steps: total,
        finished: true,
    })
}
