#!/usr/bin/env bash
# Rebuilds every shipped classifier (classifiers/<task>/) from ../shared/data with the
# default model: a head-only classifier per task over the frozen model's pooled hidden
# states, the recipe chosen on validation, fitted again on training + validation (--refit),
# then scored once on the test split.
#
#   scripts/train-classifiers.sh [--out DIR] [extra `train classifier` options]
#
# About 50 minutes on 2 cores, nearly all of it the features of ~20,000 texts, which are
# cached under ~/.cache/mentalqlm/features: a run that is cut short continues where it
# stopped when run again, and a second run takes a minute or two. Uses a GPU where one
# exists (--device auto), the CPU otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
DATA="${DATA:-../shared/data}"
out="classifiers"
if [ "${1:-}" = "--out" ]; then out="$2"; shift 2; fi
# The same build as the tests (--workspace: one feature set of Burn); quick when current.
cargo build --release --workspace
mkdir -p bin && cp -f "$CARGO_TARGET_DIR/release/mentalqlm" bin/mentalqlm
bash scripts/setup-model.sh >/dev/null
bin/mentalqlm train classifier --mode head --task all \
  --data "$DATA/imhi" --dep-severity "$DATA/dep-severity/english.csv" \
  --refit --score-test --out "$out" "$@"
