//! Standardizing features: the columns of a depth set, and their mean and 1/std over the
//! training texts.

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standardize_zeroes_constant_columns() {
        let features = vec![vec![1.0, 5.0], vec![3.0, 5.0]];
        let (mean, scale) = standardize(&features, &[0, 1], &[0, 1]);
        assert_eq!(mean, vec![2.0, 5.0]);
        assert!((scale[0] - 1.0).abs() < 1e-6);
        assert_eq!(scale[1], 0.0);
    }
}
