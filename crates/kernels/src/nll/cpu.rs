//! The op on Burn's CPU backend: the rows in blocks of at most `BLOCK_VALUES` logits, each
//! block one product with the table, then a pass per row on every thread that takes the
//! log-sum-exp and (for the gradient) turns the logits into `softmax - onehot` in place, then
//! one product back through the table. Dtypes other than f32 take the reference.

use burn::backend::Flex;
use burn::backend::TensorMetadata;
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::{FloatTensor, IntTensor};

use super::VocabNllOps;
use crate::cpu::{self, MatRef};
use crate::reference;

/// Logits held at once: 8 Mi values (32 MiB), 170 rows of SmolLM2's 49,152-token vocabulary.
const BLOCK_VALUES: usize = 8 << 20;

impl VocabNllOps for Flex {
    fn vocab_nll(
        hidden: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        targets: IntTensor<Self>,
    ) -> FloatTensor<Self> {
        match native(&hidden, &weight, &targets, false) {
            Some((nll, _)) => nll,
            None => reference::vocab_nll::<Self>(hidden, weight, targets, false).0,
        }
    }

    fn vocab_nll_with_grad(
        hidden: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        targets: IntTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        match native(&hidden, &weight, &targets, true) {
            Some((nll, Some(grad))) => (nll, grad),
            _ => {
                let (nll, grad) = reference::vocab_nll::<Self>(hidden, weight, targets, true);
                (nll, grad.expect("asked for"))
            }
        }
    }
}

/// The op over f32 values; `None` for other dtypes.
fn native(
    hidden: &FlexTensor,
    weight: &FlexTensor,
    targets: &FlexTensor,
    with_grad: bool,
) -> Option<(FlexTensor, Option<FlexTensor>)> {
    let (hs, ws) = (hidden.shape(), weight.shape());
    let (n, d, vocab) = (hs[0], hs[1], ws[0]);
    assert_eq!(
        ws[1], d,
        "vocab_nll: hidden [{n}, {d}] against a table [{vocab}, {}]",
        ws[1]
    );
    let (h, w) = (MatRef::of(hidden)?, MatRef::of(weight)?);
    let targets = cpu::ints(targets)?;
    assert_eq!(
        targets.len(),
        n,
        "vocab_nll: {} targets for {n} rows",
        targets.len()
    );
    let targets: Vec<usize> = targets
        .iter()
        .map(|&t| {
            assert!(
                (0..vocab as i64).contains(&t),
                "vocab_nll: target {t} outside the vocabulary of {vocab}"
            );
            t as usize
        })
        .collect();

    let block = (BLOCK_VALUES / vocab.max(1)).clamp(1, n.max(1));
    let mut logits = cpu::zeros(block * vocab);
    let mut nll = Vec::with_capacity(n);
    let mut grad = with_grad.then(|| cpu::zeros(n * d));
    for start in (0..n).step_by(block) {
        let rows = block.min(n - start);
        let block_logits = &mut logits[..rows * vocab];
        cpu::gemm(block_logits, 0.0, h.row_range(start, rows), w.t(), 1.0);
        let block_targets = &targets[start..start + rows];
        nll.extend(cpu::map_rows(
            block_logits,
            vocab,
            #[inline(always)]
            |i, row| row_nll(row, block_targets[i], with_grad),
        ));
        if let Some(grad) = grad.as_mut() {
            let out = &mut grad[start * d..(start + rows) * d];
            cpu::gemm(out, 0.0, MatRef::rows(block_logits, rows, vocab), w, 1.0);
        }
    }
    Some((
        cpu::tensor(nll, &[n]),
        grad.map(|g| cpu::tensor(g, &[n, d])),
    ))
}

/// `logsumexp(row) - row[target]`; with `with_grad`, `row` becomes `softmax(row)` minus one
/// at `target`.
#[inline(always)]
fn row_nll(row: &mut [f32], target: usize, with_grad: bool) -> f32 {
    let picked = row[target];
    let max = cpu::max(row);
    let sum = if with_grad {
        let sum = cpu::exp_shifted_in_place(row, max);
        let inv = 1.0 / sum;
        row.iter_mut().for_each(|v| *v *= inv);
        row[target] -= 1.0;
        sum
    } else {
        cpu::sum_exp_shifted(row, max)
    };
    max + sum.ln() - picked
}
