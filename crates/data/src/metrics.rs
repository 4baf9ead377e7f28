//! Classification metrics with scikit-learn's conventions (PAPER.md: "accuracy and
//! weighted, micro and macro F1, as scikit-learn computes them").
//!
//! - The labels are the sorted union of `y_true` and `y_pred` unless given; given labels
//!   keep their order, and per-label counts still run over all samples (as
//!   `multilabel_confusion_matrix` does), while the confusion matrix ignores samples whose
//!   true or predicted label is not listed.
//! - `zero_division = 0`: a precision, recall or F1 whose denominator is zero is 0.
//! - F1 is `2·tp / (2·tp + fp + fn)`, scikit-learn's form since 1.3 (equal to the harmonic
//!   mean of precision and recall wherever that is defined).
//! - Weighted averages weigh by true support; when every support is zero the plain mean is
//!   used (`_nanaverage`'s fallback). Micro averages pool the counts of the listed labels.

use serde::Serialize;

use crate::error::{DataError, Result};

/// How per-class scores are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Average {
    Micro,
    Macro,
    Weighted,
}

/// Precision, recall, F1 and support of one label.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassScores {
    pub label: usize,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub support: usize,
}

/// Everything a report shows about one scored set.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassificationMetrics {
    pub n: usize,
    /// The labels of `per_class` and of the confusion matrix's rows and columns.
    pub labels: Vec<usize>,
    pub accuracy: f64,
    pub weighted_f1: f64,
    pub macro_f1: f64,
    pub micro_f1: f64,
    pub weighted_precision: f64,
    pub weighted_recall: f64,
    pub macro_precision: f64,
    pub macro_recall: f64,
    pub per_class: Vec<ClassScores>,
    /// `confusion[i][j]`: samples with true label `labels[i]` predicted as `labels[j]`.
    pub confusion: Vec<Vec<usize>>,
}

fn check(y_true: &[usize], y_pred: &[usize], what: &'static str) -> Result<()> {
    if y_true.len() != y_pred.len() {
        return Err(DataError::LengthMismatch {
            what,
            left_name: "y_true",
            left: y_true.len(),
            right_name: "y_pred",
            right: y_pred.len(),
        });
    }
    if y_true.is_empty() {
        return Err(DataError::Empty { what });
    }
    Ok(())
}

/// The sorted union of the labels in both vectors (`sklearn.utils.multiclass.unique_labels`).
pub fn unique_labels(y_true: &[usize], y_pred: &[usize]) -> Vec<usize> {
    let mut labels: Vec<usize> = y_true.iter().chain(y_pred).copied().collect();
    labels.sort_unstable();
    labels.dedup();
    labels
}

fn labels_or_union(y_true: &[usize], y_pred: &[usize], labels: Option<&[usize]>) -> Vec<usize> {
    match labels {
        Some(l) => l.to_vec(),
        None => unique_labels(y_true, y_pred),
    }
}

fn divide(numerator: f64, denominator: f64) -> f64 {
    if denominator == 0.0 {
        0.0
    } else {
        numerator / denominator
    }
}

/// The fraction of exact matches (`accuracy_score`).
pub fn accuracy(y_true: &[usize], y_pred: &[usize]) -> Result<f64> {
    check(y_true, y_pred, "accuracy")?;
    let correct = y_true.iter().zip(y_pred).filter(|(t, p)| t == p).count();
    Ok(correct as f64 / y_true.len() as f64)
}

/// Rows are true labels, columns predicted labels (`confusion_matrix`).
pub fn confusion_matrix(
    y_true: &[usize],
    y_pred: &[usize],
    labels: Option<&[usize]>,
) -> Result<Vec<Vec<usize>>> {
    check(y_true, y_pred, "confusion matrix")?;
    let labels = labels_or_union(y_true, y_pred, labels);
    let position = |l: usize| labels.iter().position(|&x| x == l);
    let mut matrix = vec![vec![0usize; labels.len()]; labels.len()];
    for (&t, &p) in y_true.iter().zip(y_pred) {
        if let (Some(i), Some(j)) = (position(t), position(p)) {
            matrix[i][j] += 1;
        }
    }
    Ok(matrix)
}

/// Per-label (tp, predicted, true) counts over all samples.
fn counts(y_true: &[usize], y_pred: &[usize], labels: &[usize]) -> Vec<(usize, usize, usize)> {
    labels
        .iter()
        .map(|&l| {
            let mut c = (0, 0, 0);
            for (&t, &p) in y_true.iter().zip(y_pred) {
                c.0 += usize::from(t == l && p == l);
                c.1 += usize::from(p == l);
                c.2 += usize::from(t == l);
            }
            c
        })
        .collect()
}

fn scores_of(label: usize, (tp, pred, true_): (usize, usize, usize)) -> ClassScores {
    ClassScores {
        label,
        precision: divide(tp as f64, pred as f64),
        recall: divide(tp as f64, true_ as f64),
        f1: divide(2.0 * tp as f64, (pred + true_) as f64),
        support: true_,
    }
}

/// Per-label scores (`precision_recall_fscore_support(average=None, zero_division=0)`).
pub fn precision_recall_fscore_support(
    y_true: &[usize],
    y_pred: &[usize],
    labels: Option<&[usize]>,
) -> Result<Vec<ClassScores>> {
    check(y_true, y_pred, "precision/recall/F1")?;
    let labels = labels_or_union(y_true, y_pred, labels);
    let c = counts(y_true, y_pred, &labels);
    Ok(labels
        .iter()
        .zip(c)
        .map(|(&l, c)| scores_of(l, c))
        .collect())
}

/// Averaged (precision, recall, F1), as `precision_recall_fscore_support(average=...)`.
pub fn averaged_scores(
    y_true: &[usize],
    y_pred: &[usize],
    average: Average,
    labels: Option<&[usize]>,
) -> Result<(f64, f64, f64)> {
    check(y_true, y_pred, "precision/recall/F1")?;
    let labels = labels_or_union(y_true, y_pred, labels);
    let c = counts(y_true, y_pred, &labels);
    Ok(average_counts(&labels, &c, average))
}

fn average_counts(
    labels: &[usize],
    c: &[(usize, usize, usize)],
    average: Average,
) -> (f64, f64, f64) {
    if average == Average::Micro {
        let pooled = c
            .iter()
            .fold((0, 0, 0), |a, x| (a.0 + x.0, a.1 + x.1, a.2 + x.2));
        let s = scores_of(0, pooled);
        return (s.precision, s.recall, s.f1);
    }
    let per: Vec<ClassScores> = labels
        .iter()
        .zip(c)
        .map(|(&l, &c)| scores_of(l, c))
        .collect();
    let total_support: usize = per.iter().map(|s| s.support).sum();
    let mean = |f: fn(&ClassScores) -> f64| -> f64 {
        if per.is_empty() {
            return 0.0;
        }
        if average == Average::Weighted && total_support > 0 {
            per.iter().map(|s| f(s) * s.support as f64).sum::<f64>() / total_support as f64
        } else {
            per.iter().map(f).sum::<f64>() / per.len() as f64
        }
    };
    (mean(|s| s.precision), mean(|s| s.recall), mean(|s| s.f1))
}

/// `f1_score(y_true, y_pred, average=..., labels=..., zero_division=0)`.
pub fn f1_score(
    y_true: &[usize],
    y_pred: &[usize],
    average: Average,
    labels: Option<&[usize]>,
) -> Result<f64> {
    Ok(averaged_scores(y_true, y_pred, average, labels)?.2)
}

/// Accuracy, the three F1 averages, per-class scores and the confusion matrix at once.
pub fn classification_metrics(
    y_true: &[usize],
    y_pred: &[usize],
    labels: Option<&[usize]>,
) -> Result<ClassificationMetrics> {
    check(y_true, y_pred, "classification metrics")?;
    let labels = labels_or_union(y_true, y_pred, labels);
    let c = counts(y_true, y_pred, &labels);
    let (weighted_precision, weighted_recall, weighted_f1) =
        average_counts(&labels, &c, Average::Weighted);
    let (macro_precision, macro_recall, macro_f1) = average_counts(&labels, &c, Average::Macro);
    let (_, _, micro_f1) = average_counts(&labels, &c, Average::Micro);
    Ok(ClassificationMetrics {
        n: y_true.len(),
        accuracy: accuracy(y_true, y_pred)?,
        weighted_f1,
        macro_f1,
        micro_f1,
        weighted_precision,
        weighted_recall,
        macro_precision,
        macro_recall,
        per_class: labels
            .iter()
            .zip(c)
            .map(|(&l, c)| scores_of(l, c))
            .collect(),
        confusion: confusion_matrix(y_true, y_pred, Some(&labels))?,
        labels,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_hand_case() {
        // sklearn: f1_score([0,1,2,2],[0,2,2,3], average=...) -> labels [0,1,2,3]
        let (t, p) = ([0, 1, 2, 2], [0, 2, 2, 3]);
        let m = classification_metrics(&t, &p, None).unwrap();
        assert_eq!(m.labels, vec![0, 1, 2, 3]);
        assert_eq!(m.accuracy, 0.5);
        // per-class F1: 1, 0, 1/2, 0; supports 1, 1, 2, 0 (sklearn: 0.375, 0.5, 0.5)
        assert!((m.macro_f1 - 0.375).abs() < 1e-12);
        assert!((m.weighted_f1 - 0.5).abs() < 1e-12);
        assert!((m.micro_f1 - 0.5).abs() < 1e-12);
        assert_eq!(
            m.confusion,
            vec![
                vec![1, 0, 0, 0],
                vec![0, 0, 1, 0],
                vec![0, 0, 1, 1],
                vec![0; 4]
            ]
        );
    }

    #[test]
    fn mismatched_and_empty_are_errors() {
        assert!(accuracy(&[0, 1], &[0]).is_err());
        assert!(f1_score(&[], &[], Average::Macro, None).is_err());
    }

    #[test]
    fn zero_support_weights_fall_back_to_mean() {
        // sklearn: f1_score([0,0],[1,1],labels=[1],average='weighted') == 0.0
        assert_eq!(
            f1_score(&[0, 0], &[1, 1], Average::Weighted, Some(&[1])).unwrap(),
            0.0
        );
        // sklearn: f1_score([0,1,2],[0,1,1],labels=[0,5],average='micro') == 1.0
        assert_eq!(
            f1_score(&[0, 1, 2], &[0, 1, 1], Average::Micro, Some(&[0, 5])).unwrap(),
            1.0
        );
    }
}
