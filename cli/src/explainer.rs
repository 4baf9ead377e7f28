//! The shipped explainer from the CLI (`classify::explainer` reads and attaches it): where it
//! is looked for, and choosing it for a model.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
pub use classify::explainer::ExplainerInfo;
use formats::Folder;

/// What to explain with, when no `--adapter` was given.
pub enum Choice {
    /// The shipped explainer fits the model: the model with it, its folder and description.
    Shipped(model::CausalLm, PathBuf, ExplainerInfo),
    /// None applies; the reason, for people.
    Untuned(String),
}

/// The shipped explainer under `root` (the shipped classifiers' folder) on a copy of `lm`,
/// if it was made for the model whose sha256 `model_sha` gives.
pub fn choose(
    root: Option<&Path>,
    lm: &model::CausalLm,
    model_sha: impl FnOnce() -> Result<String>,
) -> Result<Choice> {
    let Some(dir) = root
        .map(|r| r.join(classify::explainer::FOLDER))
        .filter(|d| d.join("explainer.json").is_file())
    else {
        return Ok(Choice::Untuned(
            "no trained explainer is shipped here".into(),
        ));
    };
    let sha = model_sha()?;
    match classify::explainer::attach(lm, &Folder::disk(&dir), &sha)
        .with_context(|| format!("loading the explainer in {}", dir.display()))?
    {
        Ok((tuned, info)) => Ok(Choice::Shipped(tuned, dir, info)),
        Err(why) => Ok(Choice::Untuned(why)),
    }
}
