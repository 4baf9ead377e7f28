#!/usr/bin/env bash
# Builds the web app's wasm module into web/pkg (wasm-bindgen glue included).
#
#   web/build.sh            build
#   web/build.sh --serve    build, then serve web/ on http://127.0.0.1:8080/
#   web/build.sh --release  build, then assemble the static bundle in web/dist (web/bundle.sh)
#
# Needs the wasm32 target and wasm-bindgen-cli at exactly the version in Cargo.lock; both
# are installed when missing (wasm-bindgen-cli once, about 10 minutes on 2 cores).
# Set WASM_OPT=1 to shrink the module with binaryen's wasm-opt: a native one if it is 116 or
# newer (Debian's 108 breaks the module), else npm's binaryen package at BINARYEN_VERSION
# (compiled to JavaScript: about 8 minutes on 2 cores for this module).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  rustup target add wasm32-unknown-unknown
fi

want="$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)"
have="$(wasm-bindgen --version 2>/dev/null | awk '{print $2}' || true)"
if [ "$have" != "$want" ]; then
  echo "installing wasm-bindgen-cli $want (found: ${have:-none})"
  # Not --locked: the registry here may lag the versions its lock file names.
  # A debug build with light optimisation: several times quicker to compile than release,
  # and fast enough for a module this size.
  CARGO_PROFILE_DEV_OPT_LEVEL=1 CARGO_PROFILE_DEV_DEBUG=0 \
    CARGO_TARGET_DIR="$(dirname "$CARGO_TARGET_DIR")/wasm-bindgen-cli" \
    cargo install --debug --force wasm-bindgen-cli --version "$want"
fi

cargo build --release --target wasm32-unknown-unknown -p mentalqlm-web
wasm="$CARGO_TARGET_DIR/wasm32-unknown-unknown/release/mentalqlm_web.wasm"
rm -rf web/pkg
wasm-bindgen --target web --no-typescript --out-dir web/pkg "$wasm"

if [ "${WASM_OPT:-0}" = 1 ]; then
  v="$(wasm-opt --version 2>/dev/null | grep -oE '[0-9]+' | head -1 || true)"
  if [ -n "$v" ] && [ "$v" -ge 116 ]; then
    opt=(wasm-opt)
  else
    if [ -n "$v" ]; then why="wasm-opt $v is too old (116 or later; 108 breaks the module)"; else why="no wasm-opt here"; fi
    echo "WASM_OPT=1: $why; using npm's binaryen ${BINARYEN_VERSION:-132.0.0}"
    opt=(npm exec --yes --package="binaryen@${BINARYEN_VERSION:-132.0.0}" -- wasm-opt)
  fi
  before=$(stat -c %s web/pkg/mentalqlm_web_bg.wasm)
  "${opt[@]}" -Oz --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
    --enable-mutable-globals web/pkg/mentalqlm_web_bg.wasm -o web/pkg/mentalqlm_web_bg.opt.wasm
  mv web/pkg/mentalqlm_web_bg.opt.wasm web/pkg/mentalqlm_web_bg.wasm
  echo "wasm-opt -Oz: $((before / 1024)) KiB before"
fi

bytes=$(stat -c %s web/pkg/mentalqlm_web_bg.wasm)
gz=$(gzip -9 -c web/pkg/mentalqlm_web_bg.wasm | wc -c)
echo "web/pkg/mentalqlm_web_bg.wasm: $((bytes / 1024)) KiB ($((gz / 1024)) KiB gzipped)"

if [ "${1:-}" = "--serve" ]; then
  exec node web/serve.mjs --port "${PORT:-8080}"
fi
if [ "${1:-}" = "--release" ]; then
  exec bash web/bundle.sh web/dist
fi
