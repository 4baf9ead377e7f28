#!/usr/bin/env bash
# Assembles the page as one folder for any static host: the app, web/pkg (run web/build.sh
# first), the shipped classifiers and explainer, the default model when models/ has it, and
# the response headers the host must send, as `_headers` (Netlify, Cloudflare Pages) and
# `.htaccess` (Apache). The Content-Security-Policy must come as a header: the page also
# carries it as a meta tag, but a worker takes its policy only from its own response. The
# COOP/COEP headers make the page cross-origin isolated, which wasm threads need.
#
#   web/bundle.sh [OUT]     (default web/dist; emptied first)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-web/dist}"

wasm=web/pkg/mentalqlm_web_bg.wasm
[ -f "$wasm" ] || { echo "bundle: $wasm is missing: run web/build.sh first" >&2; exit 1; }
case "$(realpath -m "$out")" in
  "$(realpath .)" | "$(realpath web)" | /) echo "bundle: refusing to empty $out" >&2; exit 1 ;;
esac

rm -rf "$out"
mkdir -p "$out/pkg" "$out/classifiers" "$out/models"
cp web/index.html web/app.js web/worker.js web/threads.js web/sw.js web/style.css "$out/"
cp web/pkg/mentalqlm_web.js "$wasm" "$out/pkg/"
# The threaded module (web/build.sh builds it when it can): used where the host sends the
# isolation headers below.
if [ -f web/pkg-threads/mentalqlm_web_bg.wasm ]; then
  mkdir -p "$out/pkg-threads"
  cp web/pkg-threads/mentalqlm_web.js web/pkg-threads/mentalqlm_web_bg.wasm "$out/pkg-threads/"
else
  echo "bundle: web/pkg-threads is missing: the page will run on one thread"
fi

# Each task's classifier (the two files the page fetches) and the explainer's three.
for dir in classifiers/*/; do
  task="$(basename "$dir")"
  for f in classifier.json probe.safetensors explainer.json adapter_config.json adapter_model.safetensors; do
    if [ -f "$dir$f" ]; then mkdir -p "$out/classifiers/$task" && cp "$dir$f" "$out/classifiers/$task/"; fi
  done
done

model=models/SmolLM2-135M-Instruct.Q4_1.gguf
if [ -f "$model" ]; then
  cp "$model" "$out/models/"
else
  echo "bundle: $model is missing (scripts/setup-model.sh): the page will ask users to pick a model"
fi

# The policy, as web/serve.mjs sends it (one definition).
csp="$(node --input-type=module -e "import { CSP } from './web/serve.mjs'; console.log(CSP)")"
cat > "$out/_headers" <<EOF
/*
  Content-Security-Policy: $csp
  X-Content-Type-Options: nosniff
  Cache-Control: no-cache
  Cross-Origin-Opener-Policy: same-origin
  Cross-Origin-Embedder-Policy: require-corp
/pkg/*.wasm
  Content-Type: application/wasm
/pkg-threads/*.wasm
  Content-Type: application/wasm
EOF
cat > "$out/.htaccess" <<EOF
# Apache (mod_headers, mod_mime): the headers of _headers.
Header always set Content-Security-Policy "$csp"
Header always set X-Content-Type-Options "nosniff"
Header always set Cache-Control "no-cache"
Header always set Cross-Origin-Opener-Policy "same-origin"
Header always set Cross-Origin-Embedder-Policy "require-corp"
AddType application/wasm .wasm
AddOutputFilterByType DEFLATE text/html text/javascript text/css application/json application/wasm
EOF

bytes=$(du -sb "$out" | cut -f1)
echo "web bundle: $out ($((bytes / 1024 / 1024)) MiB; serve it with the headers of $out/_headers)"
