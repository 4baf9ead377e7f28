#!/usr/bin/env python3
"""Writes the small synthetic data files the mentalqlm-data tests read.

Run from anywhere: paths are relative to this file. Standard library only. Every file is
made here, so quoting, multi-line records and broken files are exactly what the tests expect.

Output (tests/fixtures/data/):
  imhi/                    a fake IMHI folder: test/<set>.csv, train/<set>/{train,val}.csv,
                           and, as in the public release, no train.csv for Irf and MultiWD
  imhi_json/DR.json        an IMHI-style JSON list of {"instruct", "output"} objects
  dep-severity/english.csv 40 rows of `text,label`
  malformed/               one broken file per error the readers report
  expected.json            row counts, gold labels and error lines the tests assert
"""
import csv
import json
import random
import shutil
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "fixtures" / "data"
random.seed(20240601)

QUESTIONS = {
    "DR": "Does the poster suffer from depression?",
    "dreaddit": "Does the poster suffer from stress?",
    "Irf": "Does the post show risk of thwarted belongingness?",
    "MultiWD": "Does the social wellness dimension exist in the post?",
    "SAD": "What is the stress cause of this post?",
}
GOLD = {
    "DR": ["No, the poster does not suffer from depression.", "Yes, the poster suffers from depression."],
    "dreaddit": ["No, the poster does not suffer from stress.", "Yes, the poster suffers from stress."],
    "Irf": ["No, the post does not show this risk.", "Yes, the post shows this risk."],
    "MultiWD": [
        "No, this wellness dimension does not exist in the post.",
        "Yes, this wellness dimension exists in the post.",
    ],
    "SAD": [
        "This post shows the stress cause related to school.",
        "This post shows the stress cause related to financial problem.",
        "This post shows the stress cause related to family issues.",
        "This post shows the stress cause related to social relationships.",
        "This post shows the stress cause related to work.",
        "This post shows the stress cause related to health issues.",
        "This post shows the stress cause related to emotion turmoil.",
        "This post shows the stress cause related to everyday decision making.",
        "This post shows other stress causes.",
    ],
}
# Posts that exercise CSV quoting and the first/last-quote rule.
POSTS = [
    'I said "no" to my boss, and now I worry, every night.',
    "Line one of the post.\nLine two, after a newline.\n\nLine four.",
    'Question: is this a trick? My friend asked "why?" and I had no answer',
    "Ünïcödé café, naïve résumé 🙂 — still stressed",
    "plain short post",
]


def query(post, question):
    return f'Consider this post: "{post}" Question: {question}'


def write_csv(path, header, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def imhi_rows(name, n):
    rows, labels = [], []
    for i in range(n):
        label = i % len(GOLD[name])
        post = POSTS[(i + len(name)) % len(POSTS)]
        other = GOLD[name][(label + 1) % len(GOLD[name])]
        # The reasoning names another label, which the rules must ignore.
        answer = f"{GOLD[name][label]} Reasoning: unlike \"{other}\", the post fits. yes no school other."
        rows.append([query(post, QUESTIONS[name]), answer])
        labels.append(label)
    return rows, labels


def main():
    if OUT.exists():
        shutil.rmtree(OUT)
    expected = {"imhi": {}, "errors": {}}
    header = ["query", "gpt-3.5-turbo"]
    sizes = {"test": 4, "train": 5, "val": 3}
    for name in QUESTIONS:
        for split, n in sizes.items():
            if split == "train" and name in ("Irf", "MultiWD"):
                continue  # the public release has no training file for these
            rows, labels = imhi_rows(name, n if name != "SAD" else n + 4)
            path = OUT / "imhi" / ("test" if split == "test" else f"train/{name}")
            path = path / (f"{name}.csv" if split == "test" else f"{split}.csv")
            write_csv(path, header, rows)
            expected["imhi"][f"{name}/{split}"] = {
                "rows": len(rows),
                "labels": labels,
                "posts": [r[0][r[0].index('"') + 1 : r[0].rindex('"')] for r in rows],
                "question": QUESTIONS[name],
            }

    rows, labels = imhi_rows("DR", 3)
    (OUT / "imhi_json").mkdir(parents=True)
    with open(OUT / "imhi_json" / "DR.json", "w", encoding="utf-8") as f:
        json.dump([{"instruct": q, "output": a} for q, a in rows], f, ensure_ascii=False, indent=1)
    expected["imhi_json"] = {"rows": 3, "labels": labels}

    severities = ["minimum", "mild", "moderate", "severe"]
    counts = [22, 6, 7, 5]
    sev_labels = [i for i, c in enumerate(counts) for _ in range(c)]
    random.shuffle(sev_labels)
    sev_rows = [[f'Post {i}: "quoted", commas, and\na newline.', severities[l]] for i, l in enumerate(sev_labels)]
    sev_rows[3][1] = " Moderate "  # case and spaces are tolerated
    sev_labels[3] = 2
    write_csv(OUT / "dep-severity" / "english.csv", ["text", "label"], sev_rows)
    expected["dep_severity"] = {"rows": len(sev_rows), "labels": sev_labels}

    m = OUT / "malformed"
    good = query("fine post", QUESTIONS["DR"])
    gold = GOLD["DR"][1] + " Reasoning: ok."
    # Each error case: the file and the line (1-based; the header is line 1) it names.
    write_csv(m / "missing_column.csv", ["query", "response_text"], [[good, gold]])
    expected["errors"]["missing_column.csv"] = {"kind": "MissingColumn", "line": None}
    m.mkdir(parents=True, exist_ok=True)
    with open(m / "unequal_fields.csv", "w", encoding="utf-8", newline="") as f:
        f.write("query,gpt-3.5-turbo\n")
        f.write(f'"{good.replace(chr(34), chr(34) * 2)}","{gold}"\n')
        f.write(f'"{good.replace(chr(34), chr(34) * 2)}","{gold}",extra\n')
    expected["errors"]["unequal_fields.csv"] = {"kind": "Csv", "line": 3}
    write_csv(m / "empty_post.csv", header, [[good, gold], [query("  ", QUESTIONS["DR"]), gold]])
    expected["errors"]["empty_post.csv"] = {"kind": "EmptyPost", "line": 3}
    write_csv(m / "no_quotes.csv", header, [[good, gold], [good, gold], ["Consider this post: no quotes here", gold]])
    expected["errors"]["no_quotes.csv"] = {"kind": "BadQuery", "line": 4}
    write_csv(m / "empty_answer.csv", header, [[good, "  "]])
    expected["errors"]["empty_answer.csv"] = {"kind": "EmptyField", "line": 2}
    with open(m / "bad_utf8.csv", "wb") as f:
        f.write(b"query,gpt-3.5-turbo\n")
        f.write(b'"Consider this post: ""caf\xe9"" Question: q?","Yes."\n')
    expected["errors"]["bad_utf8.csv"] = {"kind": "Csv", "line": 2}
    with open(m / "bad_json.json", "w", encoding="utf-8") as f:
        f.write('[\n  {"instruct": "x", "output": "y"},\n  {"instruct": "x" "output": "y"}\n]\n')
    expected["errors"]["bad_json.json"] = {"kind": "Json", "line": 3}
    with open(m / "json_missing_field.json", "w", encoding="utf-8") as f:
        json.dump([{"instruct": good, "output": gold}, {"instruct": good}], f)
    expected["errors"]["json_missing_field.json"] = {"kind": "BadRecord", "record": 2}
    with open(m / "json_not_list.json", "w", encoding="utf-8") as f:
        json.dump({"instruct": good, "output": gold}, f)
    expected["errors"]["json_not_list.json"] = {"kind": "Json", "line": 1}
    write_csv(m / "severity_bad_label.csv", ["text", "label"], [["a", "mild"], ["b", "severe"], ["c", "extreme"]])
    expected["errors"]["severity_bad_label.csv"] = {"kind": "BadSeverityLabel", "line": 4}
    write_csv(m / "severity_empty_text.csv", ["text", "label"], [["a", "mild"], ["", "severe"]])
    expected["errors"]["severity_empty_text.csv"] = {"kind": "EmptyPost", "line": 3}
    with open(m / "predictions_bad.jsonl", "w", encoding="utf-8") as f:
        f.write(json.dumps({"prompt": "p", "label": "Yes.", "predict": "No."}) + "\n")
        f.write('{"prompt": "p", "label": "Yes.", "predict": \n')
    expected["errors"]["predictions_bad.jsonl"] = {"kind": "Json", "line": 2}
    with open(m / "predictions_missing_field.jsonl", "w", encoding="utf-8") as f:
        f.write(json.dumps({"prompt": "p", "label": "Yes.", "predict": "No."}) + "\n\n")
        f.write(json.dumps({"prompt": "p", "label": "Yes."}) + "\n")
    expected["errors"]["predictions_missing_field.jsonl"] = {"kind": "Json", "line": 3}

    with open(OUT / "expected.json", "w", encoding="utf-8") as f:
        json.dump(expected, f, ensure_ascii=False, indent=1)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
