//! `mentalqlm tokenize --model M [--json] [--pieces] TEXT...`: the token ids of texts, for
//! checking this runtime's tokenizers against other tools. Only the tokenizer is read.

use std::io::Read;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args as ClapArgs;

use crate::device::DeviceArg;
use crate::model_arg::{ModelArgs, Weights};

#[derive(ClapArgs, Debug)]
pub struct Args {
    /// A HF model folder (tokenizer.json, or a SentencePiece tokenizer.model / spiece.model)
    /// or a .gguf file. Default: as for the other commands.
    #[arg(long, short = 'm')]
    pub model: Option<PathBuf>,
    /// One JSON object per text (`{"text", "ids"}`, and `pieces` with --pieces).
    #[arg(long)]
    pub json: bool,
    /// Also print each token's piece (its vocabulary string).
    #[arg(long)]
    pub pieces: bool,
    /// The texts; `-` reads one text from stdin. Special-token strings in a text (`<s>`,
    /// `<|im_start|>`) become their ids; no BOS or EOS is added.
    #[arg(required = true)]
    pub texts: Vec<String>,
}

pub fn run(args: Args) -> Result<()> {
    let path = ModelArgs {
        model: args.model.clone(),
        adapter: None,
        device: DeviceArg::Auto,
        weights: Weights::Auto,
    }
    .model_path()?;
    let tok = model::load_tokenizer(&path)
        .with_context(|| format!("reading the tokenizer of {}", path.display()))?;
    let mut out = String::new();
    for (i, text) in args.texts.iter().enumerate() {
        let text = if text == "-" {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .context("reading a text from stdin")?;
            s
        } else {
            text.clone()
        };
        if text.is_empty() {
            bail!("text {} is empty", i + 1);
        }
        let ids = tok.encode(&text)?;
        let pieces: Vec<String> = ids
            .iter()
            .map(|&id| tok.inner().id_to_token(id).unwrap_or_default())
            .collect();
        if args.json {
            let mut row = serde_json::json!({ "text": text, "ids": ids });
            if args.pieces {
                row["pieces"] = serde_json::json!(pieces);
            }
            out.push_str(&row.to_string());
            out.push('\n');
        } else if args.pieces {
            for (id, piece) in ids.iter().zip(&pieces) {
                out.push_str(&format!("{id}\t{piece}\n"));
            }
            out.push('\n');
        } else {
            // Comma-separated, as `logits --ids` takes them.
            let ids: Vec<String> = ids.iter().map(u32::to_string).collect();
            out.push_str(&ids.join(","));
            out.push('\n');
        }
    }
    print!("{out}");
    Ok(())
}
