//! The fused loss through the vocabulary projection (`kernels::vocab_nll`, the CPU's op):
//! per-row values and every gradient equal log-softmax-and-gather in plain Burn ops; on wgpu
//! (which takes those ops) the loss equals the CPU's; and `VocabTable::nll` refuses targets
//! it cannot score.

use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, Tensor, TensorData};
use model::vocab::VocabTable;

use crate::max_abs_diff;

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    model::io::values(t).unwrap()
}

/// The loss as the model computed it before the op.
fn plain(hidden: Tensor<2>, weight: Tensor<2>, targets: &[i64]) -> Tensor<1> {
    let n = targets.len();
    let ids =
        Tensor::<2, Int>::from_data(TensorData::new(targets.to_vec(), [n, 1]), &hidden.device());
    log_softmax(hidden.matmul(weight.transpose()), 1)
        .gather(1, ids)
        .reshape([n])
        .neg()
}

fn fused(hidden: Tensor<2>, weight: Tensor<2>, targets: &[i64]) -> Tensor<1> {
    let n = targets.len();
    let ids = Tensor::<1, Int>::from_data(TensorData::new(targets.to_vec(), [n]), &hidden.device());
    kernels::vocab_nll(hidden, weight, ids)
}

/// Pseudo-random targets below `vocab`, the same on every run.
fn targets(n: usize, vocab: usize) -> Vec<i64> {
    (0..n).map(|i| ((i * 7919 + 13) % vocab) as i64).collect()
}

/// `(rows, hidden, vocab, spread)`: the spread of the values scales the logits. The last
/// shape holds more than the CPU op's 8 Mi logits at once, so its rows go in two blocks.
const SHAPES: [(usize, usize, usize, f32); 5] = [
    (1, 8, 5, 1.0),
    (7, 33, 45, 1.0),
    (64, 16, 1000, 3.0),
    (33, 24, 517, 10.0),
    (130, 4, 70_000, 1.0),
];

#[test]
fn per_row_loss_equals_log_softmax() {
    let device = crate::cpu();
    for (n, d, vocab, spread) in SHAPES {
        let u = (-spread as f64, spread as f64);
        let hidden = crate::uniform([n, d], u, 1, &device);
        let weight = crate::uniform([vocab, d], u, 2, &device);
        let t = targets(n, vocab);
        let want = values(plain(hidden.clone(), weight.clone(), &t));
        let got = values(fused(hidden, weight, &t));
        let scale = want.iter().fold(1f32, |m, v| m.max(v.abs()));
        let diff = max_abs_diff(&got, &want);
        assert!(
            diff <= 1e-5 * scale.max(10.0),
            "{device:?} n{n} d{d} vocab{vocab}: max |Δ| {diff} (values up to {scale})"
        );
    }
}

#[test]
fn gradients_equal_burn_autodiff_with_the_table_frozen_and_trained() {
    let device = crate::cpu().autodiff();
    for (n, d, vocab, spread) in SHAPES {
        let u = (-spread as f64, spread as f64);
        let hidden = crate::uniform([n, d], u, 1, &device);
        let weight = crate::uniform([vocab, d], u, 2, &device);
        // A different weight per row, so a backward that ignored its incoming
        // gradient would fail.
        let row_weights = crate::uniform([n], (0.1, 2.0), 3, &device);
        let t = targets(n, vocab);
        for train_table in [false, true] {
            let run = |use_fused: bool| {
                let h = hidden.clone().detach().require_grad();
                let w = weight.clone().detach();
                let w = if train_table { w.require_grad() } else { w };
                let nll = if use_fused {
                    fused(h.clone(), w.clone(), &t)
                } else {
                    plain(h.clone(), w.clone(), &t)
                };
                let grads = (nll.clone() * row_weights.clone()).sum().backward();
                let gh = values(h.grad(&grads).expect("hidden has a gradient"));
                let gw = w.grad(&grads).map(values);
                (gh, gw, values(nll))
            };
            let (want_h, want_w, want_loss) = run(false);
            let (got_h, got_w, got_loss) = run(true);
            let what = format!("{device:?} n{n} d{d} vocab{vocab} table trained: {train_table}");
            let diff = max_abs_diff(&got_loss, &want_loss);
            assert!(
                diff < 1e-4 * spread.max(10.0),
                "{what}: loss max |Δ| {diff}"
            );
            let diff = max_abs_diff(&got_h, &want_h);
            assert!(
                diff < 1e-4 * spread,
                "{what}: hidden gradient max |Δ| {diff}"
            );
            assert_eq!(
                got_w.is_some(),
                train_table,
                "{what}: table gradient present"
            );
            if let (Some(got), Some(want)) = (got_w, want_w) {
                let diff = max_abs_diff(&got, &want);
                assert!(
                    diff < 1e-4 * spread,
                    "{what}: table gradient max |Δ| {diff}"
                );
            }
        }
    }
}

#[test]
fn extreme_logits_stay_finite() {
    let device = crate::cpu();
    // Logits near ±400: a naive exp would overflow; the shifted one must not.
    let hidden = Tensor::<2>::from_data(
        TensorData::new(vec![20.0f32, -20.0, 0.5, 0.0], [2, 2]),
        &device,
    );
    let weight = Tensor::<2>::from_data(
        TensorData::new(vec![20.0f32, 0.0, -20.0, 0.0, 0.0, 20.0], [3, 2]),
        &device,
    );
    let t = [1, 0];
    let got = values(fused(hidden.clone(), weight.clone(), &t));
    let want = values(plain(hidden, weight, &t));
    assert!(got.iter().all(|v| v.is_finite()), "{got:?}");
    assert!(max_abs_diff(&got, &want) < 1e-3, "{got:?} against {want:?}");
    assert!(
        (got[0] - 800.0).abs() < 1e-3,
        "row 0 picks the logit 800 below the top: {got:?}"
    );
}

#[test]
fn a_target_outside_the_vocabulary_or_a_count_mismatch_is_refused() {
    let device = crate::cpu();
    let table = VocabTable::new(crate::uniform([10, 4], (0.0, 1.0), 4, &device));
    let hidden = crate::uniform([2, 4], (0.0, 1.0), 5, &device);
    let err = table
        .nll(hidden.clone(), vec![3, 10])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("token id 10") && err.contains("vocabulary of 10"),
        "{err}"
    );
    let err = table
        .nll(hidden.clone(), vec![-1, 0])
        .unwrap_err()
        .to_string();
    assert!(err.contains("token id -1"), "{err}");
    let err = table.nll(hidden.clone(), vec![1]).unwrap_err().to_string();
    assert!(err.contains("1 target tokens for 2 hidden rows"), "{err}");
    assert_eq!(values(table.nll(hidden, vec![1, 2]).unwrap()).len(), 2);
}

#[test]
fn the_loss_on_wgpu_equals_the_cpu_op() {
    let Some(gpu) = crate::wgpu() else { return };
    let (n, d, vocab) = (6, 48, 330);
    let cpu = crate::cpu();
    let hidden = crate::uniform([n, d], (0.0, 1.0), 6, &cpu);
    let table = crate::uniform([vocab, d], (0.0, 1.0), 7, &cpu);
    let on = |t: &Tensor<2>| Tensor::<2>::from_data(t.to_data(), &gpu);
    let t = targets(n, vocab);
    let want = values(
        VocabTable::new(table.clone())
            .nll(hidden.clone(), t.clone())
            .unwrap(),
    );
    let got = values(VocabTable::new(on(&table)).nll(on(&hidden), t).unwrap());
    let diff = max_abs_diff(&got, &want);
    assert!(diff < 1e-4, "wgpu against the CPU op: max |Δ| {diff}");
}
