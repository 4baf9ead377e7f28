#!/usr/bin/env bash
# The project's tests: every crate, in release (the same build of Burn as the CLI), then the
# web page end to end in headless Chromium against the CLI's numbers.
# Ends with one total line, "N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
# Runs a command and prints how long it took, so a slow phase shows in the log.
phase() {
  local name="$1" start=$SECONDS rc=0
  shift
  "$@" || rc=$?
  echo "phase: $name took $((SECONDS - start)) s (exit $rc)"
  return "$rc"
}
phase "setup" bash -c 'bash scripts/setup.sh --deps-only && bash scripts/setup-model.sh'
log="$(mktemp)"
native=""
trap 'rm -f "$log" $native' EXIT
status=0
phase "tests" cargo test --release --workspace --no-fail-fast --lib --bins --tests "$@" 2>&1 | tee "$log" || status=$?

# The browser tests compare the page with the CLI binary, so both are built first. The CLI
# is built with --workspace like the tests above: a `-p mentalqlm` build unifies Burn's
# features differently and compiled Burn a second time (16 minutes on 2 cores).
if [ $# -eq 0 ]; then
  # The tests above built every native crate, so this build must compile no Burn crate;
  # a line "Compiling burn-" here means two feature sets of Burn, and fails the run.
  native="$(mktemp)"
  { phase "native build" cargo build --release --workspace 2>&1 | tee "$native" \
      && { ! grep -m1 '^ *Compiling burn-' "$native" \
           || { echo "error: the CLI build compiled Burn again (a second feature set)"; false; }; } \
      && phase "wasm build" bash web/build.sh \
      && (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error) \
      && phase "browser tests" bash -c 'cd tests/browser && node --test --test-concurrency=1 --test-reporter=spec'; } 2>&1 | tee -a "$log" || status=$?
fi

awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     /^ℹ pass [0-9]+$/ { p += $3 } /^ℹ fail [0-9]+$/ { f += $3 }
     END { printf "%d passed, %d failed\n", p, f }' "$log"
exit "$status"
