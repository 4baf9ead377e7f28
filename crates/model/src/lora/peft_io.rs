//! PEFT adapter folders: `adapter_config.json` + `adapter_model.safetensors`, tensors named
//! `base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight` (`[r, in]`) and
//! `...lora_B.weight` (`[out, r]`).

use std::collections::BTreeSet;
use std::path::Path;

use burn::tensor::{Device, Tensor, TensorData};
use formats::safetensors::SafetensorsSource;
use formats::{Folder, TensorSource};

use crate::ModelError;
use crate::heads::lm::CausalLm;
use crate::lora::{LoraAdapter, LoraConfig};

/// PEFT's name of one factor (`lora_A` / `lora_B`) of a projection.
pub fn peft_key(layer: usize, path: &str, factor: &str) -> String {
    format!("base_model.model.model.layers.{layer}.{path}.{factor}.weight")
}

/// The projection's short name (`q_proj`) from its path (`self_attn.q_proj`).
fn short(path: &str) -> &str {
    path.rsplit('.').next().unwrap_or(path)
}

fn config_err(path: &Path, reason: impl Into<String>) -> ModelError {
    ModelError::Config {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// `adapter_config.json` of a folder on disk (`Folder::disk`) or in memory.
pub fn read_config(folder: &Folder) -> Result<LoraConfig, ModelError> {
    let file = folder.path("adapter_config.json");
    let text = folder.read_string("adapter_config.json")?;
    let config: LoraConfig =
        serde_json::from_str(&text).map_err(|e| config_err(&file, e.to_string()))?;
    config.validate().map_err(|r| config_err(&file, r))?;
    Ok(config)
}

/// Attaches fresh adapters (A Kaiming-uniform, B zero) to the targeted projections; each
/// A is drawn from `seed` and its projection's name.
pub fn attach_new(model: &mut CausalLm, config: &LoraConfig, seed: u64, device: &Device) -> usize {
    let mut n = 0;
    for (layer, path, linear) in model.model.linears_mut() {
        if config.applies(layer, short(path)) {
            let (i, o) = (linear.in_features(), linear.out_features());
            linear.lora = Some(LoraAdapter::init(
                i,
                o,
                config.r,
                config.scaling(),
                config.lora_dropout,
                crate::init::derive_seed(seed, &peft_key(layer, path, "lora_A")),
                device,
            ));
            n += 1;
        }
    }
    n
}

/// Loads a PEFT adapter folder onto the model's targeted projections. Every targeted
/// projection must have both factors of the right shapes, and every LoRA tensor in the file
/// must find its projection. The folder is on disk (`Folder::disk`) or in memory (the web).
pub fn load_adapter(model: &mut CausalLm, folder: &Folder) -> Result<LoraConfig, ModelError> {
    let config = read_config(folder)?;
    let file = folder.path("adapter_model.safetensors");
    let source = SafetensorsSource::open_file(folder, "adapter_model.safetensors")?;
    let device = model.model.embed_tokens.device();
    let mut unused: BTreeSet<String> = source.tensor_names().into_iter().collect();
    let origin = file.display().to_string();
    let read = |name: &str,
                shape: [usize; 2],
                unused: &mut BTreeSet<String>|
     -> Result<Tensor<2>, ModelError> {
        let Some(info) = source.info(name) else {
            return Err(ModelError::MissingTensor {
                name: name.to_string(),
                origin: origin.clone(),
            });
        };
        if info.shape != shape {
            return Err(ModelError::Shape {
                name: name.to_string(),
                origin: origin.clone(),
                expected: shape.to_vec(),
                actual: info.shape,
            });
        }
        unused.remove(name);
        let (values, _) = source.read_f32(name)?;
        Ok(Tensor::from_data(TensorData::new(values, shape), &device))
    };
    for (layer, path, linear) in model.model.linears_mut() {
        if !config.applies(layer, short(path)) {
            continue;
        }
        let (i, o) = (linear.in_features(), linear.out_features());
        let a = read(&peft_key(layer, path, "lora_A"), [config.r, i], &mut unused)?;
        let b = read(&peft_key(layer, path, "lora_B"), [o, config.r], &mut unused)?;
        linear.lora = Some(LoraAdapter::from_tensors(
            a,
            b,
            config.scaling(),
            config.lora_dropout,
        ));
    }
    let stray: Vec<&String> = unused.iter().filter(|n| n.contains("lora_")).collect();
    if !stray.is_empty() {
        return Err(config_err(
            &file,
            format!("LoRA tensors with no targeted projection: {stray:?}"),
        ));
    }
    Ok(config)
}

/// Writes the model's adapters as a PEFT folder. Files are written under temporary names
/// and renamed, so a killed run never leaves a half-written adapter.
pub fn save_adapter(
    model: &mut CausalLm,
    config: &LoraConfig,
    dir: &Path,
) -> Result<usize, ModelError> {
    save_adapter_as(model, config, dir, false)
}

/// [`save_adapter`] with the factors in f16 (`half`) or f32: shipped adapters are f16.
pub fn save_adapter_as(
    model: &mut CausalLm,
    config: &LoraConfig,
    dir: &Path,
    half: bool,
) -> Result<usize, ModelError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| ModelError::Format(formats::FormatError::io(dir, e)))?;
    let tensors = adapter_tensors(model)?;
    let file = dir.join("adapter_model.safetensors");
    if half {
        crate::io::write_safetensors_f16(&file, &tensors)?;
    } else {
        crate::io::write_safetensors(&file, &tensors)?;
    }
    let cfg = dir.join("adapter_config.json");
    let text = serde_json::to_string_pretty(config).map_err(|e| config_err(&cfg, e.to_string()))?;
    crate::io::write_atomic(&cfg, text.as_bytes())?;
    Ok(tensors.len() / 2)
}

/// Every LoRA factor of the model under its PEFT name, read back to the host.
pub fn adapter_tensors(model: &mut CausalLm) -> Result<Vec<crate::io::Named>, ModelError> {
    let mut tensors = Vec::new();
    for (layer, path, linear) in model.model.linears_mut() {
        let Some(lora) = &linear.lora else { continue };
        for (factor, t) in [("lora_A", lora.lora_A.val()), ("lora_B", lora.lora_B.val())] {
            let shape = t.dims().to_vec();
            tensors.push((peft_key(layer, path, factor), shape, crate::io::values(t)?));
        }
    }
    Ok(tensors)
}

/// Folds every adapter into its base weight.
pub fn merge(model: &mut CausalLm) {
    for (_, _, linear) in model.model.linears_mut() {
        linear.merge_lora();
    }
}
