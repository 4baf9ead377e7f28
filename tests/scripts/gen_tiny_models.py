#!/usr/bin/env python3
"""Writes the tiny random-weight HF models and reference outputs the Rust tests compare with.

Run from anywhere: paths are relative to this file. Needs torch, transformers, tokenizers
(see tests/scripts/requirements.txt); CI needs none of them, only what this wrote.

Output (tests/fixtures/tiny/):
  tokenizer.json          a byte-level BPE tokenizer trained on a small text, ChatML specials
  qwen2/                  Qwen2: q/k/v biases, GQA (6 heads / 2 KV), tied embeddings, odd sizes
  qwen2-f16/, qwen2-bf16/ the same weights stored as float16 / bfloat16
  llama/                  Llama: no biases, GQA (3 / 1), untied head
  qwen2-vocab-mismatch/   config + weights whose vocabulary is smaller than the tokenizer's
  reference.json          logits, batched left-padded logits, greedy generations, token ids
  versions.json           the library versions that made them
"""
import json
import os
import shutil
from pathlib import Path

import torch
import transformers
import tokenizers
from tokenizers import Tokenizer, models, pre_tokenizers, decoders, trainers
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

OUT = Path(__file__).resolve().parent.parent / "fixtures" / "tiny"
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CORPUS = [
    "I have been feeling down and tired for weeks, and nothing seems to help.",
    "Consider this post: \"I can't sleep, work is stressful.\" Question: Does the poster suffer from stress?",
    "Yes, the poster suffers from stress. Reasoning: the post mentions work pressure and sleep problems.",
    "No, the poster does not suffer from depression. Reasoning: the tone is calm and hopeful.",
    "school financial family social work health emotion decision other 0123456789",
    "Ünïcödé text, emojis 🙂 and tabs\tand  double  spaces.",
]
TEXTS = [
    "Hello world",
    "Consider this post: \"I feel anxious.\" Question: Does the poster suffer from stress?",
    "<|im_start|>user\nhi there<|im_end|>\n<|im_start|>assistant\n",
    "Ünïcödé 🙂  two  spaces\tand tab 2024",
]


def build_tokenizer() -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=330,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS * 4, trainer)
    return tok


def randomize(model: torch.nn.Module, seed: int) -> None:
    """HF's default init (std 0.02) gives near-zero logits that any code would match; use
    larger weights and non-trivial norms and biases so the comparison can fail."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(1.0 + 0.3 * torch.randn(p.shape, generator=gen))
            elif name.endswith("bias"):
                p.copy_(0.2 * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(torch.randn(p.shape, generator=gen) / p.shape[-1] ** 0.5 * 1.5)


def save(model, path: Path, tok_path: Path, dtype=None) -> None:
    if path.exists():
        shutil.rmtree(path)
    m = model if dtype is None else model.to(dtype)
    m.save_pretrained(path, safe_serialization=True)
    # One tokenizer for every tiny model: a link, not a copy of it in each folder.
    (path / "tokenizer.json").symlink_to(os.path.relpath(tok_path, path))
    for extra in ["generation_config.json"]:
        (path / extra).unlink(missing_ok=True)


def logits_of(model, ids):
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].float()


def batched_logits(model, rows, pad_id):
    """Left-padded batch, positions as HF's generate computes them (cumsum of the mask)."""
    n = max(len(r) for r in rows)
    ids = torch.tensor([[pad_id] * (n - len(r)) + r for r in rows])
    mask = torch.tensor([[0] * (n - len(r)) + [1] * len(r) for r in rows])
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, position_ids=pos).logits.float()
    return [out[i, n - len(r):].tolist() for i, r in enumerate(rows)]


def greedy(model, rows, pad_id, new_tokens=8):
    """HF's own greedy generation with left padding; also the top-2 margin at each step so
    the Rust test knows where a near-tie makes the comparison meaningless."""
    n = max(len(r) for r in rows)
    ids = torch.tensor([[pad_id] * (n - len(r)) + r for r in rows])
    mask = torch.tensor([[0] * (n - len(r)) + [1] * len(r) for r in rows])
    with torch.no_grad():
        out = model.generate(
            input_ids=ids, attention_mask=mask, max_new_tokens=new_tokens, do_sample=False,
            output_scores=True, return_dict_in_generate=True, pad_token_id=pad_id, eos_token_id=None,
        )
    seqs = out.sequences[:, n:].tolist()
    margins = []
    for step in out.scores:
        top = step.float().topk(2, dim=-1).values
        margins.append((top[:, 0] - top[:, 1]).tolist())
    margins = [list(m) for m in zip(*margins)]
    return seqs, margins


def rounded(x, digits=6):
    if isinstance(x, list):
        return [rounded(v, digits) for v in x]
    return round(float(x), digits)


def main() -> None:
    torch.manual_seed(0)
    OUT.mkdir(parents=True, exist_ok=True)
    tok = build_tokenizer()
    tok_path = OUT / "tokenizer.json"
    tok.save(str(tok_path))
    vocab = tok.get_vocab_size()
    pad_id = tok.token_to_id("<|endoftext|>")
    eos_id = tok.token_to_id("<|im_end|>")

    qcfg = Qwen2Config(
        vocab_size=vocab, hidden_size=48, intermediate_size=100, num_hidden_layers=2,
        num_attention_heads=6, num_key_value_heads=2, max_position_embeddings=256,
        rms_norm_eps=1e-6, rope_theta=10000.0, tie_word_embeddings=True,
        bos_token_id=pad_id, eos_token_id=eos_id,
    )
    lcfg = LlamaConfig(
        vocab_size=vocab, hidden_size=36, intermediate_size=70, num_hidden_layers=3,
        num_attention_heads=3, num_key_value_heads=1, max_position_embeddings=256,
        rms_norm_eps=1e-5, rope_theta=100000.0, tie_word_embeddings=False,
        bos_token_id=pad_id, eos_token_id=eos_id,
    )
    qwen = Qwen2ForCausalLM(qcfg).float().eval()
    randomize(qwen, 1)
    llama = LlamaForCausalLM(lcfg).float().eval()
    randomize(llama, 2)

    seqs = [tok.encode(t).ids for t in TEXTS]
    ref = {"texts": TEXTS, "token_ids": seqs, "pad_id": pad_id, "eos_id": eos_id, "models": {}}
    for name, model in [("qwen2", qwen), ("llama", llama)]:
        save(model, OUT / name, tok_path)
        entry = {
            "logits": [rounded(logits_of(model, s).tolist()) for s in seqs[:2]],
            "batched": rounded(batched_logits(model, seqs[:3], pad_id)),
        }
        gen, margins = greedy(model, seqs[:3], pad_id)
        entry["greedy"] = gen
        entry["greedy_margins"] = rounded(margins)
        ref["models"][name] = entry

    # Half-precision copies: the reference is the f32 model (the Rust test allows the
    # format's precision), plus the logits of the rounded weights themselves.
    for name, dtype in [("qwen2-f16", torch.float16), ("qwen2-bf16", torch.bfloat16)]:
        copy = Qwen2ForCausalLM(qcfg).eval()
        copy.load_state_dict(qwen.state_dict())
        save(copy, OUT / name, tok_path, dtype)
        # A fresh f32 model with the rounded weights: `copy.float()` would keep the rotary
        # `inv_freq` buffer that `.to(float16)` rounded, which no file stores.
        rounded_model = Qwen2ForCausalLM(qcfg).float().eval()
        rounded_model.load_state_dict({k: v.float() for k, v in copy.state_dict().items()})
        ref["models"][name] = {"logits": [rounded(logits_of(rounded_model, s).tolist()) for s in seqs[:2]]}

    # A model whose vocabulary is smaller than its tokenizer's ids.
    small = Qwen2Config(**{**qcfg.to_dict(), "vocab_size": vocab - 40})
    save(Qwen2ForCausalLM(small).eval(), OUT / "qwen2-vocab-mismatch", tok_path)

    (OUT / "reference.json").write_text(json.dumps(ref))
    versions = {"torch": torch.__version__, "transformers": transformers.__version__,
                "tokenizers": tokenizers.__version__}
    (OUT / "versions.json").write_text(json.dumps(versions, indent=2) + "\n")
    print("wrote", OUT, versions)


if __name__ == "__main__":
    main()
