//! `out = s_main·(X·Wᵀ) + bias + s_low·T·Fᵀ`, which every LoRA product over the base
//! weight (the forward and the input gradient) goes through, by one of three schedules
//! (`schedule::Schedule`): `shaders/lora_rows.wgsl` for up to 8 rows (64 over codes),
//! `shaders/lora_matmul.wgsl` (tiled) for more rows over codes, and CubeCL's matmul (split
//! over k for long products with few outputs) followed by `shaders/lora_epilogue.wgsl` for
//! more rows over an f32 base; where two are close (`tune`: the tiled kernel is a rival of
//! the epilogue schedule, and over slices of k of a split product, over either base),
//! natively, the fastest as timed on the device the first time a shape is seen. The
//! operands are `operands`, the launches of our kernels `passes`, and what they bind `args`.

use burn::backend::Backend;
use burn::backend::tensor::FloatTensor;
use burn::backend::wgpu::{CubeBackend, CubeTensor, into_contiguous};
use burn_cubecl::cubecl::future;

use super::operands::{LowRank, Strided, Weight, resolve};
use super::passes::{OnePass, epilogue, one_pass};
use super::tune;
use crate::reference;
use crate::schedule::{self, Schedule};
use crate::settings::Settings;
use crate::shaders::{self, Tile};

/// `s_main·(X·Wᵀ) + bias + low` for `x` seen as `[m, k]`, by the schedule
/// `Schedule::choose` picks for its rows and base, or where that leaves a close call, by
/// the fastest of its rivals as timed on this device (`tune`); and the low-rank term's
/// `T = X·Aᵀ` where there is one.
pub fn matmul(
    x: Strided,
    w: Weight,
    low: Option<LowRank>,
    bias: Option<CubeTensor>,
    s_main: f32,
) -> (CubeTensor, Option<CubeTensor>) {
    let product = Product {
        x,
        w,
        low,
        bias,
        s_main,
    };
    let (m, n, k) = (product.x.rows, product.w.outputs(), product.x.cols);
    let quantized = matches!(product.w, Weight::Quantized { .. });
    let settings = crate::settings::current();
    let rule = Schedule::choose(m, n, quantized, &settings);
    let split = schedule::split_k(m, n, k, &settings) > 1;
    // Whether `lora_rows.wgsl` could compute `T` itself (a rival of taking it apart).
    let inside = product
        .low
        .as_ref()
        .is_some_and(|low| shaders::rows_projected_ranks(low.a.rows, product.w.bits()).is_some());
    let rivals = tune::rivals(rule, m, quantized, split, inside, &settings);
    let schedule = match rivals.filter(|_| tune::enabled(&settings)) {
        Some(rivals) => {
            let key = tune::Key {
                rows: m,
                outputs: n,
                depth: k,
                bits: product.w.bits(),
                x_transposed: product.x.transposed,
                w_transposed: matches!(&product.w, Weight::F32(w) if w.transposed),
            };
            let client = product.x.tensor.client.clone();
            let sync = || future::block_on(client.sync()).is_ok();
            let call = |schedule| drop(run(schedule, product.clone(), &settings));
            tune::choose(&product.x.tensor.device, key, rivals, sync, call)
        }
        None => rule,
    };
    run(schedule, product, &settings)
}

/// The operands of one [`matmul`].
#[derive(Clone)]
struct Product {
    x: Strided,
    w: Weight,
    low: Option<LowRank>,
    bias: Option<CubeTensor>,
    s_main: f32,
}

/// The product by `schedule`, and `T` where it was projected.
fn run(
    schedule: Schedule,
    product: Product,
    settings: &Settings,
) -> (CubeTensor, Option<CubeTensor>) {
    let Product {
        x,
        w,
        low,
        bias,
        s_main,
    } = product;
    let m = x.rows;
    match (schedule, w) {
        (Schedule::Epilogue | Schedule::EpilogueWhole, Weight::F32(w)) => {
            let splits = match schedule {
                Schedule::Epilogue => schedule::split_k(m, w.rows, x.cols, settings),
                _ => 1,
            };
            let (low, t) = resolve(low, &x);
            let y = if splits == 1 {
                // `op(w)ᵀ` as CubeCL sees it: the view's transpose is the tensor's, undone.
                reference::scaled_matmul::<CubeBackend>(
                    x.tensor,
                    w.tensor,
                    x.transposed,
                    !w.transposed,
                    1.0,
                )
            } else {
                split_product(&x, &w, splits)
            };
            (epilogue(y, low, bias, s_main), t)
        }
        (Schedule::Rows | Schedule::RowsApart, w) => {
            let rows = OnePass::Rows(m.min(shaders::ROWS_MAX));
            let inside = schedule == Schedule::Rows;
            one_pass(rows, x, w, low, bias, s_main, 1, inside)
        }
        (Schedule::Tiled(tile), w) => {
            one_pass(OnePass::Tiled(tile), x, w, low, bias, s_main, 1, true)
        }
        (Schedule::TiledSplit(tile), w) => {
            let splits = schedule::split_k(m, w.outputs(), x.cols, settings);
            if splits == 1 {
                return one_pass(OnePass::Tiled(tile), x, w, low, bias, s_main, 1, true);
            }
            let (low, t) = resolve(low, &x);
            let (y, _) = one_pass(OnePass::Tiled(tile), x, w, None, None, 1.0, splits, false);
            (epilogue(y, low, bias, s_main), t)
        }
        // Not chosen for codes, which would need an f32 copy of W for CubeCL's matmul.
        (Schedule::Epilogue | Schedule::EpilogueWhole, w) => {
            let tiled = OnePass::Tiled(Tile::for_rows(m, settings));
            one_pass(tiled, x, w, low, bias, s_main, 1, true)
        }
    }
}

/// `X·Wᵀ` in `splits` slices of k as one batched product of CubeCL's: `[splits, m, n]`,
/// slice `s` the product over `k` in `[s·kc, (s + 1)·kc)`. Both operands are reshaped
/// and permuted views of their tensors (no copy of W is made here).
fn split_product(x: &Strided, w: &Strided, splits: usize) -> CubeTensor {
    let (m, k, n) = (x.rows, x.cols, w.rows);
    let kc = k / splits;
    // X [m, k] as [m, s, kc], or its transpose [k, m] as [s, kc, m]; then [s, m, kc].
    let lhs = if x.transposed {
        view::<CubeBackend>(x.tensor(), [splits, kc, m], [0, 2, 1])
    } else {
        view::<CubeBackend>(x.tensor(), [m, splits, kc], [1, 0, 2])
    };
    // Wᵀ [k, n] as [s, kc, n]: W [n, k] read through its strides, or the transposed
    // view's tensor, which is [k, n] already.
    let rhs = if w.transposed {
        view::<CubeBackend>(w.tensor(), [splits, kc, n], [0, 1, 2])
    } else {
        view::<CubeBackend>(w.tensor(), [n, splits, kc], [1, 2, 0])
    };
    into_contiguous(reference::scaled_matmul::<CubeBackend>(
        lhs, rhs, false, false, 1.0,
    ))
}

/// `t` reshaped to `shape`, then its axes permuted (both views of a contiguous tensor).
fn view<B: Backend>(t: FloatTensor<B>, shape: [usize; 3], axes: [usize; 3]) -> FloatTensor<B> {
    B::float_permute(B::float_reshape(t, shape.into()), &axes)
}
