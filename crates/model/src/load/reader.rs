//! [`WeightReader`]: reads HF-named tensors from a safetensors or GGUF source, checking
//! each shape, undoing llama.cpp's Q/K row permutation, and keeping quantized or split
//! tables when the load options ask for it.

use std::path::PathBuf;

use burn::tensor::{Device, Tensor, TensorData};
use formats::TensorSource;
use formats::gguf::{GgufFile, gather_rows, llama_qk_row_order};
use kernels::{PackedWeight, QuantFormat, QuantizedLinear};

use super::gguf_name;
use crate::ModelError;
use crate::linear::Linear;
use crate::norm::RmsNorm;
use crate::vocab::{RowParts, VocabTable};

/// Reads HF-named tensors from a source, checking shapes.
pub struct WeightReader<'a> {
    source: &'a dyn TensorSource,
    device: &'a Device,
    rename: fn(&str) -> Option<String>,
    /// llama.cpp permutes the rows of Q and K in llama-architecture files (for its RoPE
    /// layout); this undoes it: `Some((q_heads, kv_heads))`.
    unpermute_qk: Option<(usize, usize)>,
    /// The GGUF file whose Q8_0/Q4_0/Q4_1 projections stay quantized, when asked.
    pub quantized: Option<&'a GgufFile>,
    /// Hold the projections, embedding table and LM head as codes of this format, made as
    /// they are read ([`super::LoadOptions::codes_at_load`]).
    pub codes_at_load: Option<QuantFormat>,
    /// See [`super::LoadOptions::max_tensor_bytes`].
    pub max_tensor_bytes: Option<u64>,
    /// See [`super::LoadOptions::progress`].
    pub progress: Option<super::BuildProgress<'a>>,
}

impl<'a> WeightReader<'a> {
    pub fn hf(source: &'a dyn TensorSource, device: &'a Device) -> Self {
        Self {
            source,
            device,
            rename: |n| Some(n.to_string()),
            unpermute_qk: None,
            quantized: None,
            codes_at_load: None,
            max_tensor_bytes: None,
            progress: None,
        }
    }

    pub fn gguf(
        source: &'a dyn TensorSource,
        device: &'a Device,
        unpermute_qk: Option<(usize, usize)>,
    ) -> Self {
        Self {
            source,
            device,
            rename: gguf_name,
            unpermute_qk,
            quantized: None,
            codes_at_load: None,
            max_tensor_bytes: None,
            progress: None,
        }
    }

    fn file_name(&self, hf: &str) -> String {
        (self.rename)(hf).unwrap_or_else(|| hf.to_string())
    }

    pub fn has(&self, hf: &str) -> bool {
        self.source.info(&self.file_name(hf)).is_some()
    }

    /// Tells the load's progress callback, if any, that `done` of `total` steps are built.
    pub fn built(&self, done: usize, total: usize) {
        if let Some(progress) = self.progress {
            (progress.0)(done, total);
        }
    }

    /// How many decoder layers the weights hold: `model.layers.0` up to the first index
    /// without an input norm.
    pub fn layers_present(&self) -> usize {
        (0..)
            .take_while(|i| self.has(&format!("model.layers.{i}.input_layernorm.weight")))
            .count()
    }

    /// The file (or label) the weights come from, for messages.
    pub fn origin(&self) -> String {
        self.source.origin()
    }

    pub(crate) fn read<const D: usize>(
        &self,
        hf: &str,
        shape: [usize; D],
    ) -> Result<Tensor<D>, ModelError> {
        let values = self.read_values(hf, shape)?;
        Ok(Tensor::from_data(
            TensorData::new(values, shape),
            self.device,
        ))
    }

    /// A `[vocab, hidden]` table: whole, or in row blocks when it is larger than
    /// `max_tensor_bytes`.
    pub(crate) fn read_table(&self, hf: &str, shape: [usize; 2]) -> Result<VocabTable, ModelError> {
        if let Some(table) = self.read_quantized(hf, shape[0], shape[1])? {
            let packed = 4
                * (table.quants.shape().num_elements() + table.scales.shape().num_elements())
                    as u64;
            if self.max_tensor_bytes.is_none_or(|max| packed <= max) {
                return Ok(VocabTable::quantized(table));
            }
        }
        let bytes = (shape[0] as u64) * (shape[1] as u64) * 4;
        match self.max_tensor_bytes {
            Some(max) if bytes > max => {
                let values = self.read_values(hf, shape)?;
                let name = self.file_name(hf);
                Ok(VocabTable::split(RowParts::split(
                    &name,
                    values,
                    shape,
                    max,
                    self.device,
                )?))
            }
            _ => Ok(VocabTable::new(self.read(hf, shape)?)),
        }
    }

    /// A tensor's f32 values in HF layout, checked against `shape`.
    fn read_values<const D: usize>(
        &self,
        hf: &str,
        shape: [usize; D],
    ) -> Result<Vec<f32>, ModelError> {
        let name = self.file_name(hf);
        if self.source.info(&name).is_none() {
            return Err(ModelError::MissingTensor {
                name,
                origin: self.source.origin(),
            });
        }
        let (mut values, actual) = self.source.read_f32(&name)?;
        // A 1-D tensor stored as [n, 1] or similar is not accepted: shapes must match exactly.
        if actual != shape {
            return Err(ModelError::Shape {
                name,
                origin: self.source.origin(),
                expected: shape.to_vec(),
                actual,
            });
        }
        if let Some(order) = self.row_order(hf, &name, shape[0])? {
            values = gather_rows(&values, values.len() / shape[0].max(1), &order);
        }
        Ok(values)
    }

    /// The HF order of the rows of llama's permuted Q and K (`None` for other tensors).
    fn row_order(
        &self,
        hf: &str,
        name: &str,
        rows: usize,
    ) -> Result<Option<Vec<usize>>, ModelError> {
        let Some((q_heads, kv_heads)) = self.unpermute_qk else {
            return Ok(None);
        };
        let heads = if hf.contains("self_attn.q_proj.") {
            q_heads
        } else if hf.contains("self_attn.k_proj.") {
            kv_heads
        } else {
            return Ok(None);
        };
        llama_qk_row_order(rows, heads)
            .map(Some)
            .ok_or_else(|| ModelError::Config {
                path: PathBuf::from(self.source.origin()),
                reason: format!("`{name}`: {rows} rows do not split into {heads} heads"),
            })
    }

    /// The weight `[out_f, in_f]` kept as codes, if asked for and its type has a kernel.
    fn read_quantized(
        &self,
        hf: &str,
        out_f: usize,
        in_f: usize,
    ) -> Result<Option<QuantizedLinear>, ModelError> {
        let Some(gguf) = self.quantized else {
            return self.quantize_at_load(hf, out_f, in_f);
        };
        let name = self.file_name(hf);
        let raw = gguf.read_raw(&name)?;
        if QuantFormat::from_ggml(raw.ggml_type).is_none() {
            // F16, BF16 or F32 in the file: codes only when asked for (`--weights f16`).
            return self.quantize_at_load(hf, out_f, in_f);
        }
        if raw.shape() != [out_f, in_f] {
            return Err(ModelError::Shape {
                name,
                origin: self.source.origin(),
                expected: vec![out_f, in_f],
                actual: raw.shape(),
            });
        }
        let mut packed =
            PackedWeight::from_gguf(raw.ggml_type, raw.bytes, out_f, in_f).map_err(|e| {
                ModelError::Config {
                    path: PathBuf::from(self.source.origin()),
                    reason: format!("`{name}`: {e}"),
                }
            })?;
        if let Some(order) = self.row_order(hf, &name, out_f)? {
            packed.permute_rows(&order);
        }
        Ok(Some(QuantizedLinear::new(&packed, self.device)))
    }

    /// The weight `[out_f, in_f]` as codes of [`WeightReader::codes_at_load`] (Q8_0, or
    /// F16), made from its f32 values, when asked and its rows are whole 32-value blocks
    /// (else it stays f32). One tensor's f32 copy is held at a time, so a model in f16 files
    /// loads within about its codes' size plus its largest tensor. F16 codes of f16 files
    /// are their values exactly; a value outside f16's range is refused.
    fn quantize_at_load(
        &self,
        hf: &str,
        out_f: usize,
        in_f: usize,
    ) -> Result<Option<QuantizedLinear>, ModelError> {
        let Some(format) = self.codes_at_load.filter(|_| in_f % 32 == 0) else {
            return Ok(None);
        };
        let values = self.read_values(hf, [out_f, in_f])?;
        if format == QuantFormat::F16
            && let Some((at, v)) = values
                .iter()
                .enumerate()
                .find(|(_, v)| v.is_finite() && v.abs() > half::f16::MAX.to_f32())
        {
            return Err(ModelError::Config {
                path: PathBuf::from(self.source.origin()),
                reason: format!(
                    "`{}`: value {v} (at {at}) is outside f16's range (±65504); load it with \
                     --weights q8 or f32",
                    self.file_name(hf)
                ),
            });
        }
        let bytes = kernels::quant::quantize_gguf(format, &values);
        drop(values);
        let packed = PackedWeight::from_gguf(format.ggml(), &bytes, out_f, in_f).map_err(|e| {
            ModelError::Config {
                path: PathBuf::from(self.source.origin()),
                reason: format!("`{}`: {e}", self.file_name(hf)),
            }
        })?;
        Ok(Some(QuantizedLinear::new(&packed, self.device)))
    }

    pub(crate) fn linear(
        &self,
        prefix: &str,
        in_f: usize,
        out_f: usize,
        bias: bool,
    ) -> Result<Linear, ModelError> {
        let bias = if bias {
            Some(self.read(&format!("{prefix}.bias"), [out_f])?)
        } else {
            None
        };
        let hf = format!("{prefix}.weight");
        if let Some(weight) = self.read_quantized(&hf, out_f, in_f)? {
            return Ok(Linear::quantized(weight, bias));
        }
        Ok(Linear::new(self.read(&hf, [out_f, in_f])?, bias))
    }

    pub(crate) fn norm(&self, name: &str, size: usize, eps: f64) -> Result<RmsNorm, ModelError> {
        Ok(RmsNorm::new(self.read(name, [size])?, eps))
    }
}
