#!/usr/bin/env bash
# Makes bench/.venv, the PyTorch reference side of `bench/run.py`: torch, transformers and
# PEFT at pinned versions, plus gguf (transformers reads and dequantizes GGUF files with it)
# and accelerate (PEFT requires it). On Linux x86_64 torch pulls the nvidia-* CUDA wheels,
# several GiB; the benchmark is not part of CI.
#
# Idempotent: does nothing when the venv already has exactly these versions.
set -euo pipefail
cd "$(dirname "$0")/.."

PINS=(torch==2.15.0 transformers==5.24.0 peft==0.21.2 gguf==0.19.0 accelerate==1.15.0)
VENV=bench/.venv
PY="$VENV/bin/python"

# True when every pin is installed at its version.
have_pins() {
  [ -x "$PY" ] || return 1
  "$PY" - "${PINS[@]}" <<'EOF'
import sys
from importlib.metadata import version, PackageNotFoundError
for pin in sys.argv[1:]:
    name, want = pin.split("==")
    try:
        if version(name) != want:
            sys.exit(1)
    except PackageNotFoundError:
        sys.exit(1)
EOF
}

if have_pins; then
  echo "ok: $VENV has ${PINS[*]}"
  exit 0
fi
[ -x "$PY" ] || python3 -m venv "$VENV"
echo "bench setup: installing ${PINS[*]} into $VENV (several GiB, a few minutes)"
"$PY" -m pip install --quiet --disable-pip-version-check "${PINS[@]}"
have_pins || { echo "error: $VENV still lacks one of ${PINS[*]}" >&2; exit 1; }
echo "ok: wrote $VENV"
