//! Choosing the recipe: every grid point fitted on training and scored on validation, the
//! penalties of one path warm-started from the strongest down.

use model::heads::probe::Probe;
use serde::Serialize;

use super::{FitConfig, Fitted, Row, Solver, fit, predict};

/// One grid point's validation result.
#[derive(Debug, Clone, Serialize)]
pub struct Trial {
    pub config: FitConfig,
    pub val_weighted_f1: f64,
    pub iterations: Vec<usize>,
    pub seconds: f64,
}

/// Fits every recipe of the grid on `train` and keeps the best by validation weighted F1
/// (ties go to the earlier recipe: list the stronger penalties first). Penalties of the same
/// weighting and columns are fitted from the strongest down, each warm-started from the last.
#[allow(clippy::too_many_arguments)]
pub fn select(
    features: &[Vec<f32>],
    train: &[Row],
    val: &[Row],
    hidden: usize,
    groups: usize,
    classes: usize,
    grid: &[FitConfig],
    solver: Solver,
    weighted_f1: &dyn Fn(&[usize], &[usize]) -> f64,
    mut on_trial: impl FnMut(&Trial),
) -> (Probe, FitConfig, Vec<Trial>) {
    let gold: Vec<usize> = val.iter().map(|r| r.label).collect();
    let mut trials = Vec::with_capacity(grid.len());
    let mut best: Option<(f64, Probe, FitConfig)> = None;
    let mut last: Option<Fitted> = None;
    let mut last_key: Option<(bool, Vec<usize>)> = None;
    for config in grid {
        let start = std::time::Instant::now();
        let key = (config.balanced, config.depth_set.clone());
        let warm = if last_key.as_ref() == Some(&key) {
            last.as_ref()
        } else {
            None
        };
        let fitted = fit(
            features, train, hidden, groups, classes, config, solver, warm,
        );
        let (pred, _) = predict(&fitted.probe, features, val, &config.depth_set, hidden);
        let f1 = weighted_f1(&gold, &pred);
        let trial = Trial {
            config: config.clone(),
            val_weighted_f1: f1,
            iterations: fitted.iterations.clone(),
            seconds: start.elapsed().as_secs_f64(),
        };
        on_trial(&trial);
        trials.push(trial);
        if best.as_ref().is_none_or(|(b, _, _)| f1 > *b) {
            best = Some((f1, fitted.probe.clone(), config.clone()));
        }
        last = Some(fitted);
        last_key = Some(key);
    }
    let (_, probe, config) = best.expect("the grid is not empty");
    (probe, config, trials)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::test_data::blobs;

    #[test]
    fn select_prefers_the_better_recipe_on_validation() {
        let (features, rows) = blobs();
        let (train, val): (Vec<Row>, Vec<Row>) = rows.iter().partition(|r| r.text % 4 != 0);
        // Depth 1 (columns 2..4) is noise and a constant: it cannot separate the labels.
        let grid = vec![
            FitConfig {
                l2: 1e-2,
                balanced: false,
                depth_set: vec![1],
            },
            FitConfig {
                l2: 1e-2,
                balanced: false,
                depth_set: vec![0],
            },
        ];
        let acc = |t: &[usize], p: &[usize]| {
            t.iter().zip(p).filter(|(a, b)| a == b).count() as f64 / t.len() as f64
        };
        let (_, chosen, trials) = select(
            &features,
            &train,
            &val,
            2,
            2,
            2,
            &grid,
            Solver::default(),
            &acc,
            |_| {},
        );
        assert_eq!(chosen.depth_set, vec![0]);
        assert_eq!(trials.len(), 2);
        assert!(trials[1].val_weighted_f1 > trials[0].val_weighted_f1);
    }
}
