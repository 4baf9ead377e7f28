//! Seeded stratified splits, shaped like scikit-learn's `train_test_split(stratify=y)`.
//!
//! The paper splits DEP-SEVERITY 80/10/10 stratified by label (PAPER.md: 2842/355/356 of
//! 3553). That is two scikit-learn splits: 20% held out, then the held-out part halved into
//! validation and test. The sizes follow scikit-learn's rounding:
//! `n_test = ceil(test_size * n)`, `n_train = n - n_test`; so 3553 → 2842 + 711 and
//! 711 → 355 (val) + 356 (test). Per class, the counts follow scikit-learn's
//! `_approximate_mode` (floors of the proportional share, the rest handed to the largest
//! remainders), so every class gets the same count as under scikit-learn. Which rows land
//! where comes from our own seeded generator, not NumPy's, so the rows differ from the
//! paper's while the counts match.

use serde::Serialize;

use crate::error::{DataError, Result};

/// The three index lists of a split, each sorted ascending.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SplitIndices {
    pub train: Vec<usize>,
    pub val: Vec<usize>,
    pub test: Vec<usize>,
}

/// The paper's 80/10/10 stratified split: hold out 20%, then split the held-out part 50/50
/// into validation and test (the larger half, by scikit-learn's rounding, is test).
pub fn stratified_split(labels: &[usize], seed: u64) -> Result<SplitIndices> {
    stratified_split_with(labels, 0.2, 0.5, seed)
}

/// A stratified three-way split: `holdout` of the rows leave training, and `test_share`
/// of those go to test, the rest to validation.
pub fn stratified_split_with(
    labels: &[usize],
    holdout: f64,
    test_share: f64,
    seed: u64,
) -> Result<SplitIndices> {
    let mut rng = SplitMix64::new(seed);
    let all: Vec<usize> = (0..labels.len()).collect();
    let (mut train, held) = stratified_train_test(&all, labels, holdout, &mut rng)?;
    let (mut val, mut test) = stratified_train_test(&held, labels, test_share, &mut rng)?;
    train.sort_unstable();
    val.sort_unstable();
    test.sort_unstable();
    Ok(SplitIndices { train, val, test })
}

/// One stratified train/test split of `indices` (positions into `labels`), as
/// scikit-learn's `StratifiedShuffleSplit` draws it.
pub fn stratified_train_test(
    indices: &[usize],
    labels: &[usize],
    test_size: f64,
    rng: &mut SplitMix64,
) -> Result<(Vec<usize>, Vec<usize>)> {
    if !(test_size > 0.0 && test_size < 1.0) {
        return Err(DataError::Invalid(format!(
            "test size {test_size} is not in (0, 1)"
        )));
    }
    let n = indices.len();
    let n_test = (test_size * n as f64).ceil() as usize;
    let n_train = n.saturating_sub(n_test);
    if n_test == 0 || n_train == 0 {
        return Err(DataError::Invalid(format!(
            "cannot split {n} rows with test size {test_size}: one side would be empty"
        )));
    }
    // Class members in index order (scikit-learn sorts by class with a stable sort).
    let mut classes: Vec<usize> = Vec::new();
    for &i in indices {
        let Some(&label) = labels.get(i) else {
            return Err(DataError::Invalid(format!(
                "index {i} is past the {} labels",
                labels.len()
            )));
        };
        classes.push(label);
    }
    classes.sort_unstable();
    classes.dedup();
    let members: Vec<Vec<usize>> = classes
        .iter()
        .map(|&c| {
            indices
                .iter()
                .copied()
                .filter(|&i| labels[i] == c)
                .collect()
        })
        .collect();
    let counts: Vec<usize> = members.iter().map(Vec::len).collect();
    let train_counts = approximate_mode(&counts, n_train, rng);
    let remaining: Vec<usize> = counts
        .iter()
        .zip(&train_counts)
        .map(|(c, t)| c - t)
        .collect();
    let test_counts = approximate_mode(&remaining, n_test, rng);
    let (mut train, mut test) = (Vec::with_capacity(n_train), Vec::with_capacity(n_test));
    for (k, class_members) in members.iter().enumerate() {
        let mut shuffled = class_members.clone();
        rng.shuffle(&mut shuffled);
        train.extend_from_slice(&shuffled[..train_counts[k]]);
        test.extend_from_slice(&shuffled[train_counts[k]..train_counts[k] + test_counts[k]]);
    }
    Ok((train, test))
}

/// scikit-learn's `_approximate_mode`: split `n_draws` over classes in proportion to
/// `counts`, flooring, then give the rest one each to the largest remainders (ties drawn at
/// random). Never gives a class more than it has.
pub fn approximate_mode(counts: &[usize], n_draws: usize, rng: &mut SplitMix64) -> Vec<usize> {
    let total: usize = counts.iter().sum();
    if total == 0 {
        return vec![0; counts.len()];
    }
    let continuous: Vec<f64> = counts
        .iter()
        .map(|&c| c as f64 / total as f64 * n_draws as f64)
        .collect();
    let mut floored: Vec<usize> = continuous.iter().map(|x| x.floor() as usize).collect();
    let mut need = n_draws.saturating_sub(floored.iter().sum());
    if need > 0 {
        let remainder: Vec<f64> = continuous
            .iter()
            .zip(&floored)
            .map(|(c, f)| c - *f as f64)
            .collect();
        let mut values = remainder.clone();
        values.sort_by(|a, b| b.total_cmp(a));
        values.dedup();
        for value in values {
            let mut tied: Vec<usize> = (0..counts.len())
                .filter(|&k| remainder[k] == value)
                .collect();
            rng.shuffle(&mut tied);
            for k in tied.into_iter().take(need) {
                floored[k] += 1;
                need -= 1;
            }
            if need == 0 {
                break;
            }
        }
    }
    floored
}

/// SplitMix64 (Steele, Lea & Flood 2014): a tiny generator written out here so a seed
/// gives the same split on every platform and every version of the `rand` crate.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform integer in `0..bound` (`bound > 0`), by Lemire's multiply-shift with
    /// rejection, so there is no modulo bias.
    pub fn below(&mut self, bound: u64) -> u64 {
        let threshold = bound.wrapping_neg() % bound;
        loop {
            let product = (self.next_u64() as u128) * (bound as u128);
            if (product as u64) >= threshold {
                return (product >> 64) as u64;
            }
        }
    }

    /// Fisher–Yates shuffle.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn severity_like_labels() -> Vec<usize> {
        // DEP-SEVERITY's class counts (data README): minimum 2587, mild 290, moderate 394,
        // severe 282, interleaved.
        let mut labels = Vec::new();
        for (class, count) in [(0, 2587), (1, 290), (2, 394), (3, 282)] {
            labels.extend(std::iter::repeat_n(class, count));
        }
        let mut rng = SplitMix64::new(7);
        rng.shuffle(&mut labels);
        labels
    }

    #[test]
    fn paper_sizes_and_disjoint_cover() {
        let labels = severity_like_labels();
        let split = stratified_split(&labels, 2).unwrap();
        assert_eq!(
            (split.train.len(), split.val.len(), split.test.len()),
            (2842, 355, 356)
        );
        let mut all: Vec<usize> = split
            .train
            .iter()
            .chain(&split.val)
            .chain(&split.test)
            .copied()
            .collect();
        all.sort_unstable();
        assert_eq!(all, (0..labels.len()).collect::<Vec<_>>());
    }

    #[test]
    fn same_seed_same_split_other_seed_other_split() {
        let labels = severity_like_labels();
        let a = stratified_split(&labels, 2).unwrap();
        assert_eq!(a, stratified_split(&labels, 2).unwrap());
        assert_ne!(a, stratified_split(&labels, 3).unwrap());
    }

    #[test]
    fn bad_sizes_are_errors() {
        assert!(stratified_split_with(&[0, 1], 1.5, 0.5, 0).is_err());
        assert!(stratified_split(&[0], 0).is_err());
    }

    #[test]
    fn below_stays_in_range() {
        let mut rng = SplitMix64::new(1);
        assert!((0..1000).all(|_| rng.below(7) < 7));
    }
}
