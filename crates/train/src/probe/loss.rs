//! One question's problem: the class-weighted mean cross-entropy of a linear softmax layer
//! plus its L2 penalty, with the gradient, summed over fixed row ranges on several threads.

/// The loss and gradient of one question's problem at `theta` = `[W (c×d) | b (c)]`.
pub(super) struct Problem {
    pub(super) x: Vec<f32>,
    pub(super) y: Vec<usize>,
    pub(super) w: Vec<f64>,
    pub(super) d: usize,
    pub(super) c: usize,
    pub(super) l2: f64,
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
    pub(super) fn eval(&self, theta: &[f64], grad: &mut [f64], threads: usize) -> f64 {
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
