#!/usr/bin/env bash
# The project's tests: every crate, in release (the same build of Burn as the CLI).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
bash scripts/setup.sh --deps-only
bash scripts/setup-model.sh
cargo test --release --workspace "$@"
