//! `mentalqlm generate "prompt" ...`: chat answers, streamed for a single prompt; for an
//! encoder-decoder model (BART, T5), the prompt's completion by its generation settings.

use std::io::Write;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args as ClapArgs;
use model::generate::{GenerateConfig, Sampling, generate};

use crate::model_arg::ModelArgs;

#[derive(ClapArgs, Debug)]
pub struct Args {
    #[command(flatten)]
    pub model: ModelArgs,
    /// One or more prompts; several are generated together as one left-padded batch.
    #[arg(required = true)]
    pub prompts: Vec<String>,
    /// The system prompt of the ChatML template.
    #[arg(long, default_value = data::prompt::DEFAULT_SYSTEM)]
    pub system: String,
    /// Send the prompt text as is, without the chat template.
    #[arg(long)]
    pub raw: bool,
    /// At most this many new tokens (default 256; encoder-decoder models: their
    /// generation_config.json's max_length).
    #[arg(long)]
    pub max_new_tokens: Option<usize>,
    /// Encoder-decoder models: beams of beam search (default: generation_config.json's
    /// num_beams; 1 is greedy).
    #[arg(long)]
    pub beams: Option<usize>,
    /// 0 means greedy decoding.
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f32,
    /// Nucleus sampling mass (with --temperature > 0).
    #[arg(long, default_value_t = 0.9)]
    pub top_p: f32,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// One JSON object per prompt instead of plain text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> Result<()> {
    if let Some(i) = args.prompts.iter().position(|p| p.trim().is_empty()) {
        bail!("prompt {} is empty", i + 1);
    }
    if !(0.0..=1.0).contains(&args.top_p) || args.top_p == 0.0 {
        bail!("--top-p must be in (0, 1], got {}", args.top_p);
    }
    if args.temperature < 0.0 || !args.temperature.is_finite() {
        bail!("--temperature must be >= 0, got {}", args.temperature);
    }
    if args.model.is_seq2seq()? {
        return run_seq2seq(&args);
    }
    if args.beams.is_some() {
        bail!("--beams is for encoder-decoder models (BART, T5)");
    }
    let (loaded, _) = args.model.load()?;
    let tokenizer = loaded
        .tokenizer
        .context("the model has no tokenizer (tokenizer.json or tokenizer.model)")?;
    // The model's chat format: ChatML (the paper's template, LLaMA-Factory's `qwen`, and
    // SmolLM2's own) or Llama-2's.
    let template = data::ChatTemplate::new(args.system.clone())
        .with_format(crate::model_arg::chat_format(&loaded.model, &tokenizer));
    let texts: Vec<String> = args
        .prompts
        .iter()
        .map(|p| {
            if args.raw {
                p.clone()
            } else {
                template.prompt(p)
            }
        })
        .collect();
    let prompts = texts
        .iter()
        .map(|t| tokenizer.encode(t))
        .collect::<Result<Vec<_>, _>>()?;
    let sampling = if args.temperature == 0.0 {
        Sampling::Greedy
    } else {
        Sampling::TopP {
            temperature: args.temperature,
            top_p: args.top_p,
        }
    };
    let config = GenerateConfig {
        max_new_tokens: args.max_new_tokens.unwrap_or(256),
        sampling,
        seed: args.seed,
        stop_ids: tokenizer.stop_ids.clone(),
        pad_id: tokenizer.pad_id,
    };
    let stream = prompts.len() == 1 && !args.json;
    let start = Instant::now();
    let mut streamer = Streamer::new(&tokenizer, stream);
    let outputs = generate(&loaded.model, &prompts, &config, |_, id| streamer.push(id))?;
    print_outputs(&args, &tokenizer, &outputs, stream, start)
}

/// Prints one answer to stdout as its tokens come. The whole answer so far is decoded each
/// time, so multi-byte characters split across tokens print correctly.
struct Streamer<'a> {
    tokenizer: &'a formats::tokenizer::TextTokenizer,
    on: bool,
    so_far: Vec<u32>,
    printed: usize,
}

impl<'a> Streamer<'a> {
    fn new(tokenizer: &'a formats::tokenizer::TextTokenizer, on: bool) -> Self {
        Self {
            tokenizer,
            on,
            so_far: Vec::new(),
            printed: 0,
        }
    }

    fn push(&mut self, id: u32) {
        if !self.on {
            return;
        }
        self.so_far.push(id);
        if let Ok(text) = self.tokenizer.decode(&self.so_far)
            && text.len() > self.printed
            && text.is_char_boundary(self.printed)
        {
            let mut stdout = std::io::stdout();
            let _ = write!(stdout, "{}", &text[self.printed..]);
            let _ = stdout.flush();
            self.printed = text.len();
        }
    }
}

/// The answers, one block or JSON object per prompt, and the speed on stderr.
fn print_outputs(
    args: &Args,
    tokenizer: &formats::tokenizer::TextTokenizer,
    outputs: &[Vec<u32>],
    stream: bool,
    start: Instant,
) -> Result<()> {
    let elapsed = start.elapsed().as_secs_f64();
    let new_tokens: usize = outputs.iter().map(Vec::len).sum();
    for (prompt, ids) in args.prompts.iter().zip(outputs) {
        let text = tokenizer.decode(ids)?;
        if args.json {
            println!(
                "{}",
                serde_json::json!({ "prompt": prompt, "output": text, "tokens": ids.len() })
            );
        } else if stream {
            println!();
        } else {
            println!("> {prompt}\n{text}\n");
        }
    }
    eprintln!(
        "{new_tokens} tokens in {elapsed:.2} s ({:.1} tokens/s)",
        new_tokens as f64 / elapsed.max(1e-9)
    );
    Ok(())
}

/// BART and T5: each prompt goes to the encoder as it is (with the model's special tokens);
/// greedy decoding streams, beam search prints the best hypothesis when it is chosen.
fn run_seq2seq(args: &Args) -> Result<()> {
    if args.temperature != 0.0 {
        bail!(
            "--temperature: sampling is not implemented for encoder-decoder models (greedy and beam search are)"
        );
    }
    let (loaded, _) = args.model.load_seq2seq()?;
    let tokenizer = loaded.tokenizer.as_ref().context(
        "the model has no tokenizer (tokenizer.json, spiece.model, or vocab.json with merges.txt)",
    )?;
    let mut settings = loaded.generation.clone();
    if let Some(n) = args.max_new_tokens {
        settings.max_length = n + 1;
    }
    if let Some(beams) = args.beams {
        if beams == 0 || beams > model::seq2seq::generation::MAX_BEAMS {
            bail!(
                "--beams must be from 1 to {}",
                model::seq2seq::generation::MAX_BEAMS
            );
        }
        settings.num_beams = beams;
    }
    let inputs = args
        .prompts
        .iter()
        .map(|p| Ok(loaded.model.encoder_input(&tokenizer.encode(p)?)))
        .collect::<Result<Vec<_>>>()?;
    let stream = inputs.len() == 1 && !args.json;
    let start = Instant::now();
    let mut streamer = Streamer::new(tokenizer, stream);
    let outputs =
        model::seq2seq::generation::generate(&loaded.model, &inputs, &settings, |_, id| {
            streamer.push(id)
        })?;
    print_outputs(args, tokenizer, &outputs, stream, start)
}
