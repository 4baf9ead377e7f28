#!/usr/bin/env python3
"""References for data selection (tests/fixtures/select/): NumPy k-center greedy and IQR
outlier removal, and transformers' answer perplexity and mean-pooled hidden states on the tiny
Qwen2 fixture (run gen_tiny_models.py first). Fixed seeds, paths relative to this file."""
import json
from pathlib import Path

import numpy as np
import torch
import transformers
from transformers import AutoModelForCausalLM

ROOT = Path(__file__).resolve().parent.parent / "fixtures"
OUT = ROOT / "select"


def k_center_greedy(x: np.ndarray, k: int, first: int) -> list:
    selected = [first]
    min_d = np.linalg.norm(x - x[first], axis=1)
    while len(selected) < k:
        # Rows already selected are never picked again (duplicate rows reach distance 0).
        masked = min_d.copy()
        masked[selected] = -np.inf
        nxt = int(np.argmax(masked))
        selected.append(nxt)
        min_d = np.minimum(min_d, np.linalg.norm(x - x[nxt], axis=1))
    return selected, float(min_d.max())


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(6, 16)) * 4
    x = (centres[rng.integers(0, 6, 300)] + rng.normal(size=(300, 16))).astype(np.float32)
    kc = []
    for k, first in [(225, 7), (10, 0), (1, 299)]:
        sel, radius = k_center_greedy(x.astype(np.float64), k, first)
        kc.append({"k": k, "first": first, "selected": sel, "coverage_radius": radius})

    scores = np.exp(rng.normal(1.0, 0.4, 120))
    scores[[3, 50]] = [40.0, 0.01]
    scores = scores.tolist()
    scores[10] = float("nan")
    scores[11] = float("inf")
    finite = np.array([s for s in scores if np.isfinite(s)])
    q1, med, q3 = np.percentile(finite, [25, 50, 75])
    lo, hi = q1 - 1.5 * (q3 - q1), q3 + 1.5 * (q3 - q1)
    kept = [i for i, s in enumerate(scores) if np.isfinite(s) and lo <= s <= hi]

    model = AutoModelForCausalLM.from_pretrained(ROOT / "tiny" / "qwen2", dtype=torch.float32).eval()
    ref = json.loads((ROOT / "tiny" / "reference.json").read_text())
    seqs = ref["token_ids"]
    ppl = []
    for prompt, answer in [(seqs[0], seqs[2][:7]), (seqs[1][:20], seqs[3][:9]), (seqs[2], seqs[0])]:
        ids = torch.tensor([prompt + answer])
        labels = torch.tensor([[-100] * len(prompt) + answer])
        alone = torch.tensor([answer])
        with torch.no_grad():
            loss = model(input_ids=ids, labels=labels).loss.item()
            loss_alone = model(input_ids=alone, labels=alone).loss.item()
            hidden = model(input_ids=ids, output_hidden_states=True).hidden_states[-1][0]
        ppl.append({
            "prompt_ids": prompt, "answer_ids": answer,
            "nll": loss, "ppl": float(np.exp(loss)),
            "nll_alone": loss_alone, "ifd": float(np.exp(loss) / np.exp(loss_alone)),
            "embedding": hidden.mean(0).tolist(),
        })

    (OUT / "reference.json").write_text(json.dumps({
        "embeddings": x.tolist(), "k_center": kc,
        "scores": [s if np.isfinite(s) else str(s) for s in scores],
        "iqr": {"q1": q1, "median": med, "q3": q3, "lower": lo, "upper": hi, "kept": kept},
        "perplexity": ppl,
    }))
    (OUT / "versions.json").write_text(json.dumps(
        {"numpy": np.__version__, "torch": torch.__version__, "transformers": transformers.__version__}, indent=2) + "\n")
    print("wrote", OUT)


if __name__ == "__main__":
    main()
