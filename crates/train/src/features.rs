//! Pooled hidden states of the frozen base model for many texts, computed once and cached on
//! disk. The base model never changes while a head-only classifier trains, so its features
//! are a pure function of (model, depth, cut, token ids): the cache is keyed by exactly that,
//! and a run that was cut short picks up at the first chunk it had not written.
//!
//! Several cuts (pooled over a row's first 192 tokens, over its first 384, ...) come from one
//! pass over rows cut to the longest: the model is causal (see `pooled_features`).
//!
//! Layout: `<cache>/<model sha256, 16 hex>-d<depth>-c<cut>/<chunk digest>.f16`, one file per
//! depth, cut and chunk of [`CHUNK`] consecutive rows (so any subset reuses them): the magic
//! `MQF1`, the row and feature counts (u32 little-endian), then the features as f16. Each is
//! written to a temporary name and renamed; a file of the wrong size is computed again.

use std::path::{Path, PathBuf};

use model::CausalLm;
use model::ModelError;
use model::heads::probe::pooled_features;

/// Rows per cache file: at most this much work is lost when a run is killed.
pub const CHUNK: usize = 64;
const MAGIC: &[u8; 4] = b"MQF1";

/// What the features are of.
#[derive(Debug, Clone)]
pub struct FeatureSpec {
    pub model_sha256: String,
    pub depths: Vec<usize>,
    /// Tokens pooled, per feature block: each cut gives every depth (cut-major).
    pub cuts: Vec<usize>,
    pub hidden_size: usize,
    pub pad_id: u32,
    /// Rows per forward pass; rows are sorted by length within a chunk so padding stays small.
    pub batch_size: usize,
    /// Where chunks are kept; `None` computes everything in memory.
    pub cache: Option<PathBuf>,
}

impl FeatureSpec {
    pub fn dim(&self) -> usize {
        self.cuts.len() * self.depths.len() * self.hidden_size
    }

    /// The cache folder of each feature block, in the features' order.
    fn folders(&self) -> Option<Vec<PathBuf>> {
        let sha: String = self.model_sha256.chars().take(16).collect();
        self.cache.as_ref().map(|root| {
            self.cuts
                .iter()
                .flat_map(|c| {
                    let sha = &sha;
                    self.depths
                        .iter()
                        .map(move |d| root.join(format!("{sha}-d{d}-c{c}")))
                })
                .collect()
        })
    }
}

/// Progress of an extraction, for the caller's bar.
#[derive(Debug, Clone, Copy, Default)]
pub struct Progress {
    pub rows_done: usize,
    pub rows_total: usize,
    /// Tokens run through the model so far (cached rows count none).
    pub tokens_computed: usize,
    pub rows_cached: usize,
}

/// The cache name of a chunk of rows: a digest of their ids and the model's width.
pub(crate) fn digest_rows(rows: &[Vec<u32>], hidden: usize) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |v: u64| h = (h ^ v).wrapping_mul(0x0000_0100_0000_01B3);
    eat(hidden as u64);
    for row in rows {
        for &t in row {
            eat(t as u64);
        }
        eat(u64::MAX);
    }
    format!("{:016x}-{}", h, rows.len())
}

fn read_chunk(path: &Path, rows: usize, dim: usize) -> Option<Vec<Vec<f32>>> {
    let bytes = std::fs::read(path).ok()?;
    if bytes.len() != 12 + rows * dim * 2 || &bytes[..4] != MAGIC {
        return None;
    }
    let r = u32::from_le_bytes(bytes[4..8].try_into().ok()?) as usize;
    let d = u32::from_le_bytes(bytes[8..12].try_into().ok()?) as usize;
    if r != rows || d != dim {
        return None;
    }
    let values: Vec<f32> = bytes[12..]
        .chunks_exact(2)
        .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
        .collect();
    Some(values.chunks(dim).map(<[f32]>::to_vec).collect())
}

fn write_chunk(path: &Path, features: &[Vec<f32>], dim: usize) -> Result<(), ModelError> {
    let mut bytes = Vec::with_capacity(12 + features.len() * dim * 2);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&(features.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&(dim as u32).to_le_bytes());
    for v in features.iter().flatten() {
        bytes.extend_from_slice(&half::f16::from_f32(*v).to_le_bytes());
    }
    model::io::write_atomic(path, &bytes)
}

/// The features of every row (token ids, already cut to the longest cut), in order.
/// Cached features are stored in f16, and so are returned rounded to f16 either way, so a
/// run reads the same values whether or not its cache was warm.
pub fn extract(
    lm: &CausalLm,
    rows: &[Vec<u32>],
    spec: &FeatureSpec,
    mut on_progress: impl FnMut(Progress),
) -> Result<Vec<Vec<f32>>, ModelError> {
    // Checked here, not only in `pooled_features`: a warm cache never reaches it.
    if spec.cuts.is_empty() || spec.cuts.contains(&0) {
        return Err(ModelError::Input(format!(
            "pooling needs cuts of at least one token, got {:?}",
            spec.cuts
        )));
    }
    let dim = spec.dim();
    let h = spec.hidden_size;
    let folders = spec.folders();
    for f in folders.iter().flatten() {
        std::fs::create_dir_all(f).map_err(|e| model::io::io_err(f, e))?;
    }
    let mut progress = Progress {
        rows_total: rows.len(),
        ..Progress::default()
    };
    let mut out = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(CHUNK) {
        let name = format!("{}.f16", digest_rows(chunk, spec.hidden_size));
        let paths: Option<Vec<PathBuf>> = folders
            .as_ref()
            .map(|fs| fs.iter().map(|f| f.join(&name)).collect());
        let cached: Option<Vec<Vec<Vec<f32>>>> = paths.as_ref().and_then(|ps| {
            ps.iter()
                .map(|p| read_chunk(p, chunk.len(), h))
                .collect::<Option<Vec<_>>>()
        });
        if let Some(per_block) = cached {
            for i in 0..chunk.len() {
                out.push(
                    per_block
                        .iter()
                        .flat_map(|d| d[i].iter().copied())
                        .collect(),
                );
            }
            progress.rows_done += chunk.len();
            progress.rows_cached += chunk.len();
            on_progress(progress);
            continue;
        }
        let mut order: Vec<usize> = (0..chunk.len()).collect();
        order.sort_by_key(|&i| chunk[i].len());
        let mut features = vec![Vec::new(); chunk.len()];
        for batch in order.chunks(spec.batch_size.max(1)) {
            let batch_rows: Vec<Vec<u32>> = batch.iter().map(|&i| chunk[i].clone()).collect();
            let pooled = pooled_features(lm, &batch_rows, &spec.depths, &spec.cuts, spec.pad_id)?;
            for (&i, f) in batch.iter().zip(pooled) {
                features[i] = f.iter().map(|&v| half::f16::from_f32(v).to_f32()).collect();
            }
            progress.rows_done += batch.len();
            progress.tokens_computed += batch_rows.iter().map(Vec::len).sum::<usize>();
            on_progress(progress);
        }
        for (k, p) in paths.iter().flatten().enumerate() {
            let part: Vec<Vec<f32>> = features
                .iter()
                .map(|f| f[k * h..(k + 1) * h].to_vec())
                .collect();
            write_chunk(p, &part, h)?;
        }
        debug_assert!(features.iter().all(|f| f.len() == dim));
        out.extend(features);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_round_trip_and_corrupt_files_are_ignored() {
        let dir = std::env::temp_dir().join(format!("mentalqlm-feat-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.f16");
        let features = vec![vec![0.5, -1.25, 3.0], vec![2.0, 0.0, -0.125]];
        write_chunk(&path, &features, 3).unwrap();
        assert_eq!(read_chunk(&path, 2, 3).unwrap(), features);
        assert!(read_chunk(&path, 3, 3).is_none(), "another row count");
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
        assert!(read_chunk(&path, 2, 3).is_none(), "a truncated file");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn digest_depends_on_ids_and_width() {
        let a = digest_rows(&[vec![1, 2], vec![3]], 4);
        assert_ne!(a, digest_rows(&[vec![1], vec![2, 3]], 4));
        assert_ne!(a, digest_rows(&[vec![1, 2], vec![3]], 8));
        assert_eq!(a, digest_rows(&[vec![1, 2], vec![3]], 4));
    }
}
