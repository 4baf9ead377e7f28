#!/usr/bin/env bash
# The project's tests: every crate, in release (the same build of Burn as the CLI), then the
# web page end to end in headless Chromium against the CLI's numbers.
# Ends with one total line, "N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
bash scripts/setup.sh --deps-only
bash scripts/setup-model.sh
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
status=0
cargo test --release --workspace --no-fail-fast --lib --bins --tests "$@" 2>&1 | tee "$log" || status=$?

# The browser tests compare the page with the CLI binary, so both are built first.
if [ $# -eq 0 ]; then
  { cargo build --release -p mentalqlm && bash web/build.sh \
      && (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error) \
      && (cd tests/browser && node --test --test-concurrency=1 --test-reporter=spec); } 2>&1 | tee -a "$log" || status=$?
fi

awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     /^ℹ pass [0-9]+$/ { p += $3 } /^ℹ fail [0-9]+$/ { f += $3 }
     END { printf "%d passed, %d failed\n", p, f }' "$log"
exit "$status"
