//! Applying a fitted probe to rows of features, and rounding its weights to f16 as shipped.

use model::heads::probe::Probe;

use super::{Row, columns};

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
