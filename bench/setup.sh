#!/usr/bin/env bash
# Makes bench/.venv, the reference sides of `bench/run.py`: torch, transformers and PEFT at
# pinned versions, plus gguf (transformers reads and dequantizes GGUF files with it) and
# accelerate (PEFT requires it); and llama-cpp-python, built here from its source with this
# CPU's own instructions (`GGML_NATIVE`; a few minutes on 2 cores, needs gcc). On Linux
# x86_64 torch pulls the nvidia-* CUDA wheels, several GiB; the benchmark is not part of CI.
#
# Idempotent: does nothing when the venv already has exactly these versions.
set -euo pipefail
cd "$(dirname "$0")/.."

PINS=(torch==2.15.0 transformers==5.24.0 peft==0.21.2 gguf==0.19.0 accelerate==1.15.0
      llama-cpp-python==0.3.36)
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
# From source (never a prebuilt wheel), for this CPU: llama.cpp's own CPU backend, as its
# users build it.
CMAKE_ARGS="-DGGML_NATIVE=ON -DGGML_CUDA=OFF" \
  "$PY" -m pip install --quiet --disable-pip-version-check --no-binary llama-cpp-python "${PINS[@]}"
have_pins || { echo "error: $VENV still lacks one of ${PINS[*]}" >&2; exit 1; }
echo "ok: wrote $VENV"
