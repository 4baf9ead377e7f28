//! Training a head-only classifier ([`model::heads::probe`]): multinomial logistic regression
//! with an L2 penalty on standardized features, one per question, fitted by L-BFGS. The
//! problem is strictly convex, so the result depends on the data and the penalty alone (not
//! on a learning rate, an order or a seed), and the recipe is chosen on validation from a
//! small grid of penalties, class weightings and feature depths.
//!
//! The data types live here; `standardize.rs` centres and scales the feature columns,
//! `loss.rs` is one question's penalized cross-entropy and its gradient, `lbfgs.rs` the
//! minimizer, `fit.rs` fits one probe, `predict.rs` applies it (and rounds it to f16 as
//! shipped), and `select.rs` chooses the recipe from the grid on validation.

mod fit;
mod lbfgs;
mod loss;
mod predict;
mod select;
mod standardize;

use serde::Serialize;

pub use fit::{Fitted, fit};
pub use predict::{argmax, predict, round_f16};
pub use select::{Trial, select};
pub use standardize::{columns, standardize};

/// One example: the index of its text's features, its question (linear layer) and label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Row {
    pub text: usize,
    pub group: usize,
    pub label: usize,
}

/// One recipe of the grid.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FitConfig {
    /// The L2 penalty λ of `mean CE + λ/2·|W|²` (the bias is not penalized); sklearn's C is
    /// about 1/(λ·n).
    pub l2: f64,
    /// Weight each class by n/(classes·n_c) within its question, as sklearn's "balanced".
    pub balanced: bool,
    /// Which of the extracted depths to use (indices into the extraction's depth list).
    pub depth_set: Vec<usize>,
}

/// The fitter's limits.
#[derive(Debug, Clone, Copy)]
pub struct Solver {
    pub max_iter: usize,
    /// Stop when the largest gradient entry is below this.
    pub tol: f64,
    /// Threads sharing each loss evaluation: each sums fixed rows and the parts are added in
    /// order, so a given count always gives the same result (other counts differ in rounding).
    pub threads: usize,
}

impl Default for Solver {
    fn default() -> Self {
        Self {
            max_iter: 200,
            tol: 1e-5,
            threads: 1,
        }
    }
}

/// The data the fitter's tests share.
#[cfg(test)]
mod test_data {
    use super::Row;

    /// Two separable blobs per question, with the label's sign flipped in question 1: only a
    /// per-question layer can fit both.
    pub(super) fn blobs() -> (Vec<Vec<f32>>, Vec<Row>) {
        let mut features = Vec::new();
        let mut rows = Vec::new();
        let mut s: u64 = 7;
        let mut noise = || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 33) as f32 / (1u64 << 31) as f32) - 0.5
        };
        for i in 0..80 {
            let label = i % 2;
            let centre = if label == 1 { 1.5 } else { -1.5 };
            features.push(vec![centre + noise(), noise(), 3.0 + noise(), noise()]);
            rows.push(Row {
                text: i,
                group: 0,
                label,
            });
            rows.push(Row {
                text: i,
                group: 1,
                label: 1 - label,
            });
        }
        (features, rows)
    }
}
