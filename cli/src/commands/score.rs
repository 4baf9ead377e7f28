//! `mentalqlm score --predictions FILE.jsonl --dataset NAME`: metrics of a predictions file
//! (this tool's or LLaMA-Factory's `generated_predictions.jsonl`), with the same label parser
//! applied to `label` and `predict`, as MentalQLM's F1 script does.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args as ClapArgs;
use data::predictions::read_predictions;
use data::{Dataset, DatasetResult, EvalReport, score_predictions};

#[derive(ClapArgs, Debug)]
pub struct Args {
    #[arg(long)]
    pub predictions: PathBuf,
    /// The dataset whose label rules apply (DR, dreaddit, Irf, MultiWD, SAD, ...).
    #[arg(long)]
    pub dataset: String,
    /// Also write report.md, report.json and the confusion matrix picture here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> Result<()> {
    let dataset = Dataset::from_name(&args.dataset)?;
    let rows = read_predictions(&args.predictions)?;
    let scored = score_predictions(dataset, &rows)?;
    let result = DatasetResult::from_scored(&scored, "predictions")?;
    let m = &result.metrics;
    if args.json {
        println!("{}", serde_json::to_string(&result)?);
    } else {
        println!(
            "{} ({} rows, {} scored, {} dropped)",
            dataset.name(),
            rows.len(),
            m.n,
            result.dropped
        );
        println!(
            "accuracy {:.4}  weighted F1 {:.4}  macro F1 {:.4}  micro F1 {:.4}",
            m.accuracy, m.weighted_f1, m.macro_f1, m.micro_f1
        );
        for c in &m.per_class {
            let name = dataset.label_names().get(c.label).copied().unwrap_or("?");
            println!(
                "  {:>2} {name:<28} P {:.4}  R {:.4}  F1 {:.4}  n {}",
                c.label, c.precision, c.recall, c.f1, c.support
            );
        }
    }
    if let Some(out) = &args.out {
        let mut report = EvalReport::new(args.predictions.display().to_string());
        report.push(result);
        for path in report.write(out)? {
            eprintln!("wrote {}", path.display());
        }
    }
    Ok(())
}
