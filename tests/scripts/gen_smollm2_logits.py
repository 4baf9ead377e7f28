#!/usr/bin/env python3
"""Writes reference logits of the default model (SmolLM2-135M-Instruct, GGUF Q4_1) for a
ChatML prompt, as transformers computes them from the same GGUF file.

Run from anywhere: paths are relative to this file. Needs torch, transformers, gguf
(tests/scripts/requirements.txt) and the model from scripts/setup-model.sh.

transformers dequantizes every tensor to float32 (the Q4_1 weights exactly as ggml does) and
undoes llama.cpp's Q/K row permutation, so a correct f32 implementation should agree with
these numbers up to summation order (about 1e-4 on logits of this size).

Output: tests/fixtures/smollm2_logits.json
  prompt, ids             the prompt and its token ids (transformers' GGUF tokenizer)
  positions[]             the last three positions, each with:
    position              index into ids
    logits_head           logits of vocabulary ids 0..2048, rounded to 6 decimals
    argmax, max           over the full row of 49152
    logsumexp, sum        over the full row (float64 accumulation)
    top5                  [[id, logit], ...] over the full row
  versions                the library versions that made it
"""
import json
import platform
from pathlib import Path

import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer

ROOT = Path(__file__).resolve().parent.parent.parent
MODEL_DIR = ROOT / "models"
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
OUT = ROOT / "tests" / "fixtures" / "smollm2_logits.json"
PROMPT = "<|im_start|>user\nI feel anxious today.<|im_end|>\n<|im_start|>assistant\n"
HEAD = 2048


def main() -> None:
    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(MODEL_DIR, gguf_file=MODEL_FILE)
    model = AutoModelForCausalLM.from_pretrained(MODEL_DIR, gguf_file=MODEL_FILE, dtype=torch.float32)
    model.eval()
    ids = tok.encode(PROMPT, add_special_tokens=False)
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].to(torch.float64)
    positions = []
    for pos in range(len(ids) - 3, len(ids)):
        row = logits[pos]
        top = torch.topk(row, 5)
        positions.append({
            "position": pos,
            "logits_head": [round(float(x), 6) for x in row[:HEAD]],
            "argmax": int(row.argmax()),
            "max": float(row.max()),
            "logsumexp": float(torch.logsumexp(row, 0)),
            "sum": float(row.sum()),
            "top5": [[int(i), float(v)] for v, i in zip(top.values, top.indices)],
        })
    versions = {"torch": torch.__version__, "transformers": transformers.__version__, "python": platform.python_version()}
    out = {"model": MODEL_FILE, "prompt": PROMPT, "ids": ids, "vocab_size": int(logits.shape[-1]),
           "positions": positions, "versions": versions}
    OUT.write_text(json.dumps(out) + "\n")
    print(f"wrote {OUT}: {len(ids)} ids, argmax per position {[p['argmax'] for p in positions]}")


if __name__ == "__main__":
    main()
