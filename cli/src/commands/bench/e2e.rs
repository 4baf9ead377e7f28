//! The runtime's side of the end-to-end comparison (`bench/run.py` drives both sides, in
//! alternation, one process per measurement): `bench inputs` writes the token ids every side
//! runs on; `bench e2e` times one workload on them after one warm-up and prints one JSON
//! line with the same fields as `bench/torch_side.py`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Args as ClapArgs, ValueEnum};
use data::prompt::ChatTemplate;
use data::{Dataset, imhi};
use model::decoder::TokenBatch;
use model::generate::{GenerateConfig, Sampling, generate};
use model::lora::config::{ALL_LINEAR, LoraConfig};
use model::lora::peft_io::attach_new;
use serde::{Deserialize, Serialize};
use train::optim::AdamW;
use train::sft::{SftExample, answer_nll};
use train::trainer::Trainer;

use crate::model_arg::ModelArgs;

#[derive(ClapArgs, Debug)]
pub struct InputArgs {
    /// The model whose tokenizer makes the ids (a .gguf file or HF folder).
    #[arg(long, short = 'm')]
    pub model: Option<PathBuf>,
    /// The data folder holding imhi/test/*.csv.
    #[arg(long, default_value = "../shared/data")]
    pub data: PathBuf,
    /// Rows.
    #[arg(long, default_value_t = 16)]
    pub batch: usize,
    /// Tokens per row: prompts shorter than this are skipped, longer ones cut.
    #[arg(long, default_value_t = 256)]
    pub seq: usize,
    /// Where to write the JSON.
    #[arg(long)]
    pub out: PathBuf,
}

/// The ids file: `batch` rows of exactly `seq` ids, no padding.
#[derive(Debug, Serialize, Deserialize)]
pub struct Inputs {
    pub batch: usize,
    pub seq: usize,
    pub ids: Vec<Vec<u32>>,
    pub pad_id: u32,
    pub eos_id: Option<u32>,
    /// Where the rows came from.
    #[serde(default)]
    pub source: String,
}

pub fn inputs(args: InputArgs) -> Result<()> {
    if args.batch == 0 || args.seq < 2 {
        bail!("--batch must be at least 1 and --seq at least 2");
    }
    let path = ModelArgs {
        model: args.model.clone(),
        adapter: None,
        device: crate::device::DeviceArg::Cpu,
        weights: crate::model_arg::Weights::F32,
    }
    .model_path()?;
    let tokenizer = model::load_model(
        &path,
        &burn::tensor::Device::flex(),
        model::load::LoadOptions::default(),
    )
    .with_context(|| format!("loading model {}", path.display()))?
    .tokenizer
    .with_context(|| format!("{}: the model has no tokenizer", path.display()))?;
    let template = ChatTemplate::default();
    let dir = args.data.join("imhi");
    let mut ids = Vec::new();
    let mut used = Vec::new();
    for dataset in [
        Dataset::Dr,
        Dataset::Dreaddit,
        Dataset::Irf,
        Dataset::MultiWd,
        Dataset::Sad,
    ] {
        if ids.len() == args.batch {
            break;
        }
        let examples = imhi::load_split(&dir, dataset, imhi::Split::Test).with_context(|| {
            format!(
                "reading the IMHI test set {} under {}",
                dataset.name(),
                dir.display()
            )
        })?;
        let before = ids.len();
        for ex in examples {
            let row = tokenizer.encode(&template.prompt(&ex.query))?;
            if row.len() >= args.seq {
                ids.push(row[..args.seq].to_vec());
                if ids.len() == args.batch {
                    break;
                }
            }
        }
        used.push(format!("{} ({})", dataset.name(), ids.len() - before));
    }
    if ids.len() < args.batch {
        bail!(
            "only {} IMHI test prompts under {} have {} tokens or more; lower --seq or --batch",
            ids.len(),
            dir.display(),
            args.seq
        );
    }
    let out = Inputs {
        batch: args.batch,
        seq: args.seq,
        ids,
        pad_id: tokenizer.pad_id,
        eos_id: tokenizer.stop_ids.first().copied(),
        source: format!(
            "IMHI test prompts (ChatML), first {} tokens: {}",
            args.seq,
            used.join(", ")
        ),
    };
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    formats::atomic::write_atomic(&args.out, serde_json::to_string(&out)?.as_bytes())
        .with_context(|| format!("writing {}", args.out.display()))?;
    eprintln!(
        "wrote {} ({} × {} tokens; {})",
        args.out.display(),
        out.batch,
        out.seq,
        out.source
    );
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    /// Every row at once to the last position's logits (the answer logits).
    Prefill,
    /// Row 0 as the prompt (rows 0 to --rows - 1 with --rows), exactly --new-tokens greedy
    /// tokens each with the KV cache.
    Generate,
    /// A LoRA step (r --lora-r on every projection, AdamW) on the first --train-batch rows,
    /// the loss over every position.
    Train,
}

#[derive(ClapArgs, Debug)]
pub struct E2eArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The ids file of `bench inputs`.
    #[arg(long)]
    pub inputs: PathBuf,
    #[arg(long, value_enum)]
    pub workload: Workload,
    /// Tokens to generate (generate).
    #[arg(long, default_value_t = 64)]
    pub new_tokens: usize,
    /// Sequences decoding together (generate): the first this many rows, as one batch.
    #[arg(long, default_value_t = 1)]
    pub rows: usize,
    /// Rows per training step (train).
    #[arg(long, default_value_t = 4)]
    pub train_batch: usize,
    /// Timed training steps, reported as their mean (train).
    #[arg(long, default_value_t = 2)]
    pub steps: usize,
    /// LoRA rank (train); alpha is twice the rank, as in bench/torch_side.py.
    #[arg(long, default_value_t = 8)]
    pub lora_r: usize,
    /// Print the JSON line only (the default prints it too, after a summary on stderr).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
struct Measurement {
    side: &'static str,
    device: String,
    workload: Workload,
    /// Seconds for one unit: one prefill call, one generate call, one training step.
    seconds: f64,
    /// Tokens in that unit: batch × seq, the new tokens (of every sequence), or
    /// train_batch × seq.
    tokens: usize,
    /// Generate: the sequences decoding together.
    #[serde(skip_serializing_if = "Option::is_none")]
    rows: Option<usize>,
    /// Generate: seconds from the first new token to the last, the `tokens - 1` decoding
    /// steps without the prompt's prefill.
    #[serde(skip_serializing_if = "Option::is_none")]
    decode_seconds: Option<f64>,
    load_seconds: f64,
    threads: usize,
}

fn read_inputs(path: &Path) -> Result<Inputs> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let inputs: Inputs = serde_json::from_str(&text).with_context(|| {
        format!(
            "{}: not an ids file of `mentalqlm bench inputs`",
            path.display()
        )
    })?;
    if inputs.ids.is_empty() || inputs.ids.len() != inputs.batch {
        bail!(
            "{}: {} rows, but batch says {}",
            path.display(),
            inputs.ids.len(),
            inputs.batch
        );
    }
    if let Some(i) = inputs.ids.iter().position(|r| r.len() != inputs.seq) {
        bail!(
            "{}: row {i} has {} ids, but seq says {}",
            path.display(),
            inputs.ids[i].len(),
            inputs.seq
        );
    }
    Ok(inputs)
}

/// The worker threads of the CPU backend (rayon's pool).
fn threads() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from))
}

/// Seconds of one call of `f` after one warm-up call; `f` ends with a readback, so the
/// device has finished the work when it returns.
fn timed(mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?;
    let start = Instant::now();
    f()?;
    Ok(start.elapsed().as_secs_f64())
}

pub fn run(args: E2eArgs) -> Result<()> {
    let inputs = read_inputs(&args.inputs)?;
    if args.workload == Workload::Train && args.model.adapter.is_some() {
        bail!("--adapter: the training step trains a new adapter; give none");
    }
    let start = Instant::now();
    let mut decode_seconds = None;
    let (seconds, tokens, device) = match args.workload {
        Workload::Prefill | Workload::Generate => {
            let (loaded, chosen) = args.model.load()?;
            let load_seconds = start.elapsed().as_secs_f64();
            let lm = &loaded.model;
            let (seconds, tokens) = if args.workload == Workload::Prefill {
                let valid = vec![vec![true; inputs.seq]; inputs.batch];
                let seconds = timed(|| {
                    let rope = lm.rope(inputs.seq);
                    let mut cache = lm.new_cache_for(inputs.seq);
                    let batch = TokenBatch {
                        ids: &inputs.ids,
                        valid: &valid,
                    };
                    model::io::values(lm.forward_last(batch, &rope, &mut cache)?)?;
                    Ok(())
                })?;
                (seconds, inputs.batch * inputs.seq)
            } else {
                if args.new_tokens == 0 {
                    bail!("--new-tokens must be at least 1");
                }
                if args.rows == 0 || args.rows > inputs.batch {
                    bail!(
                        "--rows must be 1 to {} (the rows of {})",
                        inputs.batch,
                        args.inputs.display()
                    );
                }
                let config = GenerateConfig {
                    max_new_tokens: args.new_tokens,
                    sampling: Sampling::Greedy,
                    seed: 0,
                    // No stop ids: exactly --new-tokens tokens, as the reference is asked.
                    stop_ids: Vec::new(),
                    pad_id: inputs.pad_id,
                };
                let prompt = &inputs.ids[..args.rows];
                let mut decode = 0.0;
                let seconds = timed(|| {
                    let mut first = None;
                    let out = generate(lm, prompt, &config, |_, _| {
                        first.get_or_insert_with(Instant::now);
                    })?;
                    decode = first.map_or(0.0, |t| t.elapsed().as_secs_f64());
                    if let Some(row) = out.iter().find(|row| row.len() != args.new_tokens) {
                        bail!("generated {} tokens, not {}", row.len(), args.new_tokens);
                    }
                    Ok(())
                })?;
                decode_seconds = Some(decode);
                (seconds, args.rows * args.new_tokens)
            };
            (seconds, tokens, (chosen.description, load_seconds))
        }
        Workload::Train => {
            if args.train_batch == 0 || args.train_batch > inputs.batch || args.steps == 0 {
                bail!(
                    "--train-batch must be 1 to {} (the rows of {}) and --steps at least 1",
                    inputs.batch,
                    args.inputs.display()
                );
            }
            // The same loading as `train sft`: the autodiff device, the base frozen (as PEFT's).
            let crate::commands::train::ForTraining {
                path,
                chosen,
                device,
                loaded,
                ..
            } = crate::commands::train::load_for_training(&args.model)?;
            let mut lm = loaded.model;
            let lora = LoraConfig::new(args.lora_r, 2.0 * args.lora_r as f64, 0.0, &ALL_LINEAR);
            if attach_new(&mut lm, &lora, 0, &device) == 0 {
                bail!("{}: no projection took a LoRA adapter", path.display());
            }
            let load_seconds = start.elapsed().as_secs_f64();
            // The whole row is the answer after its first token: the loss covers every
            // position, as `labels = ids` does in transformers.
            let rows: Vec<SftExample> = inputs.ids[..args.train_batch]
                .iter()
                .map(|r| SftExample::new(&r[..1], &r[1..], r.len()))
                .collect::<Option<_>>()
                .context("an input row is too short to train on")?;
            let predicted: usize = rows.iter().map(SftExample::answer_tokens).sum();
            let mut trainer = Trainer {
                model: lm,
                optim: AdamW::new(0.0),
                max_grad_norm: None,
                device,
                seed: 0,
            };
            let mut step = 0;
            let mut one_step = |trainer: &mut Trainer<model::CausalLm>| -> Result<()> {
                step += 1;
                let batch: Vec<&SftExample> = rows.iter().collect();
                trainer.update(step, 1, 1e-4, |m, _| {
                    let (nll, _) = answer_nll(m, &batch, inputs.pad_id)?;
                    Ok(nll / predicted as f64)
                })?;
                Ok(())
            };
            one_step(&mut trainer)?;
            let t = Instant::now();
            for _ in 0..args.steps {
                one_step(&mut trainer)?;
            }
            let seconds = t.elapsed().as_secs_f64() / args.steps as f64;
            (
                seconds,
                args.train_batch * inputs.seq,
                (chosen.description, load_seconds),
            )
        }
    };
    let (device, load_seconds) = device;
    let m = Measurement {
        side: "mentalqlm",
        device,
        workload: args.workload,
        seconds,
        tokens,
        rows: (args.workload == Workload::Generate).then_some(args.rows),
        decode_seconds,
        load_seconds,
        threads: threads(),
    };
    if !args.json {
        eprintln!(
            "{:?}: {:.3} s, {:.1} tokens/s (load {:.2} s)",
            m.workload,
            m.seconds,
            m.tokens as f64 / m.seconds,
            m.load_seconds
        );
    }
    println!("{}", serde_json::to_string(&m)?);
    Ok(())
}
