#!/usr/bin/env python3
"""Writes a tiny random Llama-2-chat folder as MentaLLaMA's is laid out, and transformers'
logits and chat ids for it.

Run from anywhere after gen_spm_fixtures.py (it reuses tests/fixtures/spm/bpe.model and
the Llama-2 chat template recorded there). Needs torch, transformers 4.57 (for the slow
LlamaTokenizer, as gen_spm_fixtures.py says) and safetensors.

Output:
  tests/fixtures/tiny/llama2-chat/
      config.json, sharded f16 safetensors (model.safetensors.index.json and its shards),
      tokenizer.model (no tokenizer.json), tokenizer_config.json with the chat template.
      Random weights: 2 layers, hidden 64, 4 heads / 2 KV heads, MLP 96, untied head,
      vocabulary 3000 (the BPE model's); every row a whole number of 32-value blocks,
      so `--weights q8` quantizes every projection and both tables.
  tests/fixtures/tiny/llama2_chat.json
      `messages`, the `ids` apply_chat_template gives for them (the slow tokenizer loaded
      from the folder), and the last position's `logits` of LlamaForCausalLM in f32 over
      those ids (the f16 weights read as f32, as this runtime reads them).
"""
import json
import shutil
from pathlib import Path

import torch
import transformers
from transformers import LlamaConfig, LlamaForCausalLM, LlamaTokenizer

HERE = Path(__file__).resolve().parent
FIX = HERE.parent / "fixtures"
OUT = FIX / "tiny" / "llama2-chat"

MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Consider this post: \"I haven't slept in days and everything feels "
     "pointless.\" Question: Does the poster suffer from depression?"},
]


def main() -> None:
    torch.manual_seed(20261203)
    spm = json.loads((FIX / "spm" / "expected.json").read_text())
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    config = LlamaConfig(
        vocab_size=3000, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
        rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False,
        bos_token_id=1, eos_token_id=2, pad_token_id=None,
    )
    model = LlamaForCausalLM(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.08)
        for layer in model.model.layers:
            layer.input_layernorm.weight.uniform_(0.8, 1.2)
            layer.post_attention_layernorm.weight.uniform_(0.8, 1.2)
        model.model.norm.weight.uniform_(0.8, 1.2)
    model = model.to(torch.float16)
    model.save_pretrained(OUT, safe_serialization=True, max_shard_size="200KB")
    shutil.copy(FIX / "spm" / "bpe.model", OUT / "tokenizer.model")
    (OUT / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "LlamaTokenizer",
        "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
        "add_bos_token": True, "add_eos_token": False, "legacy": True,
        "chat_template": spm["llama2_chat_template"],
    }, indent=1) + "\n")
    for extra in ["generation_config.json"]:
        (OUT / extra).unlink(missing_ok=True)

    tok = LlamaTokenizer.from_pretrained(OUT)
    ids = tok.apply_chat_template(MESSAGES, tokenize=True)
    if isinstance(ids, dict):
        ids = ids["input_ids"]
    text = tok.apply_chat_template(MESSAGES, tokenize=False)

    f32 = LlamaForCausalLM.from_pretrained(OUT, torch_dtype=torch.float32).eval()
    with torch.no_grad():
        logits = f32(torch.tensor([ids])).logits[0, -1].tolist()
    (FIX / "tiny" / "llama2_chat.json").write_text(json.dumps({
        "generator": "tests/scripts/gen_llama2_fixtures.py",
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
        "messages": MESSAGES,
        "text": text,
        "ids": ids,
        "logits": logits,
    }) + "\n")
    print(sorted(p.name for p in OUT.iterdir()), len(ids), "ids")


if __name__ == "__main__":
    main()
