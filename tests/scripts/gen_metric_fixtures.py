#!/usr/bin/env python3
"""Writes the scoring fixtures of mentalqlm-data: scikit-learn metrics, label rules,
predictions files with intended labels, ROUGE-L / BLEU references and split sizes.

Run from anywhere: paths are relative to this file. Needs scikit-learn, numpy, nltk and
rouge-score (tests/scripts/requirements.txt); the Rust tests need only what this wrote.

Output (tests/fixtures/):
  metrics/classification.json   random label vectors (binary, 9-class with missing classes,
                                4-class, given label orders, degenerate) with accuracy_score,
                                f1_score, precision_recall_fscore_support, confusion_matrix
  metrics/predictions_<set>.jsonl  LLaMA-Factory-style rows whose answers were written for an
                                intended label (tricky reasoning, unmatched answers, drops)
  metrics/predictions_expected.json  intended labels and sklearn metrics on them
  metrics/text.json             rouge-score ROUGE-L and NLTK BLEU-4 (method1) references
  metrics/split_counts.json     per-class sizes of sklearn's stratified 80/10/10 split
  metrics/versions.json         the library versions that made them
  label_rules.tsv               (dataset, parse_label, gold label or "drop", answer), each row
                                written by hand and cross-checked against label_rules_ref.py
"""
import json
import platform
import random
import shutil
import sys
from pathlib import Path

import nltk
import numpy as np
import rouge_score
import sklearn
from nltk.translate.bleu_score import SmoothingFunction, corpus_bleu, sentence_bleu
from rouge_score import rouge_scorer
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
)
from sklearn.model_selection import train_test_split

sys.dont_write_bytecode = True  # no __pycache__ beside the committed scripts
sys.path.insert(0, str(Path(__file__).resolve().parent))
from label_cases import LABEL_CASES, PREDICTION_SETS  # noqa: E402
from label_rules_ref import parse_gold, parse_label  # noqa: E402

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
OUT = FIXTURES / "metrics"
VERSIONS = {
    "python": platform.python_version(),
    "scikit-learn": sklearn.__version__,
    "numpy": np.__version__,
    "nltk": nltk.__version__,
    "rouge-score": getattr(rouge_score, "__version__", "0.1.2"),
}


def sk_metrics(y_true, y_pred, labels=None):
    kw = {} if labels is None else {"labels": labels}
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, average=None, zero_division=0, **kw)
    out = {
        "accuracy": accuracy_score(y_true, y_pred),
        "confusion_matrix": confusion_matrix(y_true, y_pred, **kw).tolist(),
        "per_class": {
            "labels": (labels if labels is not None else sorted(set(y_true) | set(y_pred))),
            "precision": p.tolist(),
            "recall": r.tolist(),
            "f1": f.tolist(),
            "support": s.tolist(),
        },
    }
    for avg in ("weighted", "macro", "micro"):
        pa, ra, fa, _ = precision_recall_fscore_support(y_true, y_pred, average=avg, zero_division=0, **kw)
        assert abs(fa - f1_score(y_true, y_pred, average=avg, zero_division=0, **kw)) < 1e-15
        out[f"{avg}_precision"], out[f"{avg}_recall"], out[f"{avg}_f1"] = float(pa), float(ra), float(fa)
    return out


def classification_cases(rng):
    def noisy(y_true, pool, keep):
        return [t if rng.random() < keep else rng.choice(pool) for t in y_true]

    cases = []
    t = [rng.randrange(2) for _ in range(57)]
    cases.append(("binary", t, noisy(t, [0, 1], 0.7), None))
    t = [rng.choice([0, 1, 2, 4, 5, 8]) for _ in range(83)]
    cases.append(("nine_class_missing", t, noisy(t, [0, 1, 3, 4, 8], 0.45), None))
    t = [rng.choices([0, 1, 2, 3], weights=[73, 8, 11, 8])[0] for _ in range(120)]
    cases.append(("four_class_imbalanced", t, noisy(t, [0, 1, 2, 3], 0.6), None))
    t = [rng.randrange(4) for _ in range(40)]
    cases.append(("given_label_order", t, noisy(t, [0, 1, 2, 3], 0.5), [3, 1, 0]))
    cases.append(("given_labels_absent", [0, 0, 1, 2], [0, 1, 1, 1], [0, 1, 2, 7]))
    cases.append(("all_one_class_predicted", [0, 1, 2, 1, 0], [1, 1, 1, 1, 1], None))
    cases.append(("perfect", [3, 1, 4, 1, 5], [3, 1, 4, 1, 5], None))
    return [
        {"name": n, "y_true": t, "y_pred": p, "labels": l, "sklearn": sk_metrics(t, p, l)}
        for n, t, p, l in cases
    ]


def write_label_rules():
    lines = ["dataset\tparse_label\tgold_label\tanswer"]
    for dataset, answer, expected, gold in LABEL_CASES:
        assert "\t" not in answer and "\n" not in answer, answer
        got = parse_label(dataset, answer)
        assert got == expected, f"{dataset}: {answer!r}: label_rules_ref.py says {got}, table says {expected}"
        got_gold = parse_gold(dataset, answer)
        want_gold = None if gold == "drop" else int(gold)
        assert got_gold == want_gold, f"{dataset}: {answer!r}: gold {got_gold} vs {gold}"
        lines.append(f"{dataset}\t{expected}\t{gold}\t{answer}")
    (FIXTURES / "label_rules.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_predictions(rng):
    expected = {}
    for dataset, spec in PREDICTION_SETS.items():
        rows, y_true, y_pred, kept, dropped = [], [], [], [], []
        n_classes = len(spec["gold"])
        for i in range(spec["n"]):
            if spec.get("drop_gold") and rng.random() < 0.08:
                gold, t = rng.choice(spec["drop_gold"]), None
            else:
                t = rng.randrange(n_classes)
                gold = rng.choice(spec["gold"][t])
            r = rng.random()
            if r < 0.1:
                predict, p = rng.choice(spec["unmatched"]), spec["fallback"]
            else:
                p = t if (t is not None and r < 0.65) else rng.randrange(n_classes)
                predict = rng.choice(spec["predict"][p])
            # Cross-check the hand-written templates against the reference rules.
            assert parse_gold(dataset, gold) == t, (dataset, gold, t)
            assert parse_label(dataset, predict) == p, (dataset, predict, p)
            rows.append({"prompt": f"<|im_start|>user\nquery {i}<|im_end|>\n", "label": gold, "predict": predict})
            if t is None:
                dropped.append(i)
            else:
                kept.append(i)
                y_true.append(t)
                y_pred.append(p)
        with open(OUT / f"predictions_{dataset}.jsonl", "w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        expected[dataset] = {
            "file": f"predictions_{dataset}.jsonl",
            "y_true": y_true,
            "y_pred": y_pred,
            "kept": kept,
            "dropped": dropped,
            "sklearn": sk_metrics(y_true, y_pred),
        }
    expected["versions"] = VERSIONS
    with open(OUT / "predictions_expected.json", "w", encoding="utf-8") as f:
        json.dump(expected, f, ensure_ascii=False, indent=1)


class WhitespaceLower:
    """The Rust side's default tokenizer, in rouge-score's tokenizer interface."""

    def tokenize(self, text):
        return text.lower().split()


def text_cases():
    pairs = [
        ("The poster shows signs of stress due to work deadlines.",
         "The post shows signs of stress caused by work deadlines and lack of sleep."),
        ("No, the poster does not suffer from depression.", "No, the poster does not suffer from depression."),
        ("Yes. Reasoning: the post mentions hopelessness, fatigue and isolation.",
         "Yes, the poster suffers from depression. Reasoning: hopelessness and isolation are mentioned."),
        ("completely unrelated words here", "nothing in common with that"),
        ("short", "a much longer reference sentence with many words in it"),
        ("Cat cat CAT dog", "cat dog cat dog cat"),
        ("", "empty hypothesis"),
        ("Ünïcödé café naïve text", "ünïcödé café text naïve"),
        ("the the the the the the the", "the cat is on the mat"),
    ]
    default = rouge_scorer.RougeScorer(["rougeL"])
    white = rouge_scorer.RougeScorer(["rougeL"], tokenizer=WhitespaceLower())
    smooth = SmoothingFunction().method1
    cases = []
    for hyp, ref in pairs:
        ws = white.score(ref, hyp)["rougeL"]
        rs = default.score(ref, hyp)["rougeL"]
        h, r = hyp.lower().split(), ref.lower().split()
        bleu = sentence_bleu([r], h, smoothing_function=smooth) if h else 0.0
        cases.append({
            "hypothesis": hyp,
            "reference": ref,
            "rouge_l_whitespace": {"precision": ws.precision, "recall": ws.recall, "f1": ws.fmeasure},
            "rouge_l_rouge_score": {"precision": rs.precision, "recall": rs.recall, "f1": rs.fmeasure},
            "bleu4_whitespace": float(bleu),
        })
    hyps = [p[0].lower().split() for p in pairs if p[0]]
    refs = [[p[1].lower().split()] for p in pairs if p[0]]
    multi_h = "the cat sat on the mat today".split()
    multi_r = ["the cat is on the mat".split(), "a cat sat on a mat today".split()]
    return {
        "pairs": cases,
        "corpus_bleu4_whitespace": float(corpus_bleu(refs, hyps, smoothing_function=smooth)),
        "corpus_skips_empty_hypothesis": True,
        "multi_reference": {
            "hypothesis": multi_h,
            "references": multi_r,
            "bleu4": float(sentence_bleu(multi_r, multi_h, smoothing_function=smooth)),
        },
        "versions": VERSIONS,
    }


def remainder_ties(counts, n_draws):
    """Whether sklearn's _approximate_mode must break a tie at random for these counts (then
    the per-class sizes depend on the generator, and the Rust side checks only totals)."""
    counts = np.asarray(counts)
    continuous = counts / counts.sum() * n_draws
    floored = np.floor(continuous)
    need = int(n_draws - floored.sum())
    rem = continuous - floored
    for value in sorted(set(rem.tolist()), reverse=True):
        k = int((rem == value).sum())
        if need == 0:
            break
        if k > need:
            return True
        need -= min(k, need)
    return False


def split_counts():
    out = []
    for name, counts in [("dep_severity_real_counts", [2587, 290, 394, 282]), ("small", [45, 12, 14, 10])]:
        y = np.repeat(np.arange(len(counts)), counts)
        idx = np.arange(len(y))
        # The paper's recipe: hold out 20% stratified, then halve the held-out part.
        tr, held = train_test_split(idx, test_size=0.2, stratify=y, random_state=2)
        va, te = train_test_split(held, test_size=0.5, stratify=y[held], random_state=2)
        per = lambda part: np.bincount(y[part], minlength=len(counts)).tolist()  # noqa: E731
        held_counts = per(held)
        n_test1 = len(held)
        n_test2 = len(te)
        ties1 = remainder_ties(counts, len(tr)) or remainder_ties(
            np.array(counts) - np.array(per(tr)), n_test1)
        ties2 = remainder_ties(held_counts, len(va)) or remainder_ties(
            np.array(held_counts) - np.array(per(va)), n_test2)
        out.append({"name": name, "class_counts": counts, "train": per(tr), "val": per(va), "test": per(te),
                    "sizes": [len(tr), len(va), len(te)],
                    "train_counts_deterministic": not ties1,
                    "val_test_counts_deterministic": not (ties1 or ties2)})
    return {"cases": out, "versions": VERSIONS}


def main():
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    rng = random.Random(1234)
    with open(OUT / "classification.json", "w", encoding="utf-8") as f:
        json.dump({"cases": classification_cases(rng), "versions": VERSIONS}, f, indent=1)
    write_label_rules()
    write_predictions(rng)
    with open(OUT / "text.json", "w", encoding="utf-8") as f:
        json.dump(text_cases(), f, ensure_ascii=False, indent=1)
    with open(OUT / "split_counts.json", "w", encoding="utf-8") as f:
        json.dump(split_counts(), f, indent=1)
    with open(OUT / "versions.json", "w", encoding="utf-8") as f:
        json.dump(VERSIONS, f, indent=1)
    print(f"wrote {OUT} and {FIXTURES / 'label_rules.tsv'}")


if __name__ == "__main__":
    main()
