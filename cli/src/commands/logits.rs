//! `mentalqlm logits --model DIR --ids 1,2,3`: the last position's logits as JSON.

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
}

pub fn parse_ids(text: &str) -> Result<Vec<u32>> {
    let ids = text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<u32>()
                .with_context(|| format!("--ids: `{s}` is not a token id"))
        })
        .collect::<Result<Vec<_>>>()?;
    if ids.is_empty() {
        bail!("--ids: no token ids given");
    }
    Ok(ids)
}

pub fn run(args: Args) -> Result<()> {
    let ids = parse_ids(&args.ids)?;
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
