//! The cached prefix: with LoRA on the top k layers only, the frozen layers below never
//! change, so their output for each example (the hidden states entering layer L−k, one row
//! per token) is computed once, kept on disk and memory-mapped, and every epoch runs only
//! the top k layers from it. A 30-layer model with k = 2 then trains about 15 times faster.
//!
//! Files: `<cache>/<model sha256, 16 hex>-p<depth>/<row digest>.<f16|f32>`, one per example
//! (so any subset reuses them, and a killed build resumes at the first missing one): the
//! magic `MQP1`, the value width in bytes, the row count (1) and the hidden size (u32
//! little-endian each), the row's token count, then its values.

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor, TensorData};
use model::{CausalLm, ModelError};

use crate::features::{Progress, digest_rows};

const MAGIC: &[u8; 4] = b"MQP1";

/// What the prefix is of, and where it is kept.
#[derive(Debug, Clone)]
pub struct PrefixSpec {
    pub model_sha256: String,
    /// Layers below the cached states: the trained layers start here.
    pub depth: usize,
    pub hidden_size: usize,
    pub pad_id: u32,
    pub batch_size: usize,
    pub cache: PathBuf,
    /// Keep f32 rather than f16 (twice the disk; exact, for tests).
    pub f32: bool,
}

impl PrefixSpec {
    fn folder(&self) -> PathBuf {
        let sha: String = self.model_sha256.chars().take(16).collect();
        self.cache.join(format!("{sha}-p{}", self.depth))
    }

    fn width(&self) -> usize {
        if self.f32 { 4 } else { 2 }
    }
}

struct Chunk {
    map: memmap2::Mmap,
    width: usize,
}

/// Memory-mapped prefix states of a list of examples.
pub struct PrefixCache {
    chunks: Vec<Chunk>,
    /// Per example: its chunk, the byte offset of its values, its token count.
    rows: Vec<(usize, usize, usize)>,
    hidden: usize,
}

fn header_len(rows: usize) -> usize {
    16 + 4 * rows
}

fn open_chunk(
    path: &Path,
    rows: usize,
    hidden: usize,
    width: usize,
) -> Option<(memmap2::Mmap, Vec<usize>)> {
    let file = std::fs::File::open(path).ok()?;
    // SAFETY: the file is ours, written whole under a temporary name and renamed; nothing
    // writes to a chunk after the rename, so the mapping does not change under us.
    let map = unsafe { memmap2::Mmap::map(&file) }.ok()?;
    let word = |at: usize| -> Option<usize> {
        Some(u32::from_le_bytes(map.get(at..at + 4)?.try_into().ok()?) as usize)
    };
    if map.get(..4)? != MAGIC || word(4)? != width || word(8)? != rows || word(12)? != hidden {
        return None;
    }
    let lens: Vec<usize> = (0..rows).map(|r| word(16 + 4 * r)).collect::<Option<_>>()?;
    let expected = header_len(rows) + lens.iter().sum::<usize>() * hidden * width;
    (map.len() == expected).then_some((map, lens))
}

fn write_chunk(
    path: &Path,
    rows: &[Vec<f32>],
    lens: &[usize],
    hidden: usize,
    width: usize,
) -> Result<(), ModelError> {
    let total: usize = lens.iter().sum();
    let mut bytes = Vec::with_capacity(header_len(rows.len()) + total * hidden * width);
    bytes.extend_from_slice(MAGIC);
    for v in [width, rows.len(), hidden] {
        bytes.extend_from_slice(&(v as u32).to_le_bytes());
    }
    for &l in lens {
        bytes.extend_from_slice(&(l as u32).to_le_bytes());
    }
    for v in rows.iter().flatten() {
        if width == 4 {
            bytes.extend_from_slice(&v.to_le_bytes());
        } else {
            bytes.extend_from_slice(&half::f16::from_f32(*v).to_le_bytes());
        }
    }
    model::io::write_atomic(path, &bytes)
}

/// The hidden states after the first `depth` layers of each row, without its padding.
fn compute(
    lm: &CausalLm,
    rows: &[Vec<u32>],
    spec: &PrefixSpec,
) -> Result<Vec<Vec<f32>>, ModelError> {
    let (states, _) = model::heads::probe::states_at_depths(lm, rows, &[spec.depth], spec.pad_id)?;
    unpad(
        states.into_iter().next().expect("one depth"),
        rows,
        spec.hidden_size,
    )
}

/// Each row's states `[tokens·hidden]` from a left-padded batch `[b, longest, hidden]`.
fn unpad(states: Tensor<3>, rows: &[Vec<u32>], h: usize) -> Result<Vec<Vec<f32>>, ModelError> {
    let [b, n, width] = states.dims();
    if b != rows.len() || width != h || rows.iter().any(|r| r.len() > n) {
        return Err(ModelError::Input(format!(
            "states of shape [{b}, {n}, {width}] do not hold {} rows of width {h}",
            rows.len()
        )));
    }
    let flat = model::io::values(states)?;
    Ok(rows
        .iter()
        .enumerate()
        .map(|(i, row)| {
            let start = (i * n + n - row.len()) * h;
            flat[start..start + row.len() * h].to_vec()
        })
        .collect())
}

/// The file of one row's states.
fn row_path(spec: &PrefixSpec, row: &[u32]) -> PathBuf {
    let ext = if spec.f32 { "f32" } else { "f16" };
    spec.folder().join(format!(
        "{}.{ext}",
        digest_rows(std::slice::from_ref(&row.to_vec()), spec.hidden_size)
    ))
}

/// Keeps states computed elsewhere (e.g. by `select`'s scoring pass, which runs the same
/// sequences through every layer): `states` is the left-padded batch `[b, longest, hidden]`
/// of `rows` after `spec.depth` layers. Rows already kept are left as they are. Returns how
/// many were written.
pub fn store(spec: &PrefixSpec, rows: &[Vec<u32>], states: Tensor<3>) -> Result<usize, ModelError> {
    let folder = spec.folder();
    std::fs::create_dir_all(&folder).map_err(|e| model::io::io_err(&folder, e))?;
    let (h, width) = (spec.hidden_size, spec.width());
    let mut written = 0;
    for (row, values) in rows.iter().zip(unpad(states, rows, h)?) {
        let path = row_path(spec, row);
        if open_chunk(&path, 1, h, width).is_none() {
            write_chunk(&path, &[values], &[row.len()], h, width)?;
            written += 1;
        }
    }
    Ok(written)
}

/// Builds (or reads) the prefix of every row (token ids, already cut to the maximum length)
/// with `lm` on an inference device. Each row's states are kept in a file of their own,
/// named by a digest of the row, so any subset or reordering of examples reuses them (the
/// pruned and unpruned training sets of one selection share one build), and a killed build
/// resumes at the first missing row. The missing rows run longest-first in batches of
/// similar length, so little of a batch is padding.
pub fn build(
    lm: &CausalLm,
    rows: &[Vec<u32>],
    spec: &PrefixSpec,
    mut on_progress: impl FnMut(Progress),
) -> Result<PrefixCache, ModelError> {
    if spec.depth >= lm.model.layers.len() {
        return Err(ModelError::Input(format!(
            "a prefix of {} layers leaves none of the model's {} to train",
            spec.depth,
            lm.model.layers.len()
        )));
    }
    if let Some(i) = rows.iter().position(Vec::is_empty) {
        return Err(ModelError::Input(format!("example {i} has no tokens")));
    }
    let folder = spec.folder();
    std::fs::create_dir_all(&folder).map_err(|e| model::io::io_err(&folder, e))?;
    let (h, width) = (spec.hidden_size, spec.width());
    let ext = if spec.f32 { "f32" } else { "f16" };
    let paths: Vec<PathBuf> = rows
        .iter()
        .map(|row| {
            folder.join(format!(
                "{}.{ext}",
                digest_rows(std::slice::from_ref(row), h)
            ))
        })
        .collect();
    let mut progress = Progress {
        rows_total: rows.len(),
        ..Progress::default()
    };
    // Rows already kept (a duplicate row is computed once).
    let mut missing: Vec<usize> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (i, path) in paths.iter().enumerate() {
        if open_chunk(path, 1, h, width).is_some() {
            progress.rows_cached += 1;
            progress.rows_done += 1;
        } else if seen.insert(path) {
            missing.push(i);
        } else {
            progress.rows_done += 1;
        }
    }
    on_progress(progress);
    missing.sort_by_key(|&i| std::cmp::Reverse(rows[i].len()));
    for batch in missing.chunks(spec.batch_size.max(1)) {
        let batch_rows: Vec<Vec<u32>> = batch.iter().map(|&i| rows[i].clone()).collect();
        for (&i, states) in batch.iter().zip(compute(lm, &batch_rows, spec)?) {
            write_chunk(&paths[i], &[states], &[rows[i].len()], h, width)?;
        }
        progress.rows_done += batch.len();
        progress.tokens_computed += batch_rows.iter().map(Vec::len).sum::<usize>();
        on_progress(progress);
    }
    let mut cache = PrefixCache {
        chunks: Vec::with_capacity(rows.len()),
        rows: Vec::with_capacity(rows.len()),
        hidden: h,
    };
    for (row, path) in rows.iter().zip(&paths) {
        let (map, lens) = open_chunk(path, 1, h, width).ok_or_else(|| ModelError::Config {
            path: path.clone(),
            reason: "a prefix file just written does not read back".into(),
        })?;
        if lens[0] != row.len() {
            return Err(ModelError::Config {
                path: path.clone(),
                reason: format!("holds {} tokens for a row of {}", lens[0], row.len()),
            });
        }
        cache
            .rows
            .push((cache.chunks.len(), header_len(1), row.len()));
        cache.chunks.push(Chunk { map, width });
    }
    Ok(cache)
}

impl PrefixCache {
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Example `i`'s token count.
    pub fn row_len(&self, i: usize) -> usize {
        self.rows[i].2
    }

    /// Example `i`'s states, `[tokens·hidden]`.
    pub fn row(&self, i: usize) -> Vec<f32> {
        let (c, at, len) = self.rows[i];
        let chunk = &self.chunks[c];
        let bytes = &chunk.map[at..at + len * self.hidden * chunk.width];
        if chunk.width == 4 {
            bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect()
        } else {
            bytes
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect()
        }
    }

    /// Examples `idx` as one left-padded batch `[b, longest, hidden]` (zeros at padding, which
    /// the attention mask and the pooled mean leave out) and its mask.
    pub fn batch(
        &self,
        idx: &[usize],
        device: &Device,
    ) -> Result<(Tensor<3>, Vec<Vec<bool>>), ModelError> {
        if let Some(&bad) = idx.iter().find(|&&i| i >= self.rows.len()) {
            return Err(ModelError::Input(format!(
                "example {bad} is outside the prefix cache of {}",
                self.rows.len()
            )));
        }
        let h = self.hidden;
        let n = idx.iter().map(|&i| self.rows[i].2).max().unwrap_or(0);
        let mut values = vec![0f32; idx.len() * n * h];
        let mut valid = Vec::with_capacity(idx.len());
        for (b, &i) in idx.iter().enumerate() {
            let len = self.rows[i].2;
            let start = (b * n + n - len) * h;
            values[start..start + len * h].copy_from_slice(&self.row(i));
            let mut mask = vec![false; n - len];
            mask.extend(std::iter::repeat_n(true, len));
            valid.push(mask);
        }
        Ok((
            Tensor::from_data(TensorData::new(values, [idx.len(), n, h]), device),
            valid,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_round_trip_and_reject_other_shapes() {
        let dir = std::env::temp_dir().join(format!("mentalqlm-prefix-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.f32");
        let rows = vec![vec![1.0, 2.0, 3.0, 4.0], vec![5.0, 6.0]];
        write_chunk(&path, &rows, &[2, 1], 2, 4).unwrap();
        let (map, lens) = open_chunk(&path, 2, 2, 4).unwrap();
        assert_eq!(lens, vec![2, 1]);
        assert_eq!(map.len(), header_len(2) + 6 * 4);
        assert!(open_chunk(&path, 2, 3, 4).is_none(), "another hidden size");
        assert!(open_chunk(&path, 2, 2, 2).is_none(), "another width");
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 4]).unwrap();
        assert!(open_chunk(&path, 2, 2, 4).is_none(), "a truncated file");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
