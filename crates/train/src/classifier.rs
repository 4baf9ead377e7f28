//! Stage 2: training the LoRA (r 4, q/v) and the dense head of a [`SequenceClassifier`] with
//! cross-entropy, AdamW and ReduceLROnPlateau, random oversampling of minority classes, and
//! the best model kept by validation weighted F1 (PAPER.md, "Stage 2").

use burn::module::Module;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, Tensor, TensorData};
use model::decoder::TokenBatch;
use model::heads::classifier::SequenceClassifier;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
use serde::Serialize;

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

/// What the loop reports as it goes (for the progress bar and the JSONL log).
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "lowercase")]
pub enum Event {
    Step {
        step: usize,
        epoch: usize,
        loss: f64,
        lr: f64,
        tokens: usize,
    },
    Eval {
        step: usize,
        epoch: usize,
        val_loss: f64,
        val_weighted_f1: f64,
        val_accuracy: f64,
        lr: f64,
        best: bool,
    },
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
fn cross_entropy(logits: Tensor<2>, labels: &[usize]) -> Tensor<1> {
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

/// Validation loss and predictions of a model (no gradients).
pub fn evaluate(
    model: &SequenceClassifier,
    examples: &[Example],
    config: &ClassifierTrainConfig,
) -> Result<(f64, Vec<usize>, Vec<Vec<f64>>), model::ModelError> {
    let mut total = 0.0;
    let mut preds = Vec::with_capacity(examples.len());
    let mut probs = Vec::with_capacity(examples.len());
    for chunk in examples.chunks(config.batch_size.max(1)) {
        let rows: Vec<Vec<u32>> = chunk.iter().map(|e| e.0.clone()).collect();
        let (ids, valid) = model.batch(&rows, config.pad_id, config.max_length);
        let logits = model.forward(TokenBatch {
            ids: &ids,
            valid: &valid,
        })?;
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
    pub steps: usize,
}

/// Trains `model` (on an autodiff device; only its LoRA factors and head require grad).
/// `weighted_f1(y_true, y_pred)` scores validation, `on_event` reports progress.
pub fn train_classifier(
    mut model: SequenceClassifier,
    train: &[Example],
    val: &[Example],
    config: &ClassifierTrainConfig,
    weighted_f1: &dyn Fn(&[usize], &[usize]) -> f64,
    mut on_event: impl FnMut(&Event),
) -> Result<Trained, model::ModelError> {
    if train.is_empty() || val.is_empty() {
        return Err(model::ModelError::Input(
            "training and validation sets must not be empty".into(),
        ));
    }
    let mut optim = AdamWConfig::new()
        .with_weight_decay(config.weight_decay as f32)
        .init();
    let labels: Vec<usize> = train.iter().map(|e| e.1).collect();
    let base_order: Vec<usize> = if config.oversample {
        oversample(&labels, config.classes, config.seed)
    } else {
        (0..train.len()).collect()
    };
    let mut rng = StdRng::seed_from_u64(config.seed);
    let mut lr = config.lr;
    let (mut best_loss, mut bad_evals) = (f64::INFINITY, 0usize);
    let mut best: Option<(f64, SequenceClassifier)> = None;
    let mut step = 0;
    let val_labels: Vec<usize> = val.iter().map(|e| e.1).collect();
    for epoch in 0..config.epochs {
        let mut order = base_order.clone();
        order.shuffle(&mut rng);
        let batches: Vec<&[usize]> = order.chunks(config.batch_size.max(1)).collect();
        for (i, idx) in batches.iter().enumerate() {
            let refs: Vec<&Example> = idx.iter().map(|&j| &train[j]).collect();
            let rows: Vec<Vec<u32>> = refs.iter().map(|e| e.0.clone()).collect();
            let (ids, valid) = model.batch(&rows, config.pad_id, config.max_length);
            let logits = model.forward(TokenBatch {
                ids: &ids,
                valid: &valid,
            })?;
            let batch_labels: Vec<usize> = refs.iter().map(|e| e.1).collect();
            let loss = cross_entropy(logits, &batch_labels);
            let value = read(loss.clone().reshape([1, 1]))?[0] as f64;
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(lr, model, grads);
            step += 1;
            let tokens = ids.iter().map(Vec::len).sum();
            on_event(&Event::Step {
                step,
                epoch,
                loss: value,
                lr,
                tokens,
            });
            let last = i + 1 == batches.len();
            if step % config.eval_every.max(1) == 0 || last {
                let plain = model.valid();
                let (val_loss, preds, _) = evaluate(&plain, val, config)?;
                let f1 = weighted_f1(&val_labels, &preds);
                let accuracy = preds
                    .iter()
                    .zip(&val_labels)
                    .filter(|(p, t)| p == t)
                    .count() as f64
                    / val.len() as f64;
                // ReduceLROnPlateau (mode min on validation loss).
                if val_loss < best_loss {
                    best_loss = val_loss;
                    bad_evals = 0;
                } else {
                    bad_evals += 1;
                    if bad_evals > config.plateau_patience {
                        lr *= config.plateau_factor;
                        bad_evals = 0;
                    }
                }
                let is_best = best.as_ref().is_none_or(|(b, _)| f1 > *b);
                if is_best {
                    best = Some((f1, plain));
                }
                on_event(&Event::Eval {
                    step,
                    epoch,
                    val_loss,
                    val_weighted_f1: f1,
                    val_accuracy: accuracy,
                    lr,
                    best: is_best,
                });
            }
        }
    }
    let (best_weighted_f1, best) = best.expect("at least one evaluation ran");
    Ok(Trained {
        best,
        best_weighted_f1,
        steps: step,
    })
}
