//! Fitting one probe: standardization from the training texts, then one L-BFGS problem per
//! question, optionally warm-started from an earlier fit.

use model::heads::probe::Probe;

use super::lbfgs::lbfgs;
use super::loss::Problem;
use super::{FitConfig, Row, Solver, columns, standardize};

/// A fitted probe and what it cost.
pub struct Fitted {
    pub probe: Probe,
    /// L-BFGS iterations, per question.
    pub iterations: Vec<usize>,
    /// `theta` per question, to warm-start the next penalty of a path.
    theta: Vec<Vec<f64>>,
}

/// Fits one probe: standardization from the training texts, then one problem per question.
/// `warm` is an earlier fit over the same columns (a larger penalty of the same path).
#[allow(clippy::too_many_arguments)]
pub fn fit(
    features: &[Vec<f32>],
    train: &[Row],
    hidden: usize,
    groups: usize,
    classes: usize,
    config: &FitConfig,
    solver: Solver,
    warm: Option<&Fitted>,
) -> Fitted {
    let cols = columns(&config.depth_set, hidden);
    let d = cols.len();
    let mut texts: Vec<usize> = train.iter().map(|r| r.text).collect();
    texts.sort_unstable();
    texts.dedup();
    let (mean, scale) = standardize(features, &texts, &cols);
    let mut weight = vec![0f32; groups * classes * d];
    let mut bias = vec![0f32; groups * classes];
    let mut iterations = Vec::with_capacity(groups);
    let mut thetas = Vec::with_capacity(groups);
    for g in 0..groups {
        let rows: Vec<&Row> = train.iter().filter(|r| r.group == g).collect();
        let mut counts = vec![0usize; classes];
        for r in &rows {
            counts[r.label] += 1;
        }
        let present = counts.iter().filter(|&&n| n > 0).count().max(1);
        let mut x = Vec::with_capacity(rows.len() * d);
        for r in &rows {
            let f = &features[r.text];
            x.extend(
                cols.iter()
                    .enumerate()
                    .map(|(j, &col)| (f[col] - mean[j]) * scale[j]),
            );
        }
        let problem = Problem {
            y: rows.iter().map(|r| r.label).collect(),
            w: rows
                .iter()
                .map(|r| {
                    if config.balanced {
                        rows.len() as f64 / (present as f64 * counts[r.label] as f64)
                    } else {
                        1.0
                    }
                })
                .collect(),
            x,
            d,
            c: classes,
            l2: config.l2,
        };
        let mut theta = warm
            .and_then(|w| w.theta.get(g).cloned())
            .filter(|t| t.len() == classes * d + classes)
            .unwrap_or_else(|| vec![0.0; classes * d + classes]);
        let iters = if rows.is_empty() {
            0
        } else {
            lbfgs(
                &|t, grad| problem.eval(t, grad, solver.threads),
                &mut theta,
                solver,
            )
        };
        for k in 0..classes {
            let row = g * classes + k;
            for j in 0..d {
                weight[row * d + j] = theta[k * d + j] as f32;
            }
            bias[row] = theta[classes * d + k] as f32;
        }
        iterations.push(iters);
        thetas.push(theta);
    }
    Fitted {
        probe: Probe {
            mean,
            scale,
            weight,
            bias,
            classes,
        },
        iterations,
        theta: thetas,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::predict;
    use crate::probe::test_data::blobs;

    #[test]
    fn fits_per_question_layers_and_reaches_the_optimum() {
        let (features, rows) = blobs();
        let config = FitConfig {
            l2: 1e-2,
            balanced: false,
            depth_set: vec![0, 1],
        };
        let fitted = fit(&features, &rows, 2, 2, 2, &config, Solver::default(), None);
        let (pred, probs) = predict(&fitted.probe, &features, &rows, &[0, 1], 2);
        let correct = pred
            .iter()
            .zip(&rows)
            .filter(|(p, r)| **p == r.label)
            .count();
        assert_eq!(
            correct,
            rows.len(),
            "the blobs are separable in each question"
        );
        assert!(
            probs
                .iter()
                .all(|p| (p.iter().sum::<f64>() - 1.0).abs() < 1e-9)
        );
        // At the optimum the gradient vanishes: compare with a fit from a warm start, which
        // must land at the same point of a strictly convex problem.
        let again = fit(
            &features,
            &rows,
            2,
            2,
            2,
            &config,
            Solver::default(),
            Some(&fitted),
        );
        for (a, b) in fitted.probe.weight.iter().zip(&again.probe.weight) {
            assert!((a - b).abs() < 1e-3, "{a} vs {b}");
        }
        let threaded = Solver {
            threads: 3,
            ..Solver::default()
        };
        let split = fit(&features, &rows, 2, 2, 2, &config, threaded, None);
        for (a, b) in fitted.probe.weight.iter().zip(&split.probe.weight) {
            assert!((a - b).abs() < 1e-3, "3 threads: {a} vs {b}");
        }
        // A stronger penalty shrinks the weights.
        let strong = FitConfig { l2: 1.0, ..config };
        let shrunk = fit(&features, &rows, 2, 2, 2, &strong, Solver::default(), None);
        let norm = |p: &Probe| p.weight.iter().map(|w| w * w).sum::<f32>();
        assert!(norm(&shrunk.probe) < norm(&fitted.probe));
    }
}
