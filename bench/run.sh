#!/usr/bin/env bash
# The end-to-end benchmark against PyTorch in one command: makes bench/.venv, builds the CLI
# into bin/, fetches the default model, then runs bench/run.py with these arguments
# (`bash bench/run.sh --help` lists them; paths are relative to the repository root).
# Writes reports/bench/e2e.json.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

# Help needs no build.
case " $* " in *" -h "* | *" --help "*) exec python3 bench/run.py --help ;; esac
bash bench/setup.sh
echo "bench: building the CLI (release)"
cargo build --release --workspace
mkdir -p bin
cp -f "$CARGO_TARGET_DIR/release/mentalqlm" bin/mentalqlm
bash scripts/setup-model.sh
python3 bench/run.py "$@"
