//! `--model`: a HF folder or a `.gguf` file; without it, the default model installed by
//! `scripts/setup.sh`.

use std::io::IsTerminal;
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
    /// How the weights (projections, embedding table, LM head) are held.
    #[arg(long, value_enum, default_value_t = Weights::Auto)]
    pub weights: Weights,
}

/// `--weights`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Weights {
    /// Quantized on the CPU, f32 on wgpu; f32 for training.
    Auto,
    /// Converted to f32 when loaded.
    F32,
    /// Kept as codes (19-28% of the f32 memory), read by our kernels: on the CPU each
    /// decoding step reads a fifth of the bytes; on a GPU short of memory the model fits.
    Quantized,
    /// A HF folder's f16/bf16/f32 weights quantized to Q8_0 as they are read (28% of f32:
    /// a 7B model in about 7.2 GB); a GGUF's codes kept as with `quantized`.
    Q8,
    /// f16/bf16/f32 weights held as half floats (53% of f32: a 7B model in about 14.3 GB),
    /// f16 files exactly; a GGUF's codes kept as with `quantized`. Read by the CPU's
    /// kernels; on wgpu each product widens them first (slower than f32).
    F16,
}

impl Weights {
    /// Whether to keep the codes, for inference on `device`.
    pub fn keep_quantized(self, device: &burn::tensor::Device) -> bool {
        match self {
            Self::Auto => *device == burn::tensor::Device::flex(),
            Self::F32 => false,
            Self::Quantized | Self::Q8 | Self::F16 => true,
        }
    }

    /// The codes made as the weights are read: Q8_0 for a HF folder under `q8`, half
    /// floats under `f16`.
    pub fn codes_at_load(self, gguf: bool) -> Option<kernels::QuantFormat> {
        match self {
            Self::Q8 if !gguf => Some(kernels::QuantFormat::Q8_0),
            Self::F16 => Some(kernels::QuantFormat::F16),
            _ => None,
        }
    }
}

/// The chat format of a loaded model (`classify::chat_format`), said on stderr unless it is
/// ChatML read from the model's own template.
pub fn chat_format(
    lm: &model::CausalLm,
    tokenizer: &formats::tokenizer::TextTokenizer,
) -> data::ChatFormat {
    let (format, source) = classify::chat_format(lm.config.model_type, tokenizer);
    match source {
        classify::FormatSource::Template if format == data::ChatFormat::ChatMl => {}
        classify::FormatSource::Template => {
            eprintln!("chat format: {} (the model's chat template)", format.name());
        }
        classify::FormatSource::Fallback(why) => {
            eprintln!("chat format: {} ({why})", format.name());
        }
    }
    format
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

    /// Whether `--model` is an encoder-decoder (BART or T5) folder.
    pub fn is_seq2seq(&self) -> Result<bool> {
        let path = self.model_path()?;
        Ok(path.is_dir() && model::seq2seq::is_seq2seq_folder(&formats::Folder::disk(&path)))
    }

    /// Loads a BART or T5 folder (`--weights q8` quantizes it as it is read; adapters are
    /// for decoder-only models).
    pub fn load_seq2seq(&self) -> Result<(model::seq2seq::LoadedSeq2Seq, Chosen)> {
        let path = self.model_path()?;
        if let Some(dir) = &self.adapter {
            bail!(
                "--adapter {}: LoRA adapters apply to decoder-only models, and {} is an \
                 encoder-decoder model",
                dir.display(),
                path.display()
            );
        }
        let chosen = self.device()?;
        let options = model::LoadOptions {
            codes_at_load: self.weights.codes_at_load(false),
            ..Default::default()
        };
        let loaded =
            model::seq2seq::load_seq2seq(&formats::Folder::disk(&path), &chosen.device, options)
                .map_err(|e| {
                    anyhow::anyhow!(e).context(format!("loading model {}", path.display()))
                })?;
        eprintln!(
            "model: {} ({}, encoder-decoder)",
            path.display(),
            loaded.model.model_type()
        );
        Ok((loaded, chosen))
    }

    pub fn load(&self) -> Result<(model::LoadedModel, Chosen)> {
        let path = self.model_path()?;
        if self.is_seq2seq()? {
            bail!(
                "{} is an encoder-decoder model (BART or T5): logits, tokenize, generate, \
                 classify --explain and eval --mode generate read it; this command needs a \
                 decoder-only model",
                path.display()
            );
        }
        let chosen = self.device()?;
        let keep_quantized = self.weights.keep_quantized(&chosen.device);
        let gguf = model::load::is_gguf(&path);
        // In a terminal, a bar while the model is built (a 7B model takes a minute or more);
        // nothing in a log.
        let bar = std::cell::OnceCell::new();
        let terminal = std::io::stderr().is_terminal();
        let built = |done: usize, total: usize| {
            if terminal {
                bar.get_or_init(|| building_bar(total as u64))
                    .set_position(done as u64);
            }
        };
        let options = model::LoadOptions {
            keep_quantized,
            codes_at_load: self.weights.codes_at_load(gguf),
            progress: Some(model::BuildProgress(&built)),
            ..Default::default()
        };
        if keep_quantized && gguf {
            eprintln!("weights: Q8_0/Q4_0/Q4_1 kept as codes (--weights f32 converts them)");
        }
        match options.codes_at_load {
            Some(kernels::QuantFormat::F16) => eprintln!(
                "weights: held as half floats (--weights f16){}",
                if chosen.device == burn::tensor::Device::flex() {
                    ""
                } else {
                    "; on this device each product widens them to f32 first"
                }
            ),
            Some(_) => eprintln!("weights: quantized to Q8_0 as they are read (--weights q8)"),
            None => {}
        }
        let loaded = model::load_model(&path, &chosen.device, options);
        if let Some(bar) = bar.get() {
            bar.finish_and_clear();
        }
        let mut loaded = loaded
            .map_err(|e| anyhow::anyhow!(e).context(format!("loading model {}", path.display())))?;
        if let Some(dir) = &self.adapter {
            let config =
                model::lora::peft_io::load_adapter(&mut loaded.model, &formats::Folder::disk(dir))
                    .map_err(|e| {
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

/// The bar of a model's build: `steps` being its embedding table, each layer and its head.
fn building_bar(steps: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(steps);
    bar.set_style(
        indicatif::ProgressStyle::with_template("building the model [{bar:30}] {percent}%")
            .expect("static template")
            .progress_chars("=> "),
    );
    bar
}
