//! L-BFGS: the minimizer of the (smooth, strictly convex) probe problem.

use super::Solver;

/// Minimizes a smooth convex function by L-BFGS (10 pairs) with a backtracking line search.
pub(super) fn lbfgs(
    f: &dyn Fn(&[f64], &mut [f64]) -> f64,
    theta: &mut [f64],
    solver: Solver,
) -> usize {
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
