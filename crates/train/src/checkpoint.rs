//! Checkpoints of a run: `OUT/checkpoints/step-00000012/` holds the trainable tensors
//! (`trainable.safetensors`), AdamW's moments (`optimizer.safetensors`) and `state.json`
//! (the step, the run's settings and the loop's own state). A checkpoint is written into a
//! hidden temporary folder and renamed into place, so a kill at any moment leaves the last
//! complete one; `--resume` continues from the newest.

use std::path::{Path, PathBuf};

use model::ModelError;
use model::io::io_err;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::optim::{AdamW, Trainable};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckpointState {
    /// Optimizer updates done: the run continues with update `step + 1`.
    pub step: usize,
    /// The settings that fix the run's course (data, order, schedule): a resumed run must
    /// have the same.
    pub settings: Value,
    /// The loop's own state (plateau scheduler, best score, ...).
    pub run: Value,
}

fn bad(path: &Path, reason: impl Into<String>) -> ModelError {
    ModelError::Config {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// A cheap fingerprint of tokenised examples (each its ids and one tag: the label or the
/// answer start), stored in a checkpoint's settings so a resumed run is refused on other data.
pub fn data_digest<'a>(rows: impl ExactSizeIterator<Item = (&'a [u32], u32)>) -> String {
    let n = rows.len();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (ids, tag) in rows {
        for &t in ids.iter().chain([&tag, &u32::MAX]) {
            h = (h ^ t as u64).wrapping_mul(0x0000_0100_0000_01B3);
        }
    }
    format!("{n}:{h:016x}")
}

/// The generator that orders epoch `epoch` of a run seeded with `seed`: a function of the
/// two alone, so a resumed run sees the same order.
pub fn epoch_rng(seed: u64, epoch: usize) -> rand::rngs::StdRng {
    rand::SeedableRng::seed_from_u64(seed ^ (epoch as u64).wrapping_mul(0xA24B_AED4_963E_E407))
}

pub fn checkpoints_dir(out: &Path) -> PathBuf {
    out.join("checkpoints")
}

/// Complete checkpoints under `out`, oldest first, with their steps.
pub fn list(out: &Path) -> Result<Vec<(usize, PathBuf)>, ModelError> {
    let dir = checkpoints_dir(out);
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&dir).map_err(|e| io_err(&dir, e))? {
        let path = entry.map_err(|e| io_err(&dir, e))?.path();
        let step = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("step-"))
            .and_then(|n| n.parse::<usize>().ok());
        if let Some(step) = step
            && path.join("state.json").exists()
        {
            found.push((step, path));
        }
    }
    found.sort();
    Ok(found)
}

/// Writes a checkpoint after update `state.step` and keeps only the newest `keep`.
pub fn save(
    out: &Path,
    model: &mut impl Trainable,
    optim: &AdamW,
    state: &CheckpointState,
    keep: usize,
) -> Result<PathBuf, ModelError> {
    let dir = checkpoints_dir(out);
    let name = format!("step-{:08}", state.step);
    let tmp = dir.join(format!(".{name}.tmp"));
    let done = dir.join(&name);
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| io_err(&tmp, e))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| io_err(&tmp, e))?;
    model::io::write_safetensors(
        &tmp.join("trainable.safetensors"),
        &model.trainable_tensors()?,
    )?;
    model::io::write_safetensors(&tmp.join("optimizer.safetensors"), &optim.state_tensors()?)?;
    let text = serde_json::to_string_pretty(state).map_err(|e| bad(&tmp, e.to_string()))?;
    model::io::write_atomic(&tmp.join("state.json"), text.as_bytes())?;
    if done.exists() {
        std::fs::remove_dir_all(&done).map_err(|e| io_err(&done, e))?;
    }
    std::fs::rename(&tmp, &done).map_err(|e| io_err(&done, e))?;
    let all = list(out)?;
    for (step, old) in all.iter().take(all.len().saturating_sub(keep.max(1))) {
        // Out of `list`'s sight first: a kill during the removal leaves no half checkpoint
        // that looks whole.
        let trash = dir.join(format!(".step-{step:08}.old"));
        std::fs::rename(old, &trash).map_err(|e| io_err(old, e))?;
        std::fs::remove_dir_all(&trash).map_err(|e| io_err(&trash, e))?;
    }
    Ok(done)
}

/// The first setting whose value differs between two runs, as `path: old → new`.
fn difference(old: &Value, new: &Value) -> Option<String> {
    fn walk(path: &str, old: Option<&Value>, new: Option<&Value>) -> Option<String> {
        if let (Some(Value::Object(a)), Some(Value::Object(b))) = (old, new) {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            return keys.into_iter().find_map(|k| {
                let sub = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                walk(&sub, a.get(k), b.get(k))
            });
        }
        let show = |v: Option<&Value>| v.map_or("(none)".into(), Value::to_string);
        (old != new).then(|| format!("{path}: {} → {}", show(old), show(new)))
    }
    walk("", Some(old), Some(new))
}

/// Restores the newest checkpoint under `out` into `model` and `optim`, after checking it
/// was made with the same `settings`.
pub fn restore(
    out: &Path,
    model: &mut impl Trainable,
    optim: &mut AdamW,
    settings: &Value,
) -> Result<CheckpointState, ModelError> {
    let Some((_, dir)) = list(out)?.pop() else {
        return Err(bad(
            &checkpoints_dir(out),
            "no checkpoint to resume from (the run saved none yet; start it again without --resume)",
        ));
    };
    let state_path = dir.join("state.json");
    let text = std::fs::read_to_string(&state_path).map_err(|e| io_err(&state_path, e))?;
    let state: CheckpointState =
        serde_json::from_str(&text).map_err(|e| bad(&state_path, e.to_string()))?;
    if let Some(diff) = difference(&state.settings, settings) {
        return Err(bad(
            &state_path,
            format!(
                "the run was started with other settings ({diff}); resume it with the same options"
            ),
        ));
    }
    let trainable = dir.join("trainable.safetensors");
    model.load_trainable(
        &model::io::read_safetensors(&trainable)?,
        &trainable.display().to_string(),
    )?;
    let moments = dir.join("optimizer.safetensors");
    optim.load_state(
        &model::io::read_safetensors(&moments)?,
        state.step as u64,
        model,
        &moments.display().to_string(),
    )?;
    Ok(state)
}
