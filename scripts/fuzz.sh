#!/usr/bin/env bash
# The full fuzz run behind the README's figures: 100,000 cases per format by default.
#   scripts/fuzz.sh [CASES] [more `mentalqlm-fuzz run` options, e.g. --target gguf --json]
# Findings (inputs that panicked, hung, over-allocated or got an error naming no file) are
# saved under fuzz-findings/ for `mentalqlm-fuzz replay --target T DIR`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
cases="${1:-100000}"
[ $# -gt 0 ] && shift
# --workspace, as everywhere: a `-p` build would compile Burn a second time.
cargo build --release --workspace
exec "$CARGO_TARGET_DIR/release/mentalqlm-fuzz" run --target all --cases "$cases" --out fuzz-findings "$@"
