//! Building a [`CausalLm`] from weights on disk: a HF folder (`config.json`, safetensors,
//! `tokenizer.json`) or a GGUF file. Module field names are HF tensor names, so the HF path
//! needs no renaming; the one renaming table (GGUF) lives in [`gguf_name`].

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor, TensorData};
use formats::gguf::{GgufFile, gather_rows, llama_qk_row_order};
use formats::gguf_tokenizer::tokenizer_from_gguf;
use formats::safetensors::SafetensorsSource;
use formats::tokenizer::TextTokenizer;
use formats::{Folder, TensorSource};
use kernels::{PackedWeight, QuantFormat, QuantizedLinear};

use crate::ModelError;
use crate::attention::Attention;
use crate::block::Block;
use crate::config::{ModelConfig, ModelType, TokenIds};
use crate::decoder::Decoder;
use crate::heads::lm::CausalLm;
use crate::linear::Linear;
use crate::mlp::Mlp;
use crate::norm::RmsNorm;
use crate::vocab::{RowParts, VocabTable};

/// A model with the tokenizer that came with it (if the folder or file has one).
pub struct LoadedModel {
    pub model: CausalLm,
    pub tokenizer: Option<TextTokenizer>,
    pub origin: PathBuf,
}

/// How to load a model.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoadOptions {
    /// Keep a GGUF file's Q8_0, Q4_0 and Q4_1 projection weights as codes on the device,
    /// read by the quantized kernel, instead of converting them to f32 (19–28% of the f32
    /// memory); so too the embedding table and LM head when they are of those types and fit
    /// `max_tensor_bytes` (inference only). Other types and HF folders are loaded as f32.
    pub keep_quantized: bool,
    /// The largest tensor the device takes in one buffer, in bytes (a browser's WebGPU
    /// `maxStorageBufferBindingSize`). A larger embedding table or LM head is held in row
    /// blocks under it ([`crate::vocab::RowParts`]; inference only). `None`: no limit.
    pub max_tensor_bytes: Option<u64>,
}

/// Loads a HF model folder or a `.gguf` file onto `device`.
pub fn load_model(path: &Path, device: &Device) -> Result<LoadedModel, ModelError> {
    load_model_with(path, device, LoadOptions::default())
}

/// [`load_model`] with options.
pub fn load_model_with(
    path: &Path,
    device: &Device,
    options: LoadOptions,
) -> Result<LoadedModel, ModelError> {
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
    {
        return load_gguf_with(path, device, options);
    }
    if !path.is_dir() {
        return Err(ModelError::Format(formats::FormatError::io(
            path,
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "expected a HF model folder or a .gguf file",
            ),
        )));
    }
    load_hf(&Folder::disk(path), device, options)
}

/// Loads a HF model from a folder on disk or in memory: `config.json`, the safetensors
/// weights and, when present, `tokenizer.json`. `keep_quantized` applies to GGUF only.
pub fn load_hf(
    folder: &Folder,
    device: &Device,
    options: LoadOptions,
) -> Result<LoadedModel, ModelError> {
    let config = ModelConfig::from_folder(folder)?;
    let source = SafetensorsSource::open_in(folder)?;
    let mut reader = WeightReader::hf(&source, device);
    reader.max_tensor_bytes = options.max_tensor_bytes;
    let model = build(&config, &reader)?;
    let tokenizer = if folder.has("tokenizer.json") {
        let bytes = folder.open("tokenizer.json")?;
        let tok = TextTokenizer::from_bytes(&bytes, folder.path("tokenizer.json"))?
            .with_eos(&config.eos_ids());
        tok.check_vocab(config.vocab_size)?;
        Some(tok)
    } else {
        None
    };
    Ok(LoadedModel {
        model,
        tokenizer,
        origin: folder.root().to_path_buf(),
    })
}

/// Loads a GGUF file: weights, config and tokenizer all come from the file.
pub fn load_gguf(path: &Path, device: &Device) -> Result<LoadedModel, ModelError> {
    load_gguf_with(path, device, LoadOptions::default())
}

/// [`load_gguf`] with options.
pub fn load_gguf_with(
    path: &Path,
    device: &Device,
    options: LoadOptions,
) -> Result<LoadedModel, ModelError> {
    load_gguf_file(&GgufFile::open(path)?, device, options)
}

/// Loads an opened GGUF (from disk or, in the browser, from memory).
pub fn load_gguf_file(
    gguf: &GgufFile,
    device: &Device,
    options: LoadOptions,
) -> Result<LoadedModel, ModelError> {
    let path = gguf.path();
    let g = gguf.model_config()?;
    let model_type = match g.architecture.as_str() {
        "llama" => ModelType::Llama,
        "qwen2" => ModelType::Qwen2,
        other => {
            return Err(ModelError::UnknownModelType {
                path: path.to_path_buf(),
                model_type: other.to_string(),
            });
        }
    };
    let config = ModelConfig {
        model_type,
        vocab_size: g.vocab_size,
        hidden_size: g.hidden_size,
        intermediate_size: g.intermediate_size,
        num_hidden_layers: g.num_hidden_layers,
        num_attention_heads: g.num_attention_heads,
        num_key_value_heads: Some(g.num_key_value_heads),
        head_dim: Some(g.head_dim),
        rms_norm_eps: g.rms_norm_eps as f64,
        rope_theta: Some(g.rope_theta as f64),
        rope_parameters: None,
        rope_scaling: None,
        max_position_embeddings: g.max_position_embeddings,
        tie_word_embeddings: g.tie_word_embeddings,
        attention_bias: false,
        hidden_act: "silu".into(),
        bos_token_id: g.bos_token_id,
        eos_token_id: g.eos_token_id.map(TokenIds::One),
    };
    config.validate().map_err(|reason| ModelError::Config {
        path: path.to_path_buf(),
        reason,
    })?;
    let unpermute = g
        .qk_permuted
        .then_some((config.num_attention_heads, config.kv_heads()));
    let mut reader = WeightReader::gguf(gguf, device, unpermute);
    if options.keep_quantized {
        reader.quantized = Some(gguf);
    }
    reader.max_tensor_bytes = options.max_tensor_bytes;
    let model = build(&config, &reader)?;
    let tok = tokenizer_from_gguf(gguf.metadata())?;
    let tokenizer = TextTokenizer::new(tok.tokenizer, path.to_path_buf(), tok.eos_token_id);
    tokenizer.check_vocab(config.vocab_size)?;
    Ok(LoadedModel {
        model,
        tokenizer: Some(tokenizer),
        origin: path.to_path_buf(),
    })
}

/// GGUF's names for HF tensor names: the one renaming table of the project.
///
/// | HF                                         | GGUF                      |
/// |--------------------------------------------|---------------------------|
/// | model.embed_tokens.weight                  | token_embd.weight         |
/// | model.norm.weight                          | output_norm.weight        |
/// | lm_head.weight                             | output.weight             |
/// | model.layers.N.self_attn.{q,k,v}_proj.*    | blk.N.attn_{q,k,v}.*      |
/// | model.layers.N.self_attn.o_proj.weight     | blk.N.attn_output.weight  |
/// | model.layers.N.mlp.{gate,up,down}_proj.*   | blk.N.ffn_{gate,up,down}.*|
/// | model.layers.N.input_layernorm.weight      | blk.N.attn_norm.weight    |
/// | model.layers.N.post_attention_layernorm.*  | blk.N.ffn_norm.weight     |
pub fn gguf_name(hf: &str) -> Option<String> {
    match hf {
        "model.embed_tokens.weight" => return Some("token_embd.weight".into()),
        "model.norm.weight" => return Some("output_norm.weight".into()),
        "lm_head.weight" => return Some("output.weight".into()),
        _ => {}
    }
    let rest = hf.strip_prefix("model.layers.")?;
    let (layer, rest) = rest.split_once('.')?;
    let (module, suffix) = rest.rsplit_once('.')?;
    let short = match module {
        "self_attn.q_proj" => "attn_q",
        "self_attn.k_proj" => "attn_k",
        "self_attn.v_proj" => "attn_v",
        "self_attn.o_proj" => "attn_output",
        "mlp.gate_proj" => "ffn_gate",
        "mlp.up_proj" => "ffn_up",
        "mlp.down_proj" => "ffn_down",
        "input_layernorm" => "attn_norm",
        "post_attention_layernorm" => "ffn_norm",
        _ => return None,
    };
    Some(format!("blk.{layer}.{short}.{suffix}"))
}

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
    /// See [`LoadOptions::max_tensor_bytes`].
    pub max_tensor_bytes: Option<u64>,
}

impl<'a> WeightReader<'a> {
    pub fn hf(source: &'a dyn TensorSource, device: &'a Device) -> Self {
        Self {
            source,
            device,
            rename: |n| Some(n.to_string()),
            unpermute_qk: None,
            quantized: None,
            max_tensor_bytes: None,
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
            max_tensor_bytes: None,
        }
    }

    fn file_name(&self, hf: &str) -> String {
        (self.rename)(hf).unwrap_or_else(|| hf.to_string())
    }

    pub fn has(&self, hf: &str) -> bool {
        self.source.info(&self.file_name(hf)).is_some()
    }

    fn read<const D: usize>(&self, hf: &str, shape: [usize; D]) -> Result<Tensor<D>, ModelError> {
        let values = self.read_values(hf, shape)?;
        Ok(Tensor::from_data(
            TensorData::new(values, shape),
            self.device,
        ))
    }

    /// A `[vocab, hidden]` table: whole, or in row blocks when it is larger than
    /// `max_tensor_bytes`.
    fn read_table(&self, hf: &str, shape: [usize; 2]) -> Result<VocabTable, ModelError> {
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
            return Ok(None);
        };
        let name = self.file_name(hf);
        let raw = gguf.read_raw(&name)?;
        if QuantFormat::from_ggml(raw.ggml_type).is_none() {
            return Ok(None);
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

    fn linear(
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

    fn norm(&self, name: &str, size: usize, eps: f64) -> Result<RmsNorm, ModelError> {
        Ok(RmsNorm::new(self.read(name, [size])?, eps))
    }
}

/// Builds the model, reading each tensor by its HF name.
pub fn build(config: &ModelConfig, w: &WeightReader<'_>) -> Result<CausalLm, ModelError> {
    let h = config.hidden_size;
    let (nh, nkv, hd) = (
        config.num_attention_heads,
        config.kv_heads(),
        config.head_dim(),
    );
    let inter = config.intermediate_size;
    let eps = config.rms_norm_eps;
    let embed = w.read_table("model.embed_tokens.weight", [config.vocab_size, h])?;
    let mut layers = Vec::with_capacity(config.num_hidden_layers);
    for i in 0..config.num_hidden_layers {
        let p = format!("model.layers.{i}");
        layers.push(Block {
            self_attn: Attention {
                q_proj: w.linear(
                    &format!("{p}.self_attn.q_proj"),
                    h,
                    nh * hd,
                    config.qkv_bias(),
                )?,
                k_proj: w.linear(
                    &format!("{p}.self_attn.k_proj"),
                    h,
                    nkv * hd,
                    config.qkv_bias(),
                )?,
                v_proj: w.linear(
                    &format!("{p}.self_attn.v_proj"),
                    h,
                    nkv * hd,
                    config.qkv_bias(),
                )?,
                o_proj: w.linear(
                    &format!("{p}.self_attn.o_proj"),
                    nh * hd,
                    h,
                    config.o_bias(),
                )?,
                num_heads: nh,
                num_kv_heads: nkv,
                head_dim: hd,
            },
            mlp: Mlp {
                gate_proj: w.linear(&format!("{p}.mlp.gate_proj"), h, inter, false)?,
                up_proj: w.linear(&format!("{p}.mlp.up_proj"), h, inter, false)?,
                down_proj: w.linear(&format!("{p}.mlp.down_proj"), inter, h, false)?,
            },
            input_layernorm: w.norm(&format!("{p}.input_layernorm.weight"), h, eps)?,
            post_attention_layernorm: w.norm(
                &format!("{p}.post_attention_layernorm.weight"),
                h,
                eps,
            )?,
        });
    }
    let norm = w.norm("model.norm.weight", h, eps)?;
    // Tied embeddings share the embedding tensor (no copy). An untied model must ship its head.
    let head = if config.tie_word_embeddings && !w.has("lm_head.weight") {
        embed.clone()
    } else {
        w.read_table("lm_head.weight", [config.vocab_size, h])?
    };
    Ok(CausalLm {
        model: Decoder {
            embed_tokens: embed,
            layers,
            norm,
        },
        lm_head: head,
        config: config.clone(),
    })
}
