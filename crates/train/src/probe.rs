//! Training a head-only classifier ([`model::heads::probe`]): multinomial logistic regression
//! with an L2 penalty on standardized features, one per question, fitted by L-BFGS. The
//! problem is strictly convex, so the result depends on the data and the penalty alone (not
//! on a learning rate, an order or a seed), and the recipe is chosen on validation from a
//! small grid of penalties, class weightings and feature depths.

use model::heads::probe::Probe;
use serde::Serialize;

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

/// Feature columns of `depth_set`, from features laid out as `[depth][hidden]`.
pub fn columns(depth_set: &[usize], hidden: usize) -> Vec<usize> {
    depth_set
        .iter()
        .flat_map(|&d| d * hidden..(d + 1) * hidden)
        .collect()
}

/// Mean and 1/std of every column over the training texts (each text once).
pub fn standardize(features: &[Vec<f32>], texts: &[usize], cols: &[usize]) -> (Vec<f32>, Vec<f32>) {
    let n = texts.len().max(1) as f64;
    let mut mean = vec![0f64; cols.len()];
    let mut sq = vec![0f64; cols.len()];
    for &t in texts {
        for (j, &c) in cols.iter().enumerate() {
            let v = features[t][c] as f64;
            mean[j] += v;
            sq[j] += v * v;
        }
    }
    let mut scale = Vec::with_capacity(cols.len());
    for j in 0..cols.len() {
        mean[j] /= n;
        let var = (sq[j] / n - mean[j] * mean[j]).max(0.0);
        // A constant column carries nothing; a tiny std would blow up its rounding noise.
        scale.push(if var > 1e-12 {
            (1.0 / var.sqrt()) as f32
        } else {
            0.0
        });
    }
    (mean.into_iter().map(|m| m as f32).collect(), scale)
}

/// The loss and gradient of one question's problem at `theta` = `[W (c×d) | b (c)]`.
struct Problem {
    x: Vec<f32>,
    y: Vec<usize>,
    w: Vec<f64>,
    d: usize,
    c: usize,
    l2: f64,
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    // Eight partial sums: the compiler keeps them in vector registers.
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for k in 0..8 {
            acc[k] += x[k] * y[k];
        }
    }
    let mut s: f32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

impl Problem {
    /// Loss and gradient over rows `lo..hi`: (weighted loss, dW as f32, db).
    fn part(
        &self,
        wf: &[f32],
        theta: &[f64],
        lo: usize,
        hi: usize,
        total: f64,
    ) -> (f64, Vec<f32>, Vec<f64>) {
        let (d, c) = (self.d, self.c);
        let mut gw = vec![0f32; c * d];
        let mut gb = vec![0f64; c];
        let mut loss = 0.0;
        let mut logits = vec![0f64; c];
        for i in lo..hi {
            let x = &self.x[i * d..(i + 1) * d];
            for k in 0..c {
                logits[k] = dot(x, &wf[k * d..(k + 1) * d]) as f64 + theta[c * d + k];
            }
            let max = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let sum: f64 = logits.iter().map(|l| (l - max).exp()).sum();
            let lse = max + sum.ln();
            let wi = self.w[i] / total;
            loss += wi * (lse - logits[self.y[i]]);
            for k in 0..c {
                let p = (logits[k] - lse).exp();
                let r = wi * (p - if k == self.y[i] { 1.0 } else { 0.0 });
                gb[k] += r;
                let r = r as f32;
                for (g, &xv) in gw[k * d..(k + 1) * d].iter_mut().zip(x) {
                    *g += r * xv;
                }
            }
        }
        (loss, gw, gb)
    }

    /// Loss and gradient, the rows split over `threads` fixed ranges whose parts are added
    /// in order, so the result does not depend on scheduling.
    fn eval(&self, theta: &[f64], grad: &mut [f64], threads: usize) -> f64 {
        let (d, c) = (self.d, self.c);
        let n = self.y.len();
        let wf: Vec<f32> = theta[..c * d].iter().map(|&v| v as f32).collect();
        let total: f64 = self.w.iter().sum();
        let threads = threads.clamp(1, n.max(1));
        let per = n.div_ceil(threads);
        let parts: Vec<(f64, Vec<f32>, Vec<f64>)> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let (lo, hi) = ((t * per).min(n), ((t + 1) * per).min(n));
                    let wf = &wf;
                    scope.spawn(move || self.part(wf, theta, lo, hi, total))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                .collect()
        });
        let mut loss = 0.0;
        grad.iter_mut().for_each(|g| *g = 0.0);
        for (l, gw, gb) in parts {
            loss += l;
            for j in 0..c * d {
                grad[j] += gw[j] as f64;
            }
            for k in 0..c {
                grad[c * d + k] += gb[k];
            }
        }
        let mut penalty = 0.0;
        for j in 0..c * d {
            penalty += theta[j] * theta[j];
            grad[j] += self.l2 * theta[j];
        }
        loss + 0.5 * self.l2 * penalty
    }
}

/// Minimizes a smooth convex function by L-BFGS (10 pairs) with a backtracking line search.
fn lbfgs(f: &dyn Fn(&[f64], &mut [f64]) -> f64, theta: &mut [f64], solver: Solver) -> usize {
    let n = theta.len();
    let m = 10;
    let mut g = vec![0.0; n];
    let mut fx = f(theta, &mut g);
    let mut s_hist: Vec<Vec<f64>> = Vec::new();
    let mut y_hist: Vec<Vec<f64>> = Vec::new();
    let mut new_g = vec![0.0; n];
    let mut iters = 0;
    for it in 0..solver.max_iter {
        iters = it + 1;
        if g.iter().fold(0.0f64, |a, &v| a.max(v.abs())) < solver.tol {
            break;
        }
        // Two-loop recursion: the direction -H·g.
        let mut q = g.clone();
        let mut alphas = Vec::with_capacity(s_hist.len());
        for (s, y) in s_hist.iter().zip(&y_hist).rev() {
            let rho = 1.0 / dotf(y, s);
            let a = rho * dotf(s, &q);
            for (qi, yi) in q.iter_mut().zip(y) {
                *qi -= a * yi;
            }
            alphas.push((a, rho));
        }
        let gamma = match (s_hist.last(), y_hist.last()) {
            (Some(s), Some(y)) => dotf(s, y) / dotf(y, y),
            _ => 1.0 / g.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-12),
        };
        q.iter_mut().for_each(|v| *v *= gamma);
        for ((s, y), (a, rho)) in s_hist.iter().zip(&y_hist).zip(alphas.into_iter().rev()) {
            let b = rho * dotf(y, &q);
            for (qi, si) in q.iter_mut().zip(s) {
                *qi += (a - b) * si;
            }
        }
        let dir: Vec<f64> = q.iter().map(|v| -v).collect();
        let slope = dotf(&g, &dir);
        if slope >= 0.0 {
            // Not a descent direction (numerical trouble): restart from steepest descent.
            s_hist.clear();
            y_hist.clear();
            continue;
        }
        let mut step = 1.0;
        let mut trial = vec![0.0; n];
        let mut accepted = false;
        for _ in 0..30 {
            for j in 0..n {
                trial[j] = theta[j] + step * dir[j];
            }
            let ft = f(&trial, &mut new_g);
            if ft <= fx + 1e-4 * step * slope {
                let s: Vec<f64> = (0..n).map(|j| trial[j] - theta[j]).collect();
                let y: Vec<f64> = (0..n).map(|j| new_g[j] - g[j]).collect();
                if dotf(&s, &y) > 1e-12 {
                    s_hist.push(s);
                    y_hist.push(y);
                    if s_hist.len() > m {
                        s_hist.remove(0);
                        y_hist.remove(0);
                    }
                }
                let decrease = fx - ft;
                theta.copy_from_slice(&trial);
                g.copy_from_slice(&new_g);
                fx = ft;
                accepted = true;
                if decrease <= 1e-12 * fx.abs().max(1.0) {
                    return iters;
                }
                break;
            }
            step *= 0.5;
        }
        if !accepted {
            break;
        }
    }
    iters
}

fn dotf(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

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

/// Predicted labels and probabilities of `rows` with a probe over the columns of `depth_set`.
pub fn predict(
    probe: &Probe,
    features: &[Vec<f32>],
    rows: &[Row],
    depth_set: &[usize],
    hidden: usize,
) -> (Vec<usize>, Vec<Vec<f64>>) {
    let cols = columns(depth_set, hidden);
    let mut labels = Vec::with_capacity(rows.len());
    let mut probs = Vec::with_capacity(rows.len());
    for r in rows {
        let x: Vec<f32> = cols.iter().map(|&c| features[r.text][c]).collect();
        let p = probe.probabilities(&x, r.group);
        labels.push(argmax(&p));
        probs.push(p);
    }
    (labels, probs)
}

pub fn argmax(p: &[f64]) -> usize {
    p.iter()
        .enumerate()
        .fold(0, |best, (i, v)| if *v > p[best] { i } else { best })
}

/// The probe's weights rounded to f16, as they are shipped, so that the figures reported
/// for it are those of the file.
pub fn round_f16(probe: &Probe) -> Probe {
    let r =
        |v: &[f32]| -> Vec<f32> { v.iter().map(|&x| half::f16::from_f32(x).to_f32()).collect() };
    Probe {
        mean: r(&probe.mean),
        scale: r(&probe.scale),
        weight: r(&probe.weight),
        bias: r(&probe.bias),
        classes: probe.classes,
    }
}

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

    /// Two separable blobs per question, with the label's sign flipped in question 1: only a
    /// per-question layer can fit both.
    fn blobs() -> (Vec<Vec<f32>>, Vec<Row>) {
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

    #[test]
    fn standardize_zeroes_constant_columns() {
        let features = vec![vec![1.0, 5.0], vec![3.0, 5.0]];
        let (mean, scale) = standardize(&features, &[0, 1], &[0, 1]);
        assert_eq!(mean, vec![2.0, 5.0]);
        assert!((scale[0] - 1.0).abs() < 1e-6);
        assert_eq!(scale[1], 0.0);
    }

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
