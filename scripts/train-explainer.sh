#!/usr/bin/env bash
# Rebuilds the shipped explainer (classifiers/explainer/) from ../shared/data with the default
# model: MentalQLM's stage 1 on a CPU budget.
#   1. `select --keep 0.75` over the five IMHI training sets, full data: answer perplexity,
#      1.5×IQR outliers out, k-center greedy over post embeddings keeps 75%. Its scoring
#      pass also keeps every sequence's states below the top 2 layers (--prefix-top-k 2).
#   2. `train sft` on what it keeps: LoRA (r 8, every projection) on the top 2 layers, over
#      those cached states of the 28 frozen layers (only sequences select cut differently,
#      and the validation ones, run them again), one epoch, validation answer loss on the
#      DR, dreaddit and SAD validation files. The label the answer states (its words before
#      "Reasoning:") weighs 100 times a reasoning token in the loss (--label-weight; chosen
#      on those validation files, docs/2026-12-03-explainer.md; --label-weight W sets
#      another), and also its class's balanced weight in its set for DR, Irf, dreaddit and
#      SAD (`--balance-labels DR,Irf,dreaddit,SAD`, as the shipped explainer since
#      2026-12-06, evening). MultiWD is left out: its share of "yes" depends on the
#      question, so one set-wide weight moved every question toward "yes".
#      `--balance-labels` alone balances every set; --no-balance-labels none.
#
#   scripts/train-explainer.sh [--runs DIR] [--rows-from REPORT]... [--label-weight W]
#                              [--balance-labels [SETS] | --no-balance-labels]
#                              [extra `train sft` options]
#
# --rows-from takes the selection a run recorded (its select_report.json's kept_rows, e.g.
# docs/runs/2026-12-05-selection/*.json) instead of scoring again: step 1 takes seconds,
# and `train sft` runs the frozen layers itself for the prefix.
#
# Each step resumes when the script is run again: selection scores and prefix states are
# cached under ~/.cache/mentalqlm, and training continues from its last checkpoint. Uses a
# GPU where one exists (--device auto), the CPU otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
DATA="${DATA:-../shared/data}"
runs="runs"
rows_from=()
label_weight=100
balance=(--balance-labels DR,Irf,dreaddit,SAD)
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs="${2:?--runs needs a folder}"; shift 2 ;;
    --rows-from) rows_from+=(--rows-from "${2:?--rows-from needs a report}"); shift 2 ;;
    --label-weight) label_weight="${2:?--label-weight needs a number}"; shift 2 ;;
    --no-balance-labels) balance=(); shift ;;
    --balance-labels)
      # Alone: every set; with a list (DR,Irf,...): those sets only.
      if [ $# -gt 1 ] && [[ "$2" != --* ]]; then balance=(--balance-labels "$2"); shift 2
      else balance=(--balance-labels); shift; fi ;;
    *) extra+=("$1"); shift ;;
  esac
done
# The same build as the tests (--workspace: one feature set of Burn); quick when current.
cargo build --release --workspace
mkdir -p bin && cp -f "$CARGO_TARGET_DIR/release/mentalqlm" bin/mentalqlm
bash scripts/setup-model.sh >/dev/null
selection="$runs/select-0.75"
if [ ! -f "$selection/select_report.json" ]; then
  if [ ${#rows_from[@]} -gt 0 ]; then
    bin/mentalqlm select --data "$DATA/imhi" "${rows_from[@]}" --out "$selection"
  else
    bin/mentalqlm select --data "$DATA/imhi" --keep 0.75 --prefix-top-k 2 --out "$selection"
  fi
fi
out="$runs/explainer"
resume=()
if [ -d "$out/checkpoints" ]; then resume=(--resume); fi
bin/mentalqlm train sft --data "$selection" --val-data "$DATA/imhi" \
  --top-k 2 --epochs 1 --lr 1e-3 --warmup-ratio 0.03 --batch-size 16 --micro-batch-size 4 \
  --label-weight "$label_weight" --val-examples 256 --eval-every 100 --save-every 20 \
  --out "$out" --ship classifiers/explainer "${balance[@]}" "${resume[@]}" "${extra[@]}"
