//! MentalQLM's data selection, the model-independent part: outlier removal on a score by the
//! 1.5×IQR rule, and k-center greedy selection over embeddings, on the device in chunks.

use burn::tensor::{Device, Tensor, TensorData};
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum SelectError {
    #[error("{0}")]
    Input(String),
    #[error("tensor readback failed: {0}")]
    Readback(String),
}

/// The `q`-th percentile (0..=100) with linear interpolation between order statistics,
/// NumPy's default (`np.percentile(..., method="linear")`). `sorted` must be ascending.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = q / 100.0 * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// What the outlier step did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutlierReport {
    pub before: usize,
    pub non_finite: usize,
    pub outliers: usize,
    pub after: usize,
    pub q1: f64,
    pub median: f64,
    pub q3: f64,
    /// Scores outside `[lower, upper]` were removed: `Q1 − 1.5·IQR`, `Q3 + 1.5·IQR`.
    pub lower: f64,
    pub upper: f64,
}

/// Indices (ascending) of the scores that are finite and inside the 1.5×IQR fences, with a
/// report. The quartiles are those of the finite scores.
pub fn remove_outliers(scores: &[f64]) -> (Vec<usize>, OutlierReport) {
    let mut finite: Vec<f64> = scores.iter().copied().filter(|s| s.is_finite()).collect();
    finite.sort_by(f64::total_cmp);
    let (q1, median, q3) = (
        percentile(&finite, 25.0),
        percentile(&finite, 50.0),
        percentile(&finite, 75.0),
    );
    let iqr = q3 - q1;
    let (lower, upper) = (q1 - 1.5 * iqr, q3 + 1.5 * iqr);
    let keep: Vec<usize> = (0..scores.len())
        .filter(|&i| scores[i].is_finite() && scores[i] >= lower && scores[i] <= upper)
        .collect();
    let non_finite = scores.len() - finite.len();
    let report = OutlierReport {
        before: scores.len(),
        non_finite,
        outliers: finite.len() - keep.len(),
        after: keep.len(),
        q1,
        median,
        q3,
        lower,
        upper,
    };
    (keep, report)
}

/// The result of k-center greedy.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KCenter {
    /// Selected row indices, in the order they were picked (the first is the given centre).
    pub selected: Vec<usize>,
    /// Largest distance of any row to its nearest selected row: how well the subset covers
    /// the set.
    pub coverage_radius: f64,
}

fn read_f32(t: Tensor<1>) -> Result<Vec<f32>, SelectError> {
    let data = t
        .try_into_data()
        .map_err(|e| SelectError::Readback(format!("{e:?}")))?;
    data.try_to_vec()
        .map_err(|e| SelectError::Readback(format!("{e:?}")))
}

/// k-center greedy with Euclidean distance: start at `first`, then repeatedly add the row
/// farthest from every selected row (ties: the lowest index, as NumPy's `argmax`). Every row
/// is selected at most once.
///
/// The rows live on `device` in chunks of `chunk` rows; each step computes one distance per
/// row there and reads back only the minimum distances, so memory is `n × dim` once plus
/// `n` floats.
pub fn k_center_greedy(
    rows: &[Vec<f32>],
    k: usize,
    first: usize,
    chunk: usize,
    device: &Device,
) -> Result<KCenter, SelectError> {
    let n = rows.len();
    if n == 0 {
        return Err(SelectError::Input("k-center greedy on an empty set".into()));
    }
    if k == 0 || k > n {
        return Err(SelectError::Input(format!("cannot select {k} of {n} rows")));
    }
    if first >= n {
        return Err(SelectError::Input(format!(
            "first centre {first} is outside {n} rows"
        )));
    }
    let dim = rows[0].len();
    if let Some(i) = rows.iter().position(|r| r.len() != dim) {
        return Err(SelectError::Input(format!(
            "row {i} has {} values, row 0 has {dim}",
            rows[i].len()
        )));
    }
    let chunk = chunk.max(1);
    let chunks: Vec<Tensor<2>> = rows
        .chunks(chunk)
        .map(|c| {
            let flat: Vec<f32> = c.iter().flatten().copied().collect();
            Tensor::from_data(TensorData::new(flat, [c.len(), dim]), device)
        })
        .collect();
    let distances_to = |centre: usize| -> Tensor<1> {
        let c = Tensor::<2>::from_data(TensorData::new(rows[centre].clone(), [1, dim]), device);
        let parts: Vec<Tensor<1>> = chunks
            .iter()
            .map(|x| {
                let rows = x.dims()[0];
                (x.clone() - c.clone()).square().sum_dim(1).reshape([rows])
            })
            .collect();
        Tensor::cat(parts, 0)
    };
    let mut selected = vec![first];
    let mut taken = vec![false; n];
    taken[first] = true;
    let mut min_d = distances_to(first);
    while selected.len() < k {
        // Host argmax keeps NumPy's first-index tie rule on every backend. Rows already
        // taken are skipped: once every row is at distance 0 (duplicate rows, e.g. one post
        // asked several questions), the lowest untaken row is next, never a taken one again.
        let host = read_f32(min_d.clone())?;
        let next = host
            .iter()
            .enumerate()
            .filter(|&(i, _)| !taken[i])
            .fold(None, |best: Option<(usize, f32)>, (i, &d)| match best {
                Some((_, b)) if d <= b => best,
                _ => Some((i, d)),
            })
            .map(|(i, _)| i)
            .expect("k ≤ n leaves an untaken row");
        taken[next] = true;
        selected.push(next);
        min_d = min_d.min_pair(distances_to(next));
    }
    let host = read_f32(min_d)?;
    let radius = host.iter().copied().fold(0.0f32, f32::max).max(0.0).sqrt() as f64;
    Ok(KCenter {
        selected,
        coverage_radius: radius,
    })
}
