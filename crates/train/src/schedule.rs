//! Learning-rate schedules: stage 1's cosine decay with optional linear warmup (the
//! `cosine` scheduler of HF Trainer / LLaMA-Factory) and stage 2's ReduceLROnPlateau.

use serde::{Deserialize, Serialize};

/// The learning rate before update `step` (0-based) of `total`: linear warmup from 0 over
/// `warmup` updates, then half a cosine from `base` down to 0 at `total`.
pub fn cosine(base: f64, step: usize, total: usize, warmup: usize) -> f64 {
    if step < warmup {
        return base * step as f64 / warmup.max(1) as f64;
    }
    let progress = (step - warmup) as f64 / (total.saturating_sub(warmup)).max(1) as f64;
    base * 0.5 * (1.0 + (std::f64::consts::PI * progress.min(1.0)).cos())
}

/// `torch.optim.lr_scheduler.ReduceLROnPlateau` in mode `min` with threshold 0: after more
/// than `patience` evaluations without a new best loss, the rate is multiplied by `factor`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plateau {
    pub lr: f64,
    pub factor: f64,
    pub patience: usize,
    /// The lowest loss so far; `None` before the first. (It was `f64::INFINITY`, which
    /// JSON writes as `null`: a checkpoint saved before the first evaluation could not be
    /// read back. Found by the kill -9 test.)
    pub best: Option<f64>,
    pub bad: usize,
}

impl Plateau {
    pub fn new(lr: f64, factor: f64, patience: usize) -> Self {
        Self {
            lr,
            factor,
            patience,
            best: None,
            bad: 0,
        }
    }

    /// Records one validation loss; returns the learning rate from now on.
    pub fn observe(&mut self, loss: f64) -> f64 {
        // A non-finite loss is never a best (and would not survive JSON either).
        if loss.is_finite() && self.best.is_none_or(|b| loss < b) {
            self.best = Some(loss);
            self.bad = 0;
        } else {
            self.bad += 1;
            if self.bad > self.patience {
                self.lr *= self.factor;
                self.bad = 0;
            }
        }
        self.lr
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_warms_up_then_decays_to_zero() {
        assert_eq!(cosine(1.0, 0, 10, 2), 0.0);
        assert_eq!(cosine(1.0, 1, 10, 2), 0.5);
        assert_eq!(cosine(1.0, 2, 10, 2), 1.0);
        assert!((cosine(1.0, 6, 10, 2) - 0.5).abs() < 1e-12);
        assert!(cosine(1.0, 10, 10, 2).abs() < 1e-12);
        assert_eq!(
            cosine(2.0, 0, 10, 0),
            2.0,
            "no warmup starts at the base rate"
        );
    }

    #[test]
    fn plateau_survives_a_checkpoint_at_any_point() {
        let mut p = Plateau::new(1.0, 0.5, 1);
        for loss in [None, Some(2.0), Some(f64::NAN), Some(3.0)] {
            if let Some(l) = loss {
                p.observe(l);
            }
            let text = serde_json::to_string(&p).unwrap();
            let back: Plateau = serde_json::from_str(&text).unwrap();
            assert_eq!(back, p, "{text}");
        }
        assert_eq!(p.best, Some(2.0));
    }

    #[test]
    fn plateau_halves_after_patience() {
        let mut p = Plateau::new(1.0, 0.5, 2);
        assert_eq!(p.observe(3.0), 1.0);
        assert_eq!(p.observe(3.0), 1.0);
        assert_eq!(p.observe(3.5), 1.0);
        assert_eq!(
            p.observe(3.2),
            0.5,
            "a third evaluation without improvement"
        );
        assert_eq!(p.observe(2.0), 0.5);
    }
}
