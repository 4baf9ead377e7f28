//! `out = s_main·(X·Wᵀ) + bias + s_low·T·Fᵀ`, which every LoRA product over the base
//! weight (the forward and the input gradient) goes through, by one of three schedules
//! (`shaders::Schedule`): `shaders/lora_rows.wgsl` for up to 8 rows (64 over codes),
//! `shaders/lora_matmul.wgsl` (tiled) for more rows over codes, and CubeCL's matmul (split
//! over k for long products with few outputs) followed by `shaders/lora_epilogue.wgsl` for
//! more rows over an f32 base; where two are close (`tune`: the tiled kernel is a rival of
//! the epilogue schedule, and over slices of k of a split product, over either base),
//! natively, the fastest as timed on the device the first time a shape is seen. Operands
//! are strided views (a transpose is a swap of strides), the integer parameters go in
//! CubeCL's per-launch uniform (every other binding of the shaders is a read_write storage
//! array), and bindings a launch does not use get one-element placeholders, made once per
//! device.

use burn::backend::tensor::FloatTensor;
use burn::backend::wgpu::{
    CubeBackend, CubeTensor, KernelSource, SourceKernel, SourceTemplate, into_contiguous,
};
use burn::backend::{Backend, DType};
use burn::tensor::Slice;
use burn_cubecl::cubecl::ir::attributes::BufferIOAttr;
use burn_cubecl::cubecl::prelude::KernelId;
use burn_cubecl::cubecl::server::{KernelArguments, MetadataBindingInfo};
use burn_cubecl::cubecl::{CubeCount, CubeDim, future};

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use burn_cubecl::CubeDevice;

use super::tune;
use crate::reference;
use crate::shaders::{self, Schedule, Tile};

/// A row-major 2-D tensor seen as `op(t)`, op a transpose where asked: `rows × cols` with
/// element `(i, j)` at `i·row_stride + j·col_stride`.
#[derive(Clone)]
pub struct Strided {
    tensor: CubeTensor,
    transposed: bool,
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl Strided {
    pub fn of(tensor: CubeTensor, transposed: bool) -> Self {
        let tensor = into_contiguous(tensor);
        let [d0, d1] = [tensor.meta.shape()[0], tensor.meta.shape()[1]];
        let (rows, cols, row_stride, col_stride) = if transposed {
            (d1, d0, 1, d1)
        } else {
            (d0, d1, d1, 1)
        };
        Self {
            tensor,
            transposed,
            rows,
            cols,
            row_stride,
            col_stride,
        }
    }

    /// The contiguous tensor under the view.
    pub fn tensor(&self) -> CubeTensor {
        self.tensor.clone()
    }
}

/// The `W [n, k]` operand: f32 values through strides, or packed codes (row-major, see
/// `crate::quant`) with their block scales and minimums.
#[derive(Clone)]
pub enum Weight {
    F32(Strided),
    Quantized {
        quants: CubeTensor,
        scales: CubeTensor,
        mins: CubeTensor,
        bits: u32,
    },
}

impl Weight {
    /// n, the outputs: W's rows.
    fn outputs(&self) -> usize {
        match self {
            Self::F32(w) => w.rows,
            Self::Quantized { scales, .. } => scales.meta.shape()[0],
        }
    }

    /// 32 for f32 values, else the code width.
    fn bits(&self) -> u32 {
        match self {
            Self::F32(_) => 32,
            Self::Quantized { bits, .. } => *bits,
        }
    }
}

/// The low-rank term `s·T·Fᵀ` with `T = X·Aᵀ [m, r]`, `a` seen as `[r, k]` and `f` as
/// `[n, r]` (the forward's `x·Aᵀ` and B; the input gradient's `g·B` and Aᵀ). The one-pass
/// kernels (tiled, and rows) compute `T` in the same pass over X where they can
/// (`shaders::projected_ranks`, `shaders::rows_projected_ranks`), the epilogue schedule by
/// a launch of CubeCL's matmul before its own; [`matmul`] returns it either way, for the
/// gradients that need it.
#[derive(Clone)]
pub struct LowRank {
    pub a: Strided,
    pub f: Strided,
    pub scaling: f32,
}

/// A low-rank term whose `T` is at hand.
struct Resolved {
    t: CubeTensor,
    f: Strided,
    scaling: f32,
}

/// `low` with its `T = X·Aᵀ` computed by CubeCL's matmul, and that `T`.
fn resolve(low: Option<LowRank>, x: &Strided) -> (Option<Resolved>, Option<CubeTensor>) {
    let Some(LowRank { a, f, scaling }) = low else {
        return (None, None);
    };
    // `op(a)ᵀ` as CubeCL sees it: the view's transpose is the tensor's, undone.
    let t = reference::scaled_matmul::<CubeBackend>(
        x.tensor(),
        a.tensor,
        x.transposed,
        !a.transposed,
        1.0,
    );
    let t = into_contiguous(t);
    (
        Some(Resolved {
            t: t.clone(),
            f,
            scaling,
        }),
        Some(t),
    )
}

/// A kernel that computes the whole product in one launch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum OnePass {
    /// `lora_matmul.wgsl` with this tile, for any number of rows.
    Tiled(Tile),
    /// `lora_rows.wgsl` for blocks of this many rows.
    Rows(usize),
}

/// One of them for one weight encoding and ranks of `T` computed in it (each its own
/// pipeline).
struct LoraMatmul {
    bits: u32,
    pass: OnePass,
    projected: usize,
}

impl KernelSource for LoraMatmul {
    fn source(&self) -> SourceTemplate {
        SourceTemplate::new(match self.pass {
            OnePass::Tiled(tile) => shaders::lora_matmul(self.bits, tile, self.projected),
            OnePass::Rows(rows) => shaders::lora_rows(self.bits, rows, self.projected),
        })
    }

    fn id(&self) -> KernelId {
        KernelId::new::<Self>().info((self.bits, self.pass, self.projected))
    }

    fn lang(&self) -> &'static str {
        "wgsl"
    }
}

/// `lora_epilogue.wgsl` (one pipeline).
struct LoraEpilogue;

impl KernelSource for LoraEpilogue {
    fn source(&self) -> SourceTemplate {
        SourceTemplate::new(shaders::lora_epilogue())
    }

    fn id(&self) -> KernelId {
        KernelId::new::<Self>()
    }

    fn lang(&self) -> &'static str {
        "wgsl"
    }
}

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
    let rule = Schedule::choose(m, n, quantized);
    let split = shaders::split_k(m, n, k) > 1;
    // Whether `lora_rows.wgsl` could compute `T` itself (a rival of taking it apart).
    let inside = product
        .low
        .as_ref()
        .is_some_and(|low| shaders::rows_projected_ranks(low.a.rows, product.w.bits()).is_some());
    let rivals = tune::rivals(rule, m, quantized, split, inside);
    let schedule = match rivals.filter(|_| tune::enabled()) {
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
            let call = |schedule| drop(run(schedule, product.clone()));
            tune::choose(&product.x.tensor.device, key, rivals, sync, call)
        }
        None => rule,
    };
    run(schedule, product)
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
fn run(schedule: Schedule, product: Product) -> (CubeTensor, Option<CubeTensor>) {
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
                Schedule::Epilogue => shaders::split_k(m, w.rows, x.cols),
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
            let splits = shaders::split_k(m, w.outputs(), x.cols);
            if splits == 1 {
                return one_pass(OnePass::Tiled(tile), x, w, low, bias, s_main, 1, true);
            }
            let (low, t) = resolve(low, &x);
            let (y, _) = one_pass(OnePass::Tiled(tile), x, w, None, None, 1.0, splits, false);
            (epilogue(y, low, bias, s_main), t)
        }
        // Not chosen for codes, which would need an f32 copy of W for CubeCL's matmul.
        (Schedule::Epilogue | Schedule::EpilogueWhole, w) => {
            let tiled = OnePass::Tiled(Tile::for_rows(m));
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

/// `y[0]` of `y [s, m, n]` as `[m, n]`: a view of the same buffer where its alignment allows.
fn first_slice<B: Backend>(y: FloatTensor<B>, m: usize, n: usize) -> FloatTensor<B> {
    let first = B::float_slice(y, &[Slice::from(0..1), Slice::from(..), Slice::from(..)]);
    B::float_reshape(first, [m, n].into())
}

/// The bindings a launch may leave unused, each with its own placeholder: one dispatch
/// may not bind one writable range twice.
#[derive(Clone, Copy)]
enum Unused {
    Scales,
    Mins,
    T,
    F,
    Bias,
}

/// A one-element f32 tensor for a binding a launch does not use, made once per device and
/// binding (on a launch-bound GPU a fresh upload per launch is host time worth saving).
/// The kernels never read or write it: their parameters say the binding is unused.
fn placeholder(like: &CubeTensor, slot: Unused) -> CubeTensor {
    type Slots = [CubeTensor; 5];
    static MADE: LazyLock<Mutex<HashMap<CubeDevice, Slots>>> = LazyLock::new(Default::default);
    let mut made = MADE.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let slots = made.entry(like.device.clone()).or_insert_with(|| {
        let client = &like.client;
        std::array::from_fn(|_| {
            CubeTensor::new_contiguous(
                client.clone(),
                like.device.clone(),
                [1].into(),
                client.create_from_slice(bytemuck::cast_slice(&[0f32])),
                DType::F32,
            )
        })
    });
    slots[slot as usize].clone()
}

/// The storage bindings in order, each read_write, then the integer parameters as CubeCL's
/// per-launch uniform (bound after the buffers; cached by value, so a repeated shape uploads
/// nothing), padded to the shaders' [`shaders::PARAM_WORDS`] words.
pub(super) fn arguments(tensors: &[&CubeTensor], params: &[usize]) -> KernelArguments {
    assert!(
        params.len() <= shaders::PARAM_WORDS,
        "{} parameters for a uniform of {}",
        params.len(),
        shaders::PARAM_WORDS
    );
    let mut words = [0u32; shaders::PARAM_WORDS];
    for (word, &value) in words.iter_mut().zip(params) {
        *word = value as u32;
    }
    // Two 32-bit words per 64-bit info word, the first in the low half (little-endian).
    let info = words
        .chunks(2)
        .map(|pair| u64::from(pair[0]) | (u64::from(pair[1]) << 32))
        .collect();
    tensors
        .iter()
        .fold(KernelArguments::new(), |args, t| {
            args.with_buffer_io(t.handle.clone().binding(), BufferIOAttr::ReadWrite)
        })
        .with_info(MetadataBindingInfo::custom(info))
}

/// `y ← s_main·y + bias + low` in place over `y [m, n]`, by `lora_epilogue.wgsl`; over
/// the partial products `y [s, m, n]` of a split product, `s_main·Σ y[i] + bias + low` in
/// place of `y[0]`, which is returned. `y` is the fresh output of CubeCL's matmul, so no
/// other tensor shares its buffer.
fn epilogue(
    y: CubeTensor,
    low: Option<Resolved>,
    bias: Option<CubeTensor>,
    s_main: f32,
) -> CubeTensor {
    let y = into_contiguous(y);
    let dims = y.meta.shape().to_vec();
    let (splits, m, n) = match dims[..] {
        [m, n] => (1, m, n),
        [s, m, n] => (s, m, n),
        _ => unreachable!("the epilogue takes a product or its slices, not {dims:?}"),
    };
    let (r, s_low, f_strides, t, f) = low_rank_parts(low, &y);
    let has_bias = bias.is_some();
    let bias = bias
        .map(into_contiguous)
        .unwrap_or_else(|| placeholder(&y, Unused::Bias));
    let params = [
        m,
        n,
        r,
        s_main.to_bits() as usize,
        s_low.to_bits() as usize,
        f_strides[0],
        f_strides[1],
        has_bias as usize,
        splits,
    ];
    let client = y.client.clone();
    client.launch(
        Box::new(SourceKernel::new(LoraEpilogue, CubeDim::new_1d(256))),
        // 16 rows by 64 columns per workgroup (`TM`, `WN`·`CN` in the shader).
        CubeCount::Static(n.div_ceil(64) as u32, m.div_ceil(16) as u32, 1),
        arguments(&[&y, &t, &f, &bias], &params),
    );
    if splits == 1 {
        return y;
    }
    first_slice::<CubeBackend>(y, m, n)
}

/// `(r, s_low, F's strides, T, F)` of the low-rank term, placeholders without one.
fn low_rank_parts(
    low: Option<Resolved>,
    like: &CubeTensor,
) -> (usize, f32, [usize; 2], CubeTensor, CubeTensor) {
    match low {
        Some(low) => (
            low.t.meta.shape()[1],
            low.scaling,
            [low.f.row_stride, low.f.col_stride],
            into_contiguous(low.t),
            low.f.tensor,
        ),
        None => (
            0,
            0.0,
            [0, 0],
            placeholder(like, Unused::T),
            placeholder(like, Unused::F),
        ),
    }
}

/// `lora_matmul.wgsl` (tiled) or `lora_rows.wgsl`: the whole product in one launch, and
/// `T` (the kernel computing it in the same pass, `inside`, where `shaders::projected_ranks`
/// or `shaders::rows_projected_ranks` allows, else CubeCL's matmul before it); or, tiled over
/// `slices` > 1 slices of k (dividing it), their partial products `[s, m, n]` (`low` and
/// `bias` then `None`, for the epilogue to add).
#[allow(clippy::too_many_arguments)]
fn one_pass(
    pass: OnePass,
    x: Strided,
    w: Weight,
    low: Option<LowRank>,
    bias: Option<CubeTensor>,
    s_main: f32,
    slices: usize,
    inside: bool,
) -> (CubeTensor, Option<CubeTensor>) {
    let (m, k) = (x.rows, x.cols);
    let like = x.tensor.clone();
    let n = w.outputs();
    let bits = w.bits();
    // A and the ranks of `T` the kernel computes, with `T`'s fresh tensor; else `T` at hand.
    let projection = match (&pass, &low) {
        _ if !inside => None,
        (OnePass::Tiled(tile), Some(LowRank { a, .. })) if slices == 1 => {
            shaders::projected_ranks(a.rows, bits, *tile).map(|ranks| (a.clone(), ranks))
        }
        (OnePass::Rows(_), Some(LowRank { a, .. })) => {
            shaders::rows_projected_ranks(a.rows, bits).map(|ranks| (a.clone(), ranks))
        }
        _ => None,
    };
    let (low, t_made, a, projected) = match (projection, low) {
        (Some((a, ranks)), Some(low)) => {
            let r = a.rows;
            let t = CubeTensor::new_contiguous(
                like.client.clone(),
                like.device.clone(),
                [m, r].into(),
                like.client.empty(m * r * 4),
                DType::F32,
            );
            let low = Resolved {
                t: t.clone(),
                f: low.f,
                scaling: low.scaling,
            };
            (Some(low), Some(t), Some(a), ranks)
        }
        (_, low) => {
            let (low, t) = resolve(low, &x);
            (low, t, None, 0)
        }
    };
    let (w_strides, [wq, scales, mins]) = match w {
        Weight::F32(w) => (
            [w.row_stride, w.col_stride],
            [
                w.tensor,
                placeholder(&like, Unused::Scales),
                placeholder(&like, Unused::Mins),
            ],
        ),
        Weight::Quantized {
            quants,
            scales,
            mins,
            ..
        } => {
            let [quants, scales, mins] = [quants, scales, mins].map(into_contiguous);
            ([0, 0], [quants, scales, mins])
        }
    };
    // A in the binding W's codes leave free (the projected ranks allow no other).
    let (a_strides, scales, mins) = match a {
        Some(a) if bits == 8 => ([a.row_stride, a.col_stride], scales, a.tensor),
        Some(a) => ([a.row_stride, a.col_stride], a.tensor, mins),
        None => ([0, 0], scales, mins),
    };
    let (r, s_low, f_strides, t, f) = low_rank_parts(low, &like);
    let has_bias = bias.is_some();
    let bias = bias
        .map(into_contiguous)
        .unwrap_or_else(|| placeholder(&like, Unused::Bias));
    let client = like.client.clone();
    let shape = if slices > 1 {
        vec![slices, m, n]
    } else {
        vec![m, n]
    };
    let out = CubeTensor::new_contiguous(
        client.clone(),
        like.device.clone(),
        shape.into(),
        client.empty(slices * m * n * 4),
        DType::F32,
    );
    let params = [
        m,
        n,
        k,
        r,
        s_main.to_bits() as usize,
        s_low.to_bits() as usize,
        x.row_stride,
        x.col_stride,
        w_strides[0],
        w_strides[1],
        f_strides[0],
        f_strides[1],
        has_bias as usize,
        if slices > 1 { k / slices } else { 0 },
        a_strides[0],
        a_strides[1],
    ];
    let args = arguments(
        &[&x.tensor, &wq, &scales, &mins, &t, &f, &bias, &out],
        &params,
    );
    let (threads, count) = match pass {
        OnePass::Tiled(tile) => {
            let (tm, tn) = tile.size();
            let (wm, wn) = tile.threads();
            (wm * wn, (n.div_ceil(tn), m.div_ceil(tm)))
        }
        // Eight columns of 32 threads each (`COLS`, `LANES` in the shader), a block of
        // rows for each workgroup row.
        OnePass::Rows(rows) => (256, (n.div_ceil(8), m.div_ceil(rows))),
    };
    client.launch(
        Box::new(SourceKernel::new(
            LoraMatmul {
                bits,
                pass,
                projected,
            },
            CubeDim::new_1d(threads as u32),
        )),
        CubeCount::Static(count.0 as u32, count.1 as u32, slices as u32),
        args,
    );
    (out, t_made)
}
