//! IMHI and DEP-SEVERITY data, ChatML prompts, MentaLLaMA/MentalQLM label rules, metrics and
//! reports. Pure Rust with no Burn dependency.
//!
//! - [`imhi`]: IMHI instruction CSV/JSON files, post and question extraction, split layout.
//! - [`dep_severity`]: DEP-SEVERITY CSVs; [`split`]: the seeded stratified 80/10/10 split.
//! - [`labels`]: the datasets and [`parse_label`], one parser for gold and predictions.
//! - [`task_data`]: each task's training, validation and test texts for a classifier.
//! - [`prompt`]: the ChatML template and fitting long posts into a token budget.
//! - [`metrics`]: scikit-learn-exact accuracy, F1 averages, per-class scores, confusion.
//! - [`text_metrics`]: ROUGE-L and BLEU-4 of explanations.
//! - [`predictions`]: LLaMA-Factory `generated_predictions.jsonl` and its scoring.
//! - [`report`], [`svg`], [`published`](mod@published): Markdown/JSON reports beside the
//!   paper's figures.

pub mod confusion_svg;
mod csv_table;
pub mod curve;
pub mod dep_severity;
pub mod error;
pub mod imhi;
pub mod labels;
pub mod metrics;
pub mod predictions;
pub mod prompt;
pub mod published;
pub mod report;
pub mod split;
pub mod task_data;
pub mod tasks;
pub mod text_metrics;

pub use dep_severity::SeverityExample;
pub use error::{DataError, Locus};
pub use imhi::{Example, Split};
pub use labels::{Dataset, match_label, parse_gold_label, parse_label};
pub use metrics::{Average, ClassificationMetrics, classification_metrics};
pub use predictions::{PredictionRow, ScoredPredictions, score_answers, score_predictions};
pub use prompt::{ChatFormat, ChatTemplate, FittedPrompt, completion_query, fit_query};
pub use published::published;
pub use report::{DatasetResult, EvalReport, Method, TextScores, follows_answer_form};
pub use split::SplitIndices;
