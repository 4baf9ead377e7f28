#!/usr/bin/env python3
"""Weighted F1 of `eval` answers on held-out rows, reweighed to the source file's mix.

`scripts/held-out.py` writes the rows a selection left out; their (question, label) mix is
not the file's (MultiWD's held-out rows are 48% "yes", its val.csv 36%), and weighted F1
depends on that mix. Each answer here weighs P_file(question, label) / P_held(question,
label), which estimates the figure on rows mixed as the whole file is. Prints both.

    python3 scripts/reweigh.py --source ../shared/data/imhi/train/MultiWD/val.csv \
        /work/run/held-out/predictions_MultiWD.jsonl ...

Binary sets only (Irf, MultiWD): an answer's label is "no" when its text before
"Reasoning:" starts with "No" or says "does not"/"doesn't", "yes" otherwise (MentaLLaMA's
rule for these sets). Standard library only.
"""
import argparse
import collections
import csv
import json
import re

QUESTION = re.compile(r"Question:\s*(.*?)(?:<\|im_end\|>|$)", re.S)


def label(text):
    head = text.split("Reasoning:")[0].strip().lower()
    return "no" if head.startswith("no") or "does not" in head or "doesn't" in head else "yes"


def question(query):
    m = QUESTION.search(query)
    if not m:
        raise SystemExit(f"no 'Question:' in {query[-120:]!r}")
    return m.group(1).strip()


def f1(rows):
    """Weighted F1 (x100) over (gold, predicted, weight) rows."""
    classes = sorted({g for g, _, _ in rows})
    total = sum(w for _, _, w in rows)
    score = 0.0
    for c in classes:
        tp = sum(w for g, p, w in rows if g == c and p == c)
        support = sum(w for g, _, w in rows if g == c)
        predicted = sum(w for _, p, w in rows if p == c)
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        score += f * support / total
    return 100 * score


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", required=True, help="the file the selection read")
    ap.add_argument("predictions", nargs="+", help="eval's predictions_SET.jsonl")
    args = ap.parse_args()
    with open(args.source, newline="", encoding="utf-8") as f:
        source = [(question(r["query"]), label(r["gpt-3.5-turbo"])) for r in csv.DictReader(f)]
    file_mix = collections.Counter(source)
    for path in args.predictions:
        with open(path, encoding="utf-8") as f:
            answers = [json.loads(line) for line in f if line.strip()]
        keyed = [(question(a["prompt"]), label(a["label"]), label(a["predict"])) for a in answers]
        held_mix = collections.Counter((q, g) for q, g, _ in keyed)
        missing = [k for k in held_mix if k not in file_mix]
        if missing:
            raise SystemExit(f"{path}: {missing[0]} is not in {args.source}")
        weight = {
            k: (file_mix[k] / len(source)) / (held_mix[k] / len(keyed)) for k in held_mix
        }
        plain = f1([(g, p, 1.0) for _, g, p in keyed])
        reweighed = f1([(g, p, weight[(q, g)]) for q, g, p in keyed])
        yes = sum(g == "yes" for _, g, _ in keyed) / len(keyed)
        print(f"{path}: {len(keyed)} answers ({100 * yes:.0f}% yes), weighted F1 {plain:.2f}, "
              f"reweighed to the file's mix {reweighed:.2f}")


if __name__ == "__main__":
    main()
