//! Stage 2: training the LoRA (r 4, q/v) and the dense head of a [`SequenceClassifier`] with
//! cross-entropy, AdamW and ReduceLROnPlateau, random oversampling of minority classes, and
//! the best model kept by validation weighted F1 (PAPER.md, "Stage 2").

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, Tensor, TensorData};
use model::decoder::TokenBatch;
use model::heads::classifier::SequenceClassifier;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
use serde::{Deserialize, Serialize};

use crate::checkpoint::{self, CheckpointState};
use crate::optim::{AdamW, Trainable};
use crate::prefix::PrefixCache;
use crate::schedule::Plateau;
pub use crate::sft::RunOptions;
use crate::trainer::{Event, Trainer};

/// One example: token ids (already cut to the maximum length) and its class.
pub type Example = (Vec<u32>, usize);

#[derive(Debug, Clone, Serialize)]
pub struct ClassifierTrainConfig {
    pub lr: f64,
    pub weight_decay: f64,
    pub epochs: usize,
    pub batch_size: usize,
    pub seed: u64,
    /// Evaluate on validation every this many steps (and after every epoch).
    pub eval_every: usize,
    /// ReduceLROnPlateau on validation loss: factor and patience (evaluations).
    pub plateau_factor: f64,
    pub plateau_patience: usize,
    pub oversample: bool,
    /// Pad every batch to this length when padding enters the pooled mean (the paper's
    /// `padding="max_length"`); otherwise batches are padded to their longest row.
    pub max_length: usize,
    pub pad_id: u32,
    pub classes: usize,
}

/// Random oversampling: every class repeated (sampled with replacement, seeded) up to the
/// majority count, as the paper's training set. Returns indices into `labels`.
pub fn oversample(labels: &[usize], classes: usize, seed: u64) -> Vec<usize> {
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); classes];
    for (i, &l) in labels.iter().enumerate() {
        if l < classes {
            by_class[l].push(i);
        }
    }
    let majority = by_class.iter().map(Vec::len).max().unwrap_or(0);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(majority * classes);
    for members in by_class.iter().filter(|m| !m.is_empty()) {
        out.extend_from_slice(members);
        for _ in members.len()..majority {
            out.push(*members.choose(&mut rng).expect("non-empty"));
        }
    }
    out
}

/// Mean cross-entropy of `[batch, classes]` logits.
pub fn cross_entropy(logits: Tensor<2>, labels: &[usize]) -> Tensor<1> {
    let device = logits.device();
    let b = labels.len();
    let targets: Vec<i64> = labels.iter().map(|&l| l as i64).collect();
    let targets = Tensor::<2, Int>::from_data(TensorData::new(targets, [b, 1]), &device);
    log_softmax(logits, 1)
        .gather(1, targets)
        .mean()
        .neg()
        .reshape([1])
}

/// Where a batch's input comes from: token ids through every layer, or the cached output
/// of the frozen layers below `start` (examples index the caches in order).
#[derive(Clone, Copy)]
pub enum Inputs<'a> {
    Tokens,
    Prefix {
        start: usize,
        train: &'a PrefixCache,
        val: &'a PrefixCache,
    },
}

/// Logits of examples `idx` of a set (`val` picks the validation cache).
fn logits(
    model: &SequenceClassifier,
    examples: &[Example],
    idx: &[usize],
    inputs: Inputs<'_>,
    val: bool,
    config: &ClassifierTrainConfig,
) -> Result<Tensor<2>, model::ModelError> {
    match inputs {
        Inputs::Tokens => {
            let rows: Vec<Vec<u32>> = idx.iter().map(|&j| examples[j].0.clone()).collect();
            let (ids, valid) = model.batch(&rows, config.pad_id, config.max_length);
            model.forward(TokenBatch {
                ids: &ids,
                valid: &valid,
            })
        }
        Inputs::Prefix {
            start,
            train,
            val: v,
        } => {
            let cache = if val { v } else { train };
            let device = model.lm.model.embed_tokens.device();
            let (x, valid) = cache.batch(idx, &device)?;
            model.forward_prefix(x, start, &valid)
        }
    }
}

/// Validation loss and predictions of a model (no gradients).
pub fn evaluate(
    model: &SequenceClassifier,
    examples: &[Example],
    config: &ClassifierTrainConfig,
) -> Result<(f64, Vec<usize>, Vec<Vec<f64>>), model::ModelError> {
    evaluate_with(model, examples, config, Inputs::Tokens)
}

/// [`evaluate`] on the validation set's inputs.
pub fn evaluate_with(
    model: &SequenceClassifier,
    examples: &[Example],
    config: &ClassifierTrainConfig,
    inputs: Inputs<'_>,
) -> Result<(f64, Vec<usize>, Vec<Vec<f64>>), model::ModelError> {
    let mut total = 0.0;
    let mut preds = Vec::with_capacity(examples.len());
    let mut probs = Vec::with_capacity(examples.len());
    let all: Vec<usize> = (0..examples.len()).collect();
    for idx in all.chunks(config.batch_size.max(1)) {
        let chunk: Vec<&Example> = idx.iter().map(|&j| &examples[j]).collect();
        let logits = logits(model, examples, idx, inputs, true, config)?;
        let labels: Vec<usize> = chunk.iter().map(|e| e.1).collect();
        let loss = cross_entropy(logits.clone(), &labels);
        total += read(loss.reshape([1, 1]))?[0] as f64 * chunk.len() as f64;
        let lp = read(log_softmax(logits, 1))?;
        for row in lp.chunks(config.classes) {
            let p: Vec<f64> = row.iter().map(|&v| (v as f64).exp()).collect();
            preds.push(
                p.iter()
                    .enumerate()
                    .fold(0, |best, (i, v)| if *v > p[best] { i } else { best }),
            );
            probs.push(p);
        }
    }
    Ok((total / examples.len().max(1) as f64, preds, probs))
}

fn read(t: Tensor<2>) -> Result<Vec<f32>, model::ModelError> {
    let data = t
        .try_into_data()
        .map_err(|e| model::ModelError::Readback(format!("{e:?}")))?;
    data.try_to_vec()
        .map_err(|e| model::ModelError::Readback(format!("{e:?}")))
}

/// The result of training: the best model by validation weighted F1 (on the inner, plain
/// device) and its score.
pub struct Trained {
    pub best: SequenceClassifier,
    pub best_weighted_f1: f64,
    /// Updates done in total (including those before a resume).
    pub steps: usize,
    /// False when the run stopped early at `stop_after`.
    pub finished: bool,
}

/// The loop's state kept in checkpoints.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct RunState {
    plateau: Plateau,
    best_weighted_f1: Option<f64>,
}

/// `OUT/best/trainable.safetensors`: the best model's LoRA and head, replaced atomically
/// at each new best so a resumed run still knows it.
fn best_path(out: &Path) -> PathBuf {
    out.join("best").join("trainable.safetensors")
}

fn settings(
    config: &ClassifierTrainConfig,
    train: &[Example],
    val: &[Example],
) -> serde_json::Value {
    let digest = |set: &[Example]| {
        checkpoint::data_digest(
            set.iter()
                .map(|(ids, label)| (ids.as_slice(), *label as u32)),
        )
    };
    serde_json::json!({ "stage": "classifier", "config": config, "train": digest(train), "val": digest(val) })
}

/// Validation loss, weighted F1 and accuracy of the current model.
fn validate(
    model: &SequenceClassifier,
    val: &[Example],
    config: &ClassifierTrainConfig,
    inputs: Inputs<'_>,
    weighted_f1: &dyn Fn(&[usize], &[usize]) -> f64,
) -> Result<(f64, f64, f64), model::ModelError> {
    let labels: Vec<usize> = val.iter().map(|e| e.1).collect();
    let (loss, preds, _) = evaluate_with(model, val, config, inputs)?;
    let accuracy =
        preds.iter().zip(&labels).filter(|(p, t)| p == t).count() as f64 / val.len() as f64;
    Ok((loss, weighted_f1(&labels, &preds), accuracy))
}

/// Trains `model` (on an autodiff device; only its LoRA factors and head require grad).
/// `weighted_f1(y_true, y_pred)` scores validation, `on_event` reports progress. With
/// `run.out`, checkpoints are written every `run.save_every` updates and the best model to
/// `OUT/best/`, and `run.resume` continues the newest checkpoint exactly.
#[allow(clippy::too_many_arguments)]
pub fn train_classifier(
    model: SequenceClassifier,
    train: &[Example],
    val: &[Example],
    config: &ClassifierTrainConfig,
    inputs: Inputs<'_>,
    run: &RunOptions,
    weighted_f1: &dyn Fn(&[usize], &[usize]) -> f64,
    mut on_event: impl FnMut(&Event),
) -> Result<Trained, model::ModelError> {
    if train.is_empty() || val.is_empty() {
        return Err(model::ModelError::Input(
            "training and validation sets must not be empty".into(),
        ));
    }
    if config.batch_size == 0 || config.epochs == 0 {
        return Err(model::ModelError::Input(
            "batch size and epochs must be at least 1".into(),
        ));
    }
    let device = model.lm.model.embed_tokens.device();
    let mut trainer = Trainer {
        model,
        optim: AdamW::new(config.weight_decay),
        max_grad_norm: None,
        device,
        seed: config.seed,
    };
    let settings = settings(config, train, val);
    let mut state = RunState {
        plateau: Plateau::new(config.lr, config.plateau_factor, config.plateau_patience),
        best_weighted_f1: None,
    };
    let mut best: Option<SequenceClassifier> = None;
    let mut start = 0;
    if run.resume {
        let out = run.out.as_ref().ok_or_else(|| {
            model::ModelError::Input("resuming needs the run's output folder".into())
        })?;
        let saved = checkpoint::restore(out, &mut trainer.model, &mut trainer.optim, &settings)?;
        start = saved.step;
        state = serde_json::from_value(saved.run).map_err(|e| model::ModelError::Config {
            path: checkpoint::checkpoints_dir(out),
            reason: format!("unreadable loop state: {e}"),
        })?;
        if state.best_weighted_f1.is_some() {
            let mut restored = trainer.model.valid();
            let path = best_path(out);
            restored.load_trainable(
                &model::io::read_safetensors(&path)?,
                &path.display().to_string(),
            )?;
            best = Some(restored);
        }
    }
    let labels: Vec<usize> = train.iter().map(|e| e.1).collect();
    let base_order: Vec<usize> = if config.oversample {
        oversample(&labels, config.classes, config.seed)
    } else {
        (0..train.len()).collect()
    };
    let per_epoch = base_order.len().div_ceil(config.batch_size);
    let total = per_epoch * config.epochs;
    let mut order: Option<(usize, Vec<usize>)> = None;
    let mut done = start;
    for step in start + 1..=total {
        let epoch = (step - 1) / per_epoch;
        if order.as_ref().is_none_or(|(e, _)| *e != epoch) {
            let mut o = base_order.clone();
            o.shuffle(&mut checkpoint::epoch_rng(config.seed, epoch));
            order = Some((epoch, o));
        }
        let o = &order.as_ref().expect("just set").1;
        let i = (step - 1) % per_epoch;
        let idx = &o[i * config.batch_size..((i + 1) * config.batch_size).min(o.len())];
        let batch_labels: Vec<usize> = idx.iter().map(|&j| train[j].1).collect();
        let lr = state.plateau.lr;
        let tokens = idx.iter().map(|&j| train[j].0.len()).sum();
        let update = trainer.update(step, 1, lr, |m, _| {
            let logits = logits(m, train, idx, inputs, false, config)?;
            Ok(cross_entropy(logits, &batch_labels))
        })?;
        on_event(&update.event(step, epoch, lr, tokens));
        let last_of_epoch = step % per_epoch == 0;
        if step % config.eval_every.max(1) == 0 || last_of_epoch {
            let plain = trainer.model.valid();
            let (val_loss, f1, accuracy) = validate(&plain, val, config, inputs, weighted_f1)?;
            state.plateau.observe(val_loss);
            let is_best = state.best_weighted_f1.is_none_or(|b| f1 > b);
            if is_best {
                state.best_weighted_f1 = Some(f1);
                if let Some(out) = &run.out {
                    let mut copy = plain.clone();
                    let path = best_path(out);
                    std::fs::create_dir_all(path.parent().expect("has a parent")).map_err(|e| {
                        model::ModelError::Format(formats::FormatError::io(&path, e))
                    })?;
                    model::io::write_safetensors(&path, &copy.trainable_tensors()?)?;
                }
                best = Some(plain);
            }
            on_event(&Event::Eval {
                step,
                epoch,
                val_loss,
                val_weighted_f1: Some(f1),
                val_accuracy: Some(accuracy),
                lr: state.plateau.lr,
                best: Some(is_best),
            });
        }
        if let Some(out) = run.checkpoint_due(step, total) {
            let saved = CheckpointState {
                step,
                settings: settings.clone(),
                run: serde_json::to_value(&state).expect("plain data"),
            };
            let path = checkpoint::save(out, &mut trainer.model, &trainer.optim, &saved, run.keep)?;
            on_event(&Event::Checkpoint { step, path });
        }
        done = step;
        if run.stop_after == Some(step) {
            break;
        }
    }
    let best = match best {
        Some(b) => b,
        None => trainer.model.valid(),
    };
    Ok(Trained {
        best,
        best_weighted_f1: state.best_weighted_f1.unwrap_or(0.0),
        steps: done,
        finished: done == total,
    })
}
