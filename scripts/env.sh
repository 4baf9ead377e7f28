# Sourced by the other scripts: one build directory outside the clone, reused by every
# checkout and by CI (a clean Burn + wgpu build takes 20-35 minutes on 2 cores).
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mentalqlm/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# Mesa's software Vulkan prints these when no session bus exists; give it a runtime dir.
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp/mentalqlm-xdg-$(id -u)}"
mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR" 2>/dev/null || true
