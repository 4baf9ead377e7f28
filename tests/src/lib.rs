//! Integration tests of mentalqlm against committed fixtures (tests/fixtures), made by the
//! scripts in tests/scripts. One test binary keeps link time low: every test module is a
//! `#[cfg(test)]` module of this library.

use std::path::PathBuf;

use burn::tensor::Device;

/// `tests/fixtures/<rel>`.
pub fn fixture(rel: &str) -> PathBuf {
    manifest_dir().join("fixtures").join(rel)
}

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    manifest_dir().join("..")
}

pub fn cpu() -> Device {
    Device::flex()
}

/// The wgpu device (Mesa's software Vulkan on a machine without a GPU), initialised once per
/// process (wgpu refuses a second initialisation). A missing adapter is a test failure, not a
/// skip, unless `MENTALQLM_SKIP_WGPU=1` says so explicitly.
pub fn wgpu() -> Option<Device> {
    static WGPU: std::sync::OnceLock<Result<Device, String>> = std::sync::OnceLock::new();
    match WGPU.get_or_init(|| Device::wgpu_options().init().map_err(|e| format!("{e:?}"))) {
        Ok(device) => Some(device.clone()),
        Err(e) => {
            if std::env::var("MENTALQLM_SKIP_WGPU").as_deref() == Ok("1") {
                eprintln!("SKIPPED: no wgpu adapter ({e}) and MENTALQLM_SKIP_WGPU=1");
                None
            } else {
                panic!(
                    "no wgpu adapter: {e}. Install mesa-vulkan-drivers (scripts/setup.sh) or set MENTALQLM_SKIP_WGPU=1"
                );
            }
        }
    }
}

/// Values uniform in `[lo, hi)` from a generator seeded here, on the host: the devices'
/// random streams are shared by every test thread, and the training tests reseed the CPU's
/// under `rng_lock` and must be the only ones drawing from it.
pub fn uniform<const D: usize>(
    shape: [usize; D],
    (lo, hi): (f64, f64),
    seed: u64,
    device: &Device,
) -> burn::tensor::Tensor<D> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let n = shape.iter().product();
    let values: Vec<f32> = (0..n).map(|_| rng.random_range(lo..hi) as f32).collect();
    burn::tensor::Tensor::from_data(burn::tensor::TensorData::new(values, shape), device)
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[cfg(test)]
mod activation;
#[cfg(test)]
mod batching;
#[cfg(test)]
mod chat_format;
#[cfg(test)]
mod classifier;
#[cfg(test)]
mod inference_ops;
#[cfg(test)]
mod kernels;
#[cfg(test)]
mod lora;
#[cfg(test)]
mod model_errors;
#[cfg(test)]
mod model_gguf;
#[cfg(test)]
mod model_memory;
#[cfg(test)]
mod model_parity;
#[cfg(test)]
mod model_score;
#[cfg(test)]
mod select;
#[cfg(test)]
mod seq2seq;
#[cfg(test)]
mod sft;
#[cfg(test)]
mod train_checks;
#[cfg(test)]
mod vocab_nll;

/// Held by tests that train: updates reseed the CPU device's random stream (LoRA dropout),
/// which every test thread shares, so they take turns.
pub fn rng_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// A fresh, empty scratch folder under the system temp dir, unique per call.
pub fn scratch(tag: &str) -> PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "mentalqlm-test-{}-{tag}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// Copies the files of a fixture model folder into a scratch folder.
pub fn copy_fixture_model(name: &str, tag: &str) -> PathBuf {
    let dir = scratch(tag);
    for entry in std::fs::read_dir(fixture(name)).expect("fixture dir") {
        let entry = entry.expect("dir entry");
        std::fs::copy(entry.path(), dir.join(entry.file_name())).expect("copy fixture file");
    }
    dir
}

/// A JSON matrix (list of lists of numbers) flattened row-major to f32.
pub fn json_matrix(v: &serde_json::Value) -> Vec<f32> {
    v.as_array()
        .expect("a JSON list")
        .iter()
        .flat_map(|row| {
            row.as_array()
                .expect("a JSON row")
                .iter()
                .map(|x| x.as_f64().expect("a number") as f32)
        })
        .collect()
}

/// Full-sequence logits `[seq * vocab]` of one unpadded row, computed from an empty cache.
pub fn full_logits(model: &model::CausalLm, row: &[u32]) -> Vec<f32> {
    chunked_logits(model, &[row]).pop().expect("one chunk")
}

/// The logits `[len * vocab]` of each chunk of one unpadded row, fed one after another
/// through the same cache (a prefix, then decoding steps).
pub fn chunked_logits(model: &model::CausalLm, chunks: &[&[u32]]) -> Vec<Vec<f32>> {
    let rope = model.rope(chunks.iter().map(|c| c.len()).sum());
    let mut cache = model.new_cache();
    chunks
        .iter()
        .map(|chunk| {
            let ids = vec![chunk.to_vec()];
            let valid = vec![vec![true; chunk.len()]];
            let batch = model::decoder::TokenBatch {
                ids: &ids,
                valid: &valid,
            };
            let logits = model.forward(batch, &rope, &mut cache).expect("forward");
            logits.into_data().try_to_vec().expect("readback")
        })
        .collect()
}

/// `log Σ exp(row)`, in f64.
pub fn logsumexp(row: &[f32]) -> f64 {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    max + row
        .iter()
        .map(|&v| (v as f64 - max).exp())
        .sum::<f64>()
        .ln()
}

/// The package folder, read when the test runs (cargo sets it), so a test binary built in
/// another clone sharing the target folder still reads this clone's fixtures.
fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// A folder on disk, as the loaders take it.
pub fn disk(path: &std::path::Path) -> formats::Folder {
    formats::Folder::disk(path)
}
