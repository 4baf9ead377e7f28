//! One optimizer update from several micro-batches, shared by both stages: backward per
//! micro-batch, gradients summed, clipped together, one AdamW step.

use burn::tensor::{Device, Tensor};
use model::ModelError;

use crate::optim::{AdamW, Grads, Trainable, accumulate, clip_global_norm};

/// What one update measured.
#[derive(Debug, Clone, Copy)]
pub struct Update {
    /// The batch loss (the sum of the micro-batch losses, each already weighted).
    pub loss: f64,
    /// The joint gradient norm before clipping.
    pub grad_norm: f64,
}

impl Update {
    /// The progress event of this update.
    pub fn event(&self, step: usize, epoch: usize, lr: f64, tokens: usize) -> Event {
        Event::Step {
            step,
            epoch,
            loss: self.loss,
            lr,
            grad_norm: self.grad_norm,
            tokens,
        }
    }
}

pub struct Trainer<M> {
    pub model: M,
    pub optim: AdamW,
    /// `clip_grad_norm_` bound; `None` leaves gradients as they are.
    pub max_grad_norm: Option<f64>,
    /// The autodiff device the model lives on.
    pub device: Device,
    pub seed: u64,
}

impl<M: Trainable> Trainer<M> {
    /// Update `step` (1-based) at learning rate `lr`. `loss(model, i)` gives micro-batch
    /// `i`'s loss, weighted so that the micro-batch losses add up to the batch's (so the
    /// result does not depend on how the batch was split).
    ///
    /// The device RNG (LoRA dropout) is reseeded from the run's seed and the step, so an
    /// update draws the same masks whether the run went straight through or was resumed.
    pub fn update(
        &mut self,
        step: usize,
        micro_batches: usize,
        lr: f64,
        mut loss: impl FnMut(&M, usize) -> Result<Tensor<1>, ModelError>,
    ) -> Result<Update, ModelError> {
        self.device
            .seed(self.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ step as u64);
        let mut grads = Grads::new();
        let mut total = 0.0;
        for i in 0..micro_batches {
            let l = loss(&self.model, i)?;
            total += model::io::values(l.clone().inner())?[0] as f64;
            let g = l.backward();
            accumulate(&mut grads, &mut self.model, &g, 1.0);
        }
        if !total.is_finite() {
            return Err(ModelError::Input(format!(
                "the loss became {total} at step {step}: lower the learning rate or check the data"
            )));
        }
        let grad_norm = clip_global_norm(&mut grads, self.max_grad_norm)?;
        self.optim.step(&mut self.model, &grads, lr);
        Ok(Update {
            loss: total,
            grad_norm,
        })
    }
}

/// What a training loop reports as it goes (the progress bar and `log.jsonl`).
#[derive(Debug, Clone, serde::Serialize)]
#[serde(tag = "event", rename_all = "lowercase")]
pub enum Event {
    Step {
        step: usize,
        epoch: usize,
        loss: f64,
        lr: f64,
        grad_norm: f64,
        tokens: usize,
    },
    Eval {
        step: usize,
        epoch: usize,
        val_loss: f64,
        #[serde(skip_serializing_if = "Option::is_none")]
        val_weighted_f1: Option<f64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        val_accuracy: Option<f64>,
        lr: f64,
        #[serde(skip_serializing_if = "Option::is_none")]
        best: Option<bool>,
    },
    Checkpoint {
        step: usize,
        path: std::path::PathBuf,
    },
}
