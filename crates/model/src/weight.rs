//! A weight matrix `[rows, cols]` however it is held: f32 on the device (trainable), GGUF
//! codes read by the quantized kernels, or f32 in row blocks that each fit the device's
//! largest buffer. One enum, so no caller reads a placeholder tensor by mistake: code that
//! needs the f32 tensor asks for it ([`Weight::dense`], [`Weight::to_f32`]).

use burn::module::{
    Content, Devices, Module, ModuleDisplay, ModuleDisplayDefault, ModuleMapper, ModuleVisitor,
    Param,
};
use burn::tensor::{Device, Int, Tensor, TensorData};
use kernels::QuantizedLinear;

use crate::ModelError;

#[derive(Module, Debug)]
pub enum Weight {
    /// f32 `[rows, cols]`: the only form that trains.
    Dense(Param<Tensor<2>>),
    /// GGUF codes on the device (a frozen base: inference, and LoRA over it).
    Quantized(Codes),
    /// f32 in row blocks (a vocabulary table over a browser's buffer limit; inference only).
    Rows(RowParts),
}

/// GGUF codes, as a module without parameters: frozen, never saved, and left on the device
/// they were loaded on.
#[derive(Clone, Debug)]
pub struct Codes(pub QuantizedLinear);

impl Weight {
    pub fn new(weight: Tensor<2>) -> Self {
        Weight::Dense(Param::from_tensor(weight))
    }

    /// `[rows, cols]` (`[out, in]` for a linear layer, `[vocab, hidden]` for a table).
    pub fn dims(&self) -> [usize; 2] {
        match self {
            Weight::Dense(w) => w.dims(),
            Weight::Quantized(Codes(q)) => [q.n, q.k],
            Weight::Rows(p) => [p.rows, p.cols],
        }
    }

    pub fn device(&self) -> Device {
        match self {
            Weight::Dense(w) => w.device(),
            Weight::Quantized(Codes(q)) => q.scales.device(),
            Weight::Rows(p) => p.parts[0].device(),
        }
    }

    /// The f32 tensor of a dense weight (with its gradient tracking), else `None`.
    pub fn dense(&self) -> Option<Tensor<2>> {
        match self {
            Weight::Dense(w) => Some(w.val()),
            _ => None,
        }
    }

    /// The parameter of a dense weight, for an optimizer to update.
    pub fn dense_mut(&mut self) -> Option<&mut Param<Tensor<2>>> {
        match self {
            Weight::Dense(w) => Some(w),
            _ => None,
        }
    }

    /// The codes of a quantized weight.
    pub fn quantized(&self) -> Option<&QuantizedLinear> {
        match self {
            Weight::Quantized(Codes(q)) => Some(q),
            _ => None,
        }
    }

    /// The blocks of a weight held in row blocks.
    pub fn row_parts(&self) -> Option<&RowParts> {
        match self {
            Weight::Rows(p) => Some(p),
            _ => None,
        }
    }

    /// The whole weight in f32: dequantized, or its blocks joined.
    pub fn to_f32(&self) -> Tensor<2> {
        match self {
            Weight::Dense(w) => w.val(),
            Weight::Quantized(Codes(q)) => q.dequantize(),
            Weight::Rows(p) => Tensor::cat(p.parts.clone(), 0),
        }
    }

    /// `x · weightᵀ` for `x: [n, cols]`, `[n, rows]`.
    pub fn project(&self, x: Tensor<2>) -> Tensor<2> {
        match self {
            Weight::Dense(w) => x.matmul(w.val().transpose()),
            Weight::Quantized(Codes(q)) => q.project(x),
            Weight::Rows(p) => p.project(x),
        }
    }

    /// The rows of `ids` (each below `rows`), `[ids.len(), cols]`: an embedding lookup.
    pub fn lookup(&self, ids: Vec<i64>) -> Tensor<2> {
        if let Weight::Rows(p) = self {
            return p.select(&ids);
        }
        let n = ids.len();
        let ids = Tensor::<1, Int>::from_data(TensorData::new(ids, [n]), &self.device());
        match self {
            Weight::Quantized(Codes(q)) => q.rows(ids),
            _ => self.to_f32().select(0, ids),
        }
    }
}

/// A module with no parameters: visits and maps nothing, and stays where it is.
macro_rules! frozen_module {
    ($type:ty, $what:literal) => {
        impl Module for $type {
            fn collect_devices(&self, devices: Devices) -> Devices {
                devices
            }
            fn fork(self, _: &Device) -> Self {
                self
            }
            fn to_device(self, _: &Device) -> Self {
                self
            }
            fn train(self) -> Self {
                self
            }
            fn valid(&self) -> Self {
                self.clone()
            }
            fn materialize(self) -> Self {
                self
            }
            fn visit<V: ModuleVisitor>(&self, _: &mut V) {}
            fn map<M: ModuleMapper>(self, _: &mut M) -> Self {
                self
            }
        }

        impl ModuleDisplayDefault for $type {
            fn content(&self, content: Content) -> Option<Content> {
                let [rows, cols] = self.shape();
                content
                    .add_formatted(&format!("{} [{rows}, {cols}]", $what))
                    .optional()
            }
        }

        impl ModuleDisplay for $type {}
    };
}

frozen_module!(Codes, "GGUF codes");
frozen_module!(RowParts, "f32 row blocks");

impl Codes {
    /// `[rows, cols]`.
    pub fn shape(&self) -> [usize; 2] {
        [self.0.n, self.0.k]
    }
}

#[derive(Clone, Debug)]
pub struct RowParts {
    /// `[rows_i, cols]` each; together the table's rows in order. Never empty: a table is
    /// split only when it is larger than the limit.
    pub parts: Vec<Tensor<2>>,
    pub rows: usize,
    pub cols: usize,
}

impl RowParts {
    /// `[rows, cols]`.
    pub fn shape(&self) -> [usize; 2] {
        [self.rows, self.cols]
    }

    /// Splits a row-major `[rows, cols]` table of f32 into blocks of at most `max_bytes`.
    /// `name` names the tensor in the error when not even one row fits.
    pub fn split(
        name: &str,
        values: Vec<f32>,
        [rows, cols]: [usize; 2],
        max_bytes: u64,
        device: &Device,
    ) -> Result<Self, ModelError> {
        let row_bytes = (cols as u64) * 4;
        let per_part = (max_bytes / row_bytes.max(1)) as usize;
        if per_part == 0 {
            return Err(ModelError::Input(format!(
                "{name}: one row of {cols} f32 values ({row_bytes} bytes) is larger than the \
                 device's largest buffer ({max_bytes} bytes)"
            )));
        }
        let parts = values
            .chunks(per_part * cols)
            .map(|block| {
                Tensor::from_data(
                    TensorData::new(block.to_vec(), [block.len() / cols.max(1), cols]),
                    device,
                )
            })
            .collect();
        Ok(Self { parts, rows, cols })
    }

    /// The rows at `ids` (each below `rows`), `[ids.len(), cols]`. Each part gathers the
    /// ids that fall in it (others read its row 0 and are zeroed by a mask); parts that
    /// hold none of the ids are skipped.
    pub fn select(&self, ids: &[i64]) -> Tensor<2> {
        let device = &self.parts[0].device();
        let n = ids.len();
        let mut out: Option<Tensor<2>> = None;
        let mut start = 0i64;
        for part in &self.parts {
            let len = part.dims()[0] as i64;
            let inside = |id: i64| id >= start && id < start + len;
            let hits = ids.iter().filter(|&&id| inside(id)).count();
            if hits > 0 {
                let local: Vec<i64> = ids
                    .iter()
                    .map(|&id| if inside(id) { id - start } else { 0 })
                    .collect();
                let local = Tensor::<1, Int>::from_data(TensorData::new(local, [n]), device);
                let mut rows = part.clone().select(0, local);
                if hits < n {
                    let mask: Vec<f32> = ids.iter().map(|&id| f32::from(inside(id))).collect();
                    rows = rows * Tensor::<2>::from_data(TensorData::new(mask, [n, 1]), device);
                }
                out = Some(match out {
                    Some(sum) => sum + rows,
                    None => rows,
                });
            }
            start += len;
        }
        out.unwrap_or_else(|| Tensor::zeros([n, self.cols], device))
    }

    /// `x · tableᵀ` for `x: [n, cols]`, `[n, rows]`: one product per part, joined.
    pub fn project(&self, x: Tensor<2>) -> Tensor<2> {
        let outs: Vec<Tensor<2>> = self
            .parts
            .iter()
            .map(|part| x.clone().matmul(part.clone().transpose()))
            .collect();
        Tensor::cat(outs, 1)
    }
}
