//! `--model`: a HF folder or a `.gguf` file; without it, the default model installed by
//! `scripts/setup.sh`.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;

use crate::device::{Chosen, DeviceArg, choose};

pub const DEFAULT_MODEL: &str = "models/SmolLM2-135M-Instruct.Q4_1.gguf";

#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// A HF model folder (config.json, *.safetensors, tokenizer.json) or a .gguf file.
    /// Default: $MENTALQLM_MODEL, else models/SmolLM2-135M-Instruct.Q4_1.gguf.
    #[arg(long, short = 'm')]
    pub model: Option<PathBuf>,
    /// A PEFT LoRA adapter folder (adapter_config.json + adapter_model.safetensors), e.g. the
    /// paper's stage-1 adapter, applied unmerged.
    #[arg(long)]
    pub adapter: Option<PathBuf>,
    /// Where to run.
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    pub device: DeviceArg,
    /// Keep a GGUF model's Q8_0/Q4_0/Q4_1 projection weights quantized on the device (19-28%
    /// of the f32 memory), dequantized inside our kernel; for GPUs short of memory. On the
    /// CPU it is slower (the weights are dequantized on every call).
    #[arg(long)]
    pub keep_quantized: bool,
}

impl ModelArgs {
    pub fn model_path(&self) -> Result<PathBuf> {
        if let Some(path) = &self.model {
            return Ok(path.clone());
        }
        if let Ok(path) = std::env::var("MENTALQLM_MODEL") {
            return Ok(PathBuf::from(path));
        }
        let candidates = [
            PathBuf::from(DEFAULT_MODEL),
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join(DEFAULT_MODEL),
        ];
        for c in &candidates {
            if c.is_file() {
                return Ok(c.clone());
            }
        }
        bail!(
            "no --model given and the default model {DEFAULT_MODEL} is not installed: run scripts/setup.sh"
        )
    }

    /// Chooses the device and tells the user which one (on stderr, so stdout stays clean).
    pub fn device(&self) -> Result<Chosen> {
        let chosen = choose(self.device)?;
        eprintln!("device: {}", chosen.description);
        Ok(chosen)
    }

    pub fn load(&self) -> Result<(model::LoadedModel, Chosen)> {
        let path = self.model_path()?;
        let chosen = self.device()?;
        let options = model::LoadOptions {
            keep_quantized: self.keep_quantized,
            ..Default::default()
        };
        let mut loaded = model::load_model_with(&path, &chosen.device, options)
            .map_err(|e| anyhow::anyhow!(e).context(format!("loading model {}", path.display())))?;
        if let Some(dir) = &self.adapter {
            let config =
                model::lora::peft_io::load_adapter(&mut loaded.model, dir).map_err(|e| {
                    anyhow::anyhow!(e).context(format!("loading adapter {}", dir.display()))
                })?;
            eprintln!(
                "adapter: {} (r {}, alpha {})",
                dir.display(),
                config.r,
                config.lora_alpha
            );
        }
        Ok((loaded, chosen))
    }
}
