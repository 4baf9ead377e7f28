//! Base weights kept quantized on the device, for `shaders/lora_forward_quantized.wgsl`.
//!
//! GGUF's Q8_0, Q4_0 and Q4_1 blocks (32 values of a row each) are repacked once, on the
//! host, into three flat arrays the kernel reads with aligned 32-bit loads (GGUF blocks of
//! 18, 20 or 34 bytes are not 4-byte aligned):
//! - `quants [n, k·bits/32]` (u32): 8-bit codes four to a word, 4-bit codes eight to a
//!   word, in element order, lowest bits first;
//! - `scales [n, k/32]` (f32): the block scale `d`;
//! - `mins [n, k/32]` (f32), 4-bit only: the block offset, `m` for Q4_1 and `-8·d` for Q4_0,
//!   so both 4-bit formats read `w = q·d + min`. 8-bit codes are signed: `w = q·d`.
//!
//! Per 32 values that is 36 bytes for Q8_0 (28% of f32) and 24 bytes for Q4_0/Q4_1 (19%).
//!
//! F16 weights (`--weights f16`) are held the same way: `quants` holds two IEEE half floats
//! to a word, in element order, lowest half first, and each block's scale is 1. That is 68
//! bytes per 32 values (53% of f32); the unit scales (6% of it) keep one layout, one shape
//! rule and one kernel signature for every format.

use burn::tensor::{DType, Device, Int, Tensor, TensorData};
use formats::dequant::GgmlType;
use formats::gguf::gather_rows;
use half::f16;

/// The block formats the quantized kernel reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuantFormat {
    Q8_0,
    Q4_0,
    Q4_1,
    /// IEEE half floats, kept as they are (never a GGUF file's default: see
    /// [`QuantFormat::from_ggml`]).
    F16,
}

impl QuantFormat {
    /// The block format a GGUF file's tensor type is kept in by default: Q8_0, Q4_0 and
    /// Q4_1. F16 tensors are widened to f32 unless F16 codes are asked for.
    pub fn from_ggml(ty: GgmlType) -> Option<Self> {
        match ty {
            GgmlType::Q8_0 => Some(Self::Q8_0),
            GgmlType::Q4_0 => Some(Self::Q4_0),
            GgmlType::Q4_1 => Some(Self::Q4_1),
            _ => None,
        }
    }

    pub fn ggml(self) -> GgmlType {
        match self {
            Self::Q8_0 => GgmlType::Q8_0,
            Self::Q4_0 => GgmlType::Q4_0,
            Self::Q4_1 => GgmlType::Q4_1,
            Self::F16 => GgmlType::F16,
        }
    }

    /// Bits per code.
    pub fn bits(self) -> u32 {
        match self {
            Self::F16 => 16,
            Self::Q8_0 => 8,
            Self::Q4_0 | Self::Q4_1 => 4,
        }
    }

    /// Bytes of one GGUF block of 32 values.
    fn block_bytes(self) -> usize {
        match self {
            Self::Q8_0 => 34,
            Self::Q4_0 => 18,
            Self::Q4_1 => 20,
            Self::F16 => 64,
        }
    }
}

/// Why a weight could not be packed. The caller adds the tensor's name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantError {
    #[error("type {0} has no quantized kernel (supported: Q8_0, Q4_0, Q4_1, F16)")]
    Unsupported(GgmlType),
    #[error("rows of {k} values are not a whole number of 32-value blocks")]
    PartialBlock { k: usize },
    #[error("a [{n}, {k}] {format:?} weight needs {expected} bytes, got {actual}")]
    Length {
        format: QuantFormat,
        n: usize,
        k: usize,
        expected: usize,
        actual: usize,
    },
}

/// A weight `[n, k]` repacked on the host for the quantized kernel.
#[derive(Debug, Clone)]
pub struct PackedWeight {
    pub format: QuantFormat,
    pub n: usize,
    pub k: usize,
    pub quants: Vec<u32>,
    pub scales: Vec<f32>,
    /// Empty for 8-bit codes.
    pub mins: Vec<f32>,
}

impl PackedWeight {
    /// Repacks the GGUF blocks of a `[n, k]` weight (`n` rows of `k` values, as GGUF stores
    /// a linear layer's `[out, in]` weight).
    pub fn from_gguf(ty: GgmlType, bytes: &[u8], n: usize, k: usize) -> Result<Self, QuantError> {
        let format = match ty {
            GgmlType::F16 => QuantFormat::F16,
            _ => QuantFormat::from_ggml(ty).ok_or(QuantError::Unsupported(ty))?,
        };
        if k % 32 != 0 {
            return Err(QuantError::PartialBlock { k });
        }
        let blocks = n * k / 32;
        let expected = blocks * format.block_bytes();
        if bytes.len() != expected {
            return Err(QuantError::Length {
                format,
                n,
                k,
                expected,
                actual: bytes.len(),
            });
        }
        let words_per_block = format.bits() as usize;
        let mut packed = Self {
            format,
            n,
            k,
            quants: Vec::with_capacity(blocks * words_per_block),
            scales: Vec::with_capacity(blocks),
            mins: Vec::with_capacity(if format.bits() == 4 { blocks } else { 0 }),
        };
        for block in bytes.chunks_exact(format.block_bytes()) {
            let half_at = |at: usize| f16::from_le_bytes([block[at], block[at + 1]]).to_f32();
            match format {
                QuantFormat::F16 => {
                    packed.scales.push(1.0);
                    packed.quants.extend(le_words(block));
                }
                QuantFormat::Q8_0 => {
                    packed.scales.push(half_at(0));
                    packed.quants.extend(le_words(&block[2..34]));
                }
                QuantFormat::Q4_0 | QuantFormat::Q4_1 => {
                    let d = half_at(0);
                    packed.scales.push(d);
                    let (min, qs) = match format {
                        QuantFormat::Q4_0 => (-8.0 * d, &block[2..18]),
                        _ => (half_at(2), &block[4..20]),
                    };
                    packed.mins.push(min);
                    // GGUF keeps element j in the low nibble of qs[j] and element j + 16 in
                    // its high nibble; the kernel wants element order.
                    let code = |e: usize| {
                        let byte = qs[e % 16] as u32;
                        if e < 16 { byte & 0x0F } else { byte >> 4 }
                    };
                    packed.quants.extend(
                        (0..4)
                            .map(|w| (0..8).fold(0u32, |acc, e| acc | code(8 * w + e) << (4 * e))),
                    );
                }
            }
        }
        Ok(packed)
    }

    /// Reorders the rows (row `i` of the result is row `order[i]`), as the GGUF loader does
    /// for llama's permuted Q and K rows; each row holds whole blocks, so codes move as is.
    pub fn permute_rows(&mut self, order: &[usize]) {
        let blocks = self.k / 32;
        self.quants = gather_rows(&self.quants, self.quants.len() / self.n.max(1), order);
        self.scales = gather_rows(&self.scales, blocks, order);
        if !self.mins.is_empty() {
            self.mins = gather_rows(&self.mins, blocks, order);
        }
    }

    /// Bytes the packed weight takes on the device.
    pub fn device_bytes(&self) -> usize {
        4 * (self.quants.len() + self.scales.len() + self.mins.len())
    }
}

/// Bytes as the little-endian words the kernel reads: Q8_0's codes, four to a word, and
/// F16's halves, element 2i in the low half.
fn le_words(bytes: &[u8]) -> impl Iterator<Item = u32> + '_ {
    bytes
        .chunks_exact(4)
        .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
}

/// Quantizes `[n, k]` f32 values into GGUF blocks of `format`, as ggml's reference
/// quantizers (`quantize_row_*_ref`) do (F16: each value rounded to the nearest half, as
/// GGUF's F16 tensors hold it); for tests, benchmarks and quantizing at load time.
pub fn quantize_gguf(format: QuantFormat, values: &[f32]) -> Vec<u8> {
    if format == QuantFormat::F16 {
        return values
            .iter()
            .flat_map(|&v| f16::from_f32(v).to_le_bytes())
            .collect();
    }
    let mut out = Vec::with_capacity(values.len() / 32 * format.block_bytes());
    for x in values.chunks(32) {
        let mut x = x.to_vec();
        x.resize(32, 0.0);
        match format {
            QuantFormat::Q8_0 => {
                let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
                let d = amax / 127.0;
                let id = if d != 0.0 { 1.0 / d } else { 0.0 };
                out.extend(f16::from_f32(d).to_le_bytes());
                out.extend(x.iter().map(|v| (v * id).round() as i8 as u8));
            }
            QuantFormat::Q4_0 => {
                let max = x
                    .iter()
                    .fold(0f32, |m, &v| if v.abs() > m.abs() { v } else { m });
                let d = max / -8.0;
                let id = if d != 0.0 { 1.0 / d } else { 0.0 };
                let q = |v: f32| ((v * id + 8.5) as i8).min(15) as u8;
                out.extend(f16::from_f32(d).to_le_bytes());
                out.extend((0..16).map(|j| q(x[j]) | q(x[j + 16]) << 4));
            }
            QuantFormat::Q4_1 => {
                let min = x.iter().copied().fold(f32::INFINITY, f32::min);
                let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let d = (max - min) / 15.0;
                let id = if d != 0.0 { 1.0 / d } else { 0.0 };
                let q = |v: f32| (((v - min) * id + 0.5) as i8).min(15) as u8;
                out.extend(f16::from_f32(d).to_le_bytes());
                out.extend(f16::from_f32(min).to_le_bytes());
                out.extend((0..16).map(|j| q(x[j]) | q(x[j + 16]) << 4));
            }
            QuantFormat::F16 => unreachable!("F16 is written above"),
        }
    }
    out
}

/// A packed weight on a device: what [`crate::lora_linear_quantized`] takes.
#[derive(Debug, Clone)]
pub struct QuantizedLinear {
    pub format: QuantFormat,
    /// `[n, k·bits/32]`, 32-bit words as i32 (Burn has no u32 tensors on every backend).
    pub quants: Tensor<2, Int>,
    /// `[n, k/32]`.
    pub scales: Tensor<2>,
    /// `[n, k/32]` for 4-bit codes; `[1, 1]` of zero for 8-bit codes (the kernel binds it).
    pub mins: Tensor<2>,
    pub n: usize,
    pub k: usize,
}

impl QuantizedLinear {
    pub fn new(packed: &PackedWeight, device: &Device) -> Self {
        let (n, k) = (packed.n, packed.k);
        let words: Vec<i32> = packed.quants.iter().map(|&w| w as i32).collect();
        let width = words.len() / n.max(1);
        let quants = Tensor::from_data(TensorData::new(words, [n, width]), (device, DType::I32));
        let scales = Tensor::from_data(TensorData::new(packed.scales.clone(), [n, k / 32]), device);
        let mins = if packed.mins.is_empty() {
            Tensor::zeros([1, 1], device)
        } else {
            Tensor::from_data(TensorData::new(packed.mins.clone(), [n, k / 32]), device)
        };
        Self {
            format: packed.format,
            quants,
            scales,
            mins,
            n,
            k,
        }
    }

    /// Rows `ids` of the weight in f32, `[ids.len(), k]`: an embedding lookup in a table
    /// kept quantized.
    pub fn rows(&self, ids: Tensor<1, Int>) -> Tensor<2> {
        let quants: Tensor<2, Int> = self.quants.clone().select(0, ids.clone());
        let scales = self.scales.clone().select(0, ids.clone());
        let mins = if self.format.bits() == 4 {
            self.mins.clone().select(0, ids)
        } else {
            self.mins.clone()
        };
        Tensor::from_dispatch(crate::reference::dequantize::<burn::backend::Dispatch>(
            quants.into_dispatch(),
            scales.into_dispatch(),
            mins.into_dispatch(),
            self.format.bits(),
        ))
    }

    /// `x·Wᵀ` for `x [m, k]`: the quantized op with no bias and no adapter.
    pub fn project(&self, x: Tensor<2>) -> Tensor<2> {
        let device = x.device();
        let a = Tensor::zeros([1, self.k], &device);
        let b = Tensor::zeros([self.n, 1], &device);
        let bias = Tensor::zeros([self.n], &device);
        crate::lora_linear_quantized(x, self, a, b, bias, 0.0)
    }

    /// The f32 weight `[n, k]`, dequantized with Burn ops (the kernels' reference).
    pub fn dequantize(&self) -> Tensor<2> {
        let quants: Tensor<2, Int> = self.quants.clone();
        Tensor::from_dispatch(crate::reference::dequantize::<burn::backend::Dispatch>(
            quants.into_dispatch(),
            self.scales.clone().into_dispatch(),
            self.mins.clone().into_dispatch(),
            self.format.bits(),
        ))
    }
}
