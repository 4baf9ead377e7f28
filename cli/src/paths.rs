//! Where the CLI finds and keeps things on disk: the shipped classifiers, and the user's cache
//! folder (never a checkout). The edge of the program, so it may read `HOME` and its own
//! source location.

use std::path::{Path, PathBuf};

/// The shipped classifiers, one folder per task, beside the default model.
pub const SHIPPED: &str = "classifiers";

/// The folder of shipped classifiers: `--classifiers DIR`, else `classifiers/` in the
/// working directory, else the one in the source tree this binary was built from.
pub fn shipped_root(flag: Option<&Path>) -> Option<PathBuf> {
    if let Some(dir) = flag {
        return Some(dir.to_path_buf());
    }
    [
        PathBuf::from(SHIPPED),
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(SHIPPED),
    ]
    .into_iter()
    .find(|c| c.is_dir())
}

/// The default cache of pooled features: `~/.cache/mentalqlm/features`.
pub fn default_cache() -> Option<PathBuf> {
    user_cache("features")
}

/// `~/.cache/mentalqlm/<kind>`: caches live in the user's cache folder, never in a checkout.
pub fn user_cache(kind: &str) -> Option<PathBuf> {
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/mentalqlm").join(kind))
}
