//! `mentalqlm train`: MentalQLM's two LoRA stages. Both write `log.jsonl` (every step and
//! evaluation), `curves.svg`, and checkpoints every `--save-every` updates under
//! `OUT/checkpoints/`; `--resume` continues a killed run from the newest one.

pub mod classifier;
pub mod probe;
pub mod sft;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Args as ClapArgs, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use train::log::{RunLog, write_curves};
use train::sft::RunOptions;
use train::trainer::Event;

#[derive(Subcommand, Debug)]
pub enum TrainCommand {
    /// Stage 1: instruction tuning, LoRA r 8 on every linear layer, loss on the answers.
    Sft(sft::SftArgs),
    /// Stage 2: LoRA (r 4, q/v, dropout 0.2) and a mean-pool → LayerNorm → Linear head;
    /// `--mode head`: a head-only classifier over cached features of the frozen model.
    Classifier(classifier::ClassifierArgs),
}

pub fn run(cmd: TrainCommand) -> Result<()> {
    match cmd {
        TrainCommand::Sft(args) => sft::run(args),
        TrainCommand::Classifier(args) => classifier::run(args),
    }
}

/// Checkpointing options shared by both stages.
#[derive(ClapArgs, Debug)]
pub struct RunArgs {
    /// Output folder: must be new or empty, unless --resume.
    #[arg(long)]
    pub out: PathBuf,
    /// Write a checkpoint every N updates (and after the last); 0 only at the end.
    #[arg(long, default_value_t = 500)]
    pub save_every: usize,
    /// Checkpoints to keep (the newest).
    #[arg(long, default_value_t = 2)]
    pub keep_checkpoints: usize,
    /// Continue the run in --out from its newest checkpoint (same options required).
    #[arg(long)]
    pub resume: bool,
    /// Stop after update N as if killed (the checkpoint at N, if any, is kept).
    #[arg(long, hide = true)]
    pub stop_after: Option<usize>,
}

impl RunArgs {
    /// Checks the output folder before anything slow happens. A run killed before its
    /// first checkpoint left only its log: `--resume` starts it over in place.
    pub fn prepare(&mut self) -> Result<()> {
        if self.keep_checkpoints == 0 {
            bail!("--keep-checkpoints must be at least 1");
        }
        if self.resume {
            let found = train::checkpoint::list(&self.out)?;
            if found.is_empty() {
                if !self.out.join("log.jsonl").is_file() {
                    bail!(
                        "--resume: {} holds no checkpoint (is it the run's --out?)",
                        self.out.display()
                    );
                }
                eprintln!(
                    "--resume: {} holds no checkpoint yet; starting from update 0",
                    self.out.display()
                );
                self.resume = false;
            }
        } else {
            crate::runner::require_empty_out(&self.out)?;
        }
        std::fs::create_dir_all(&self.out)
            .with_context(|| format!("cannot create {}", self.out.display()))
    }

    pub fn options(&self) -> RunOptions {
        RunOptions {
            out: Some(self.out.clone()),
            save_every: self.save_every,
            keep: self.keep_checkpoints,
            resume: self.resume,
            stop_after: self.stop_after,
        }
    }
}

/// The progress bar, the JSONL log and the curve picture of one run.
pub struct Monitor {
    bar: ProgressBar,
    log: RunLog,
    title: String,
    start: Instant,
    tokens: usize,
    error: Option<anyhow::Error>,
}

impl Monitor {
    /// Opens `OUT/log.jsonl` (continued after the checkpoint on --resume) and a progress bar
    /// over `total` updates.
    pub fn new(
        args: &RunArgs,
        total: usize,
        title: &str,
        header: &serde_json::Value,
    ) -> Result<Self> {
        let path = args.out.join("log.jsonl");
        let (log, done) = if args.resume {
            let step = train::checkpoint::list(&args.out)?
                .last()
                .map_or(0, |(s, _)| *s);
            let mut resumed = header.clone();
            resumed["resumed_from"] = step.into();
            (RunLog::resume(&path, step, &resumed)?, step)
        } else {
            (RunLog::create(&path, header)?, 0)
        };
        let bar = crate::runner::bar(total as u64);
        bar.set_style(
            ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} steps ETA {eta}")
                .expect("static template")
                .progress_chars("=> "),
        );
        bar.set_position(done as u64);
        bar.reset_eta();
        Ok(Self {
            bar,
            log,
            title: title.to_string(),
            start: Instant::now(),
            tokens: 0,
            error: None,
        })
    }

    /// Logs and shows one event. A log write that fails is kept and reported at the end
    /// rather than stopping the run.
    pub fn event(&mut self, event: &Event) {
        if let Err(e) = self.log.write(event) {
            self.error.get_or_insert(e.into());
        }
        match event {
            Event::Step {
                loss, lr, tokens, ..
            } => {
                self.tokens += tokens;
                let rate = self.tokens as f64 / self.start.elapsed().as_secs_f64().max(1e-9);
                self.bar
                    .set_message(format!("loss {loss:.4} lr {lr:.2e} {rate:.0} tok/s"));
                self.bar.inc(1);
            }
            Event::Eval {
                step,
                val_loss,
                val_weighted_f1,
                best,
                ..
            } => {
                let f1 = val_weighted_f1
                    .map(|f| format!(", val weighted F1 {:.2}", 100.0 * f))
                    .unwrap_or_default();
                let star = if *best == Some(true) { " (best)" } else { "" };
                crate::runner::progress_line(
                    &self.bar,
                    format!("step {step}: val loss {val_loss:.4}{f1}{star}"),
                );
            }
            Event::Checkpoint { .. } => {
                if let Err(e) = write_curves(self.log.path(), &self.title) {
                    self.error.get_or_insert(e.into());
                }
            }
        }
    }

    /// Clears the bar and draws the final curves. Returns the seconds taken and the
    /// picture's path, or `None` (after saying how to continue) when the run stopped early.
    pub fn finish(
        self,
        out: &Path,
        finished: bool,
        steps: usize,
    ) -> Result<Option<(f64, PathBuf)>> {
        self.bar.finish_and_clear();
        let seconds = self.start.elapsed().as_secs_f64();
        if let Some(e) = self.error {
            return Err(e.context(format!("writing {}", self.log.path().display())));
        }
        let curves = write_curves(self.log.path(), &self.title)?;
        if !finished {
            eprintln!(
                "stopped after update {steps}; continue with the same command and --resume (checkpoints in {})",
                train::checkpoint::checkpoints_dir(out).display()
            );
            return Ok(None);
        }
        Ok(Some((seconds, curves)))
    }
}

/// The model to train, on the autodiff form of the chosen device, with its tokenizer.
pub struct ForTraining {
    pub path: PathBuf,
    pub chosen: crate::device::Chosen,
    pub device: burn::tensor::Device,
    pub loaded: model::LoadedModel,
    pub tokenizer: formats::tokenizer::TextTokenizer,
}

pub fn load_for_training(args: &crate::model_arg::ModelArgs) -> Result<ForTraining> {
    let path = args.model_path()?;
    let chosen = args.device()?;
    // --seed fixes LoRA A and the head (drawn on the host), the data order and, through the
    // per-update reseeding in the trainer, the dropout masks.
    let device = chosen.device.clone().autodiff();
    // A base kept quantized (`--weights quantized`; `auto` trains over f32) is frozen, as
    // LoRA wants; under autodiff its layers run as Burn ops (dequantize, then matmul), which
    // carry the gradients of x and the LoRA factors.
    let options = model::LoadOptions {
        keep_quantized: matches!(
            args.weights,
            crate::model_arg::Weights::Quantized
                | crate::model_arg::Weights::Q8
                | crate::model_arg::Weights::F16
        ),
        codes_at_load: args.weights.codes_at_load(model::load::is_gguf(&path)),
        ..Default::default()
    };
    let mut loaded = model::load_model(&path, &device, options)
        .with_context(|| format!("loading model {}", path.display()))?;
    // The base is frozen: LoRA trains the adapters alone, and a tracked base weight would
    // cost every projection a `gᵀ·x` product (and the tied table a [vocab, hidden] gradient)
    // that the optimizer then ignores. Stage 2 freezes again after merging its adapter.
    loaded.model = burn::module::Module::set_require_grad(loaded.model, false);
    let tokenizer = loaded
        .tokenizer
        .clone()
        .context("the model has no tokenizer")?;
    Ok(ForTraining {
        path,
        chosen,
        device,
        loaded,
        tokenizer,
    })
}

/// A seeded sample of `n` items (all of them when `n` is `None` or not smaller), in order.
pub fn sample<T: Clone>(items: Vec<T>, n: Option<usize>, seed: u64) -> Vec<T> {
    use rand::SeedableRng;
    match n {
        Some(n) if n < items.len() => {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let mut idx = rand::seq::index::sample(&mut rng, items.len(), n).into_vec();
            idx.sort_unstable();
            idx.into_iter().map(|i| items[i].clone()).collect()
        }
        _ => items,
    }
}
