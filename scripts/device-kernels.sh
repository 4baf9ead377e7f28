#!/usr/bin/env bash
# The GPU checks of the WGSL kernels, in one run on a machine with a GPU and no toolchain:
# `mentalqlm bench kernels` over the default shapes at rank 8 (RANKS=4,8,16 for all; 12
# rows took about 150 s on an H200), the kernel tests on its wgpu adapter (less the one
# that needs the default model, which is over what a device call carries), the bench at
# 512 tokens at the other ranks (MORE_RANKS, 4 and 16 by default; empty to skip), and on
# request: RULES=1 the bench at rank 8 with the rules alone (nothing timed, the schedule
# before lora/tune.rs), FACTORS=1 the bench at 512 tokens with the factor gradients as two
# products of CubeCL's (MENTALQLM_LORA_FACTORS=matmul, the backward before
# lora_factors.wgsl), UNSPLIT=1 the bench at 512 tokens with no product split over k, TILED=1 the
# bench with every product on the tiled kernel (the schedule before lora_rows.wgsl and the
# epilogue), TILES="16x16x16 16x16x32 …" a sweep of tiles at 512 tokens. About 6 minutes
# by default.
# Build the two programs here first:
#
#   scripts/device-kernels.sh --build     # .dev/mentalqlm and .dev/mentalqlm-tests
#
# On the GPU machine, from the repository root (with .dev and, where the machine has no
# Vulkan loader, .gl holding libvulkan1's .deb):
#
#   scripts/device-kernels.sh             # writes to $OUT, else reports/device
set -uo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = "--build" ]; then
    source scripts/env.sh
    # The same feature set as scripts/test.sh (a narrower -p build recompiles Burn).
    cargo build --release -p mentalqlm || exit 1
    tests=$(cargo test --release --workspace --lib --bins --tests --no-run --message-format=json 2>/dev/null |
        python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "mentalqlm_tests":
        print(m["executable"])' | tail -1)
    [ -n "$tests" ] || { echo "no test binary" >&2; exit 1; }
    mkdir -p .dev
    # Compressed: the two programs together are over the 64 MiB a device call carries.
    for pair in "$CARGO_TARGET_DIR/release/mentalqlm:mentalqlm" "$tests:mentalqlm-tests"; do
        cp "${pair%%:*}" ".dev/${pair##*:}"
        strip ".dev/${pair##*:}"
        gzip -f ".dev/${pair##*:}"
    done
    ls -la .dev
    exit 0
fi

out=${OUT:-reports/device}
mkdir -p "$out"
for f in .dev/*.gz; do gunzip -kf "$f"; done
if ! ldconfig -p | grep -q libvulkan.so.1; then
    for f in .gl/*.deb; do dpkg -x "$f" /; done
    ldconfig
fi
icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
if [ -f "$icd" ] && ! ls /usr/share/vulkan/icd.d/ /etc/vulkan/icd.d/ 2>/dev/null | grep -qi nvidia; then
    export VK_DRIVER_FILES=$icd
fi
{ nvidia-smi -L; nvidia-smi --query-gpu=driver_version,clocks.sm,clocks.mem --format=csv; } 2>&1 | tee "$out/gpu.txt"


iters=${ITERS:-50}
ranks=${RANKS:-8}
echo "== bench kernels (default schedule)"
timeout ${BENCH_TIMEOUT:-240} .dev/mentalqlm bench kernels --device wgpu --iters "$iters" --ranks "$ranks" --json 2>&1 | tee "$out/bench.jsonl"
# The tests read their fixtures under $CARGO_MANIFEST_DIR.
export CARGO_MANIFEST_DIR=$PWD/tests
echo "== kernel tests"
timeout ${TEST_TIMEOUT:-150} .dev/mentalqlm-tests kernels:: --test-threads 2 \
    --skip quantized_forward_on_a_default_model_weight 2>&1 | tee "$out/tests.log"
more=${MORE_RANKS-4,16}
if [ -n "$more" ]; then
    echo "== bench kernels at 512 tokens, ranks $more"
    timeout ${BENCH_TIMEOUT:-240} .dev/mentalqlm bench kernels --device wgpu \
        --iters "$iters" --ranks "$more" --tokens 512 --json 2>&1 | tee "$out/bench-ranks.jsonl"
fi
if [ "${RULES:-0}" = 1 ]; then
    echo "== bench kernels, the rules alone (no schedule timed)"
    MENTALQLM_LORA_SCHEDULE=rules timeout ${BENCH_TIMEOUT:-240} .dev/mentalqlm bench kernels --device wgpu \
        --iters "$iters" --ranks 8 --json 2>&1 | tee "$out/bench-rules.jsonl"
fi
if [ "${FACTORS:-0}" = 1 ]; then
    echo "== bench kernels at 512 tokens, the factor gradients as two products"
    MENTALQLM_LORA_FACTORS=matmul timeout ${BENCH_TIMEOUT:-240} .dev/mentalqlm bench kernels --device wgpu \
        --iters "$iters" --ranks 8 --tokens 512 --json 2>&1 | tee "$out/bench-factors.jsonl"
fi
if [ "${UNSPLIT:-0}" = 1 ]; then
    echo "== bench kernels at 512 tokens, no product split over k"
    MENTALQLM_LORA_SCHEDULE=unsplit timeout ${BENCH_TIMEOUT:-240} .dev/mentalqlm bench kernels --device wgpu \
        --iters "$iters" --ranks 8 --tokens 512 --json 2>&1 | tee "$out/bench-unsplit.jsonl"
fi
if [ "${TILED:-0}" = 1 ]; then
    echo "== bench kernels, every product on the tiled kernel"
    MENTALQLM_LORA_SCHEDULE=tiled timeout ${BENCH_TIMEOUT:-240} .dev/mentalqlm bench kernels --device wgpu \
        --iters "$iters" --ranks 8 --json 2>&1 | tee "$out/bench-tiled.jsonl"
fi
for tile in ${TILES:-}; do
    echo "== tile $tile at 512 tokens (the tiled kernel)"
    MENTALQLM_LORA_SCHEDULE=tiled MENTALQLM_LORA_TILE=$tile timeout ${SWEEP_TIMEOUT:-60} .dev/mentalqlm bench kernels --device wgpu \
        --iters "$iters" --tokens 512 --ranks 16 --json 2>&1 | tee -a "$out/sweep.jsonl"
done
