"""The label rules of PAPER.md ("Scoring"), written independently of the Rust code as a
reference for the fixture scripts: cut the answer before "Reasoning:" (any case), lowercase
it, test substrings in order; no match gives the fallback label, or drops a gold answer of
t-sid / swmh. CAMS follows MentaLLaMA's src/label_inference.py, merged for gold and
predictions; DEP-SEVERITY uses the severity names."""
import re

BINARY = [("yes", 1), ("no", 0)]
RULES = {
    "DR": BINARY, "dreaddit": BINARY, "Irf": BINARY, "MultiWD": BINARY,
    "loneliness": BINARY, "CLP": BINARY,
    "SAD": [("school", 0), ("financial", 1), ("family", 2), ("social", 3), ("work", 4),
            ("health", 5), ("emotion", 6), ("decision", 7), ("other", 8)],
    "t-sid": [("depression", 2), ("suicide", 1), ("ptsd", 3), ("no mental", 0)],
    "swmh": [("no mental", 0), ("suicide", 1), ("depression", 2), ("anxiety", 3), ("bipolar", 4)],
    "CAMS": [("no cause", 0), ("no reason", 0), ("none", 0), ("bias", 1), ("job", 2),
             ("medication", 3), ("relation", 4), ("alienation", 5)],
    "DEP-SEVERITY": [("minim", 0), ("mild", 1), ("moderate", 2), ("severe", 3)],
}
FALLBACK = {"SAD": 8}
DROPS = {"t-sid", "swmh"}


def head(answer):
    return re.split("reasoning:", answer.lower(), maxsplit=1)[0]


def match(dataset, answer):
    h = head(answer)
    for needle, label in RULES[dataset]:
        if needle in h:
            return label
    return None


def parse_label(dataset, answer):
    m = match(dataset, answer)
    return FALLBACK.get(dataset, 0) if m is None else m


def parse_gold(dataset, answer):
    m = match(dataset, answer)
    if m is None:
        return None if dataset in DROPS else FALLBACK.get(dataset, 0)
    return m
