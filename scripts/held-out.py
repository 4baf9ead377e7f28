#!/usr/bin/env python3
"""Writes the rows a recorded selection left out of its training files, as an IMHI folder.

Irf and MultiWD have no training file: their `val.csv` is what stage 1 trains on, so they
have no validation file either. The rows `select` did not keep (its outliers and the 25%
k-center greedy passed over) were never trained on; this writes them where `eval --split
val` reads a set's validation file:

    python3 scripts/held-out.py --out /tmp/held-out docs/runs/2026-12-05-selection/Irf.json \
        docs/runs/2026-12-05-selection/MultiWD.json
    bin/mentalqlm eval --mode generate --split val --datasets Irf,MultiWD \
        --data /tmp/held-out ...

They are not a random sample: outliers and near-duplicates of kept rows, and the same posts
under other questions (Irf asks 2 of each post, MultiWD 6). Compare explainers on them;
do not read them as a test figure. Checks each file's sha256 against the report, and
refuses to write into the data folder itself. Standard library only.
"""
import argparse
import csv
import hashlib
import json
import os
import sys


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for piece in iter(lambda: f.read(1 << 16), b""):
            h.update(piece)
    return h.hexdigest()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("reports", nargs="+", help="select_report.json files (kept_rows)")
    ap.add_argument("--out", required=True, help="folder to write OUT/train/SET/val.csv into")
    args = ap.parse_args()
    for report in args.reports:
        with open(report) as f:
            sets = json.load(f)["datasets"]
        for name, entry in sets.items():
            source = entry["file"]
            if not os.path.isabs(source) and not os.path.exists(source):
                source = os.path.join(os.path.dirname(report), source)
            if sha256(source) != entry["file_sha256"]:
                sys.exit(f"{report}: {name}: {source} is not the file the selection read")
            kept = set(entry["kept_rows"])
            with open(source, newline="", encoding="utf-8") as f:
                rows = list(csv.reader(f))
            header, body = rows[0], rows[1:]
            if len(body) != entry["rows"] or max(kept, default=-1) >= len(body):
                sys.exit(f"{report}: {name}: {source} has {len(body)} rows, the report {entry['rows']}")
            target = os.path.join(args.out, "train", name, "val.csv")
            if os.path.realpath(target) == os.path.realpath(source):
                sys.exit(f"{target} is the data file itself")
            os.makedirs(os.path.dirname(target), exist_ok=True)
            left = [r for i, r in enumerate(body) if i not in kept]
            with open(target, "w", newline="", encoding="utf-8") as f:
                w = csv.writer(f)
                w.writerow(header)
                w.writerows(left)
            print(f"{name}: {len(left)} of {len(body)} rows held out -> {target}")


if __name__ == "__main__":
    main()
