//! `mentalqlm logits --model DIR --ids 1,2,3`: the last position's logits as JSON. For an
//! encoder-decoder model `--ids` go to the encoder and the logits are the decoder's at the
//! last of `--decoder-ids` (default: the decoder start token alone).

use anyhow::{Context, Result, bail};
use clap::Args as ClapArgs;
use model::decoder::TokenBatch;
use model::generate::logits_to_rows;

use crate::model_arg::ModelArgs;

#[derive(ClapArgs, Debug)]
pub struct Args {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Comma-separated token ids, e.g. 1,2,3.
    #[arg(long, required = true)]
    pub ids: String,
    /// Encoder-decoder models: the decoder's ids (default: its start token alone).
    #[arg(long)]
    pub decoder_ids: Option<String>,
}

pub fn parse_ids(text: &str) -> Result<Vec<u32>> {
    parse_id_list(text, "--ids")
}

fn parse_id_list(text: &str, flag: &str) -> Result<Vec<u32>> {
    let ids = text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<u32>()
                .with_context(|| format!("{flag}: `{s}` is not a token id"))
        })
        .collect::<Result<Vec<_>>>()?;
    if ids.is_empty() {
        bail!("{flag}: no token ids given");
    }
    Ok(ids)
}

pub fn run(args: Args) -> Result<()> {
    let ids = parse_ids(&args.ids)?;
    let decoder_ids = args
        .decoder_ids
        .as_deref()
        .map(|t| parse_id_list(t, "--decoder-ids"))
        .transpose()?;
    if args.model.is_seq2seq()? {
        return seq2seq_logits(&args, ids, decoder_ids);
    }
    if decoder_ids.is_some() {
        bail!("--decoder-ids is for encoder-decoder models (BART, T5)");
    }
    let (loaded, _) = args.model.load()?;
    let model = loaded.model;
    let rope = model.rope(ids.len());
    let mut cache = model.new_cache();
    let valid = vec![vec![true; ids.len()]];
    let logits = model.forward_last(
        TokenBatch {
            ids: &[ids],
            valid: &valid,
        },
        &rope,
        &mut cache,
    )?;
    let row = logits_to_rows(logits)?.remove(0);
    println!("{}", serde_json::json!({ "logits": row }));
    Ok(())
}

/// The decoder's logits at the last of `decoder_ids` (or the start token) over `ids`.
fn seq2seq_logits(args: &Args, ids: Vec<u32>, decoder_ids: Option<Vec<u32>>) -> Result<()> {
    let (loaded, _) = args.model.load_seq2seq()?;
    let model = &loaded.model;
    let decoder_ids = decoder_ids.unwrap_or_else(|| vec![loaded.generation.decoder_start]);
    let mut state = model.start(model.encode(&[ids])?);
    let logits = model.decode(&mut state, &[decoder_ids])?;
    let [_, s, v] = logits.dims();
    let last = logits.narrow(1, s - 1, 1).reshape([1, v]);
    let row = logits_to_rows(last)?.remove(0);
    println!("{}", serde_json::json!({ "logits": row }));
    Ok(())
}
