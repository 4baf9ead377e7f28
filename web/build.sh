#!/usr/bin/env bash
# Builds the web app's wasm module into web/pkg (wasm-bindgen glue included), and the same
# module with wasm threads into web/pkg-threads: its CPU kernels split their work over a pool
# of Web Workers where the page is cross-origin isolated. That build recompiles the standard
# library with atomics (a stable toolchain's `-Z build-std`, through RUSTC_BOOTSTRAP), from
# the source scripts/setup-rust-src.sh installs; without that source, it is left out and
# the page runs on one thread. NO_THREADS=1 leaves it out too.
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

# The threaded module: its own target folder (other flags, and the standard library built
# here), and every flag in RUSTFLAGS, which replaces .cargo/config.toml's for the target.
# The module's link (`cargo rustc`: these flags reach only the last crate, so changing them
# recompiles nothing else) imports a shared memory of up to 4 GiB (wasm32's most) and
# exports the thread-local storage's setup; wasm-bindgen sees it and emits the glue for
# threads. WebGPU is not in it: wgpu's types are not Send with atomics (threads are for the
# CPU backend; worker.js loads web/pkg for WebGPU).
rm -rf web/pkg-threads
if [ "${NO_THREADS:-0}" = 1 ]; then
  echo "NO_THREADS=1: no threaded module (the page runs on one thread)"
elif ! bash scripts/setup-rust-src.sh; then
  echo "no standard library source for rustc: no threaded module (the page runs on one thread)" >&2
else
  RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR="$(dirname "$CARGO_TARGET_DIR")/target-wasm-threads" \
    RUSTFLAGS='--cfg getrandom_backend="wasm_js" -C target-feature=+simd128,+atomics,+bulk-memory,+mutable-globals -C link-arg=--max-memory=4294967296' \
    cargo rustc --release --target wasm32-unknown-unknown -p mentalqlm-web --lib \
      -Z build-std=panic_abort,std -- \
      -C link-arg=--shared-memory -C link-arg=--import-memory -C link-arg=--export=__wasm_init_tls \
      -C link-arg=--export=__tls_size -C link-arg=--export=__tls_align -C link-arg=--export=__tls_base
  threaded="$(dirname "$CARGO_TARGET_DIR")/target-wasm-threads/wasm32-unknown-unknown/release/mentalqlm_web.wasm"
  wasm-bindgen --target web --no-typescript --out-dir web/pkg-threads "$threaded"
  bytes=$(stat -c %s web/pkg-threads/mentalqlm_web_bg.wasm)
  echo "web/pkg-threads/mentalqlm_web_bg.wasm: $((bytes / 1024)) KiB (wasm threads)"
fi

if [ "${1:-}" = "--serve" ]; then
  exec node web/serve.mjs --port "${PORT:-8080}"
fi
if [ "${1:-}" = "--release" ]; then
  exec bash web/bundle.sh web/dist
fi
