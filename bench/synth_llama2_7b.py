#!/usr/bin/env python3
"""Writes a Llama-2-7B-shaped HF folder with random f16 weights, to measure loading and
running a 7B model on a 24 GB machine (`--weights q8`) where no real one can be fetched.

    python3 bench/synth_llama2_7b.py OUT_DIR

Needs numpy and safetensors. Writes about 13.5 GB: sharded f16 safetensors with their
index, Llama-2-7B's config.json, and the test BPE tokenizer.model with the Llama-2 chat
template (the weights are random, so the text it generates means nothing).
"""
import json
import shutil
import sys
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

HIDDEN, INTER, LAYERS, HEADS, VOCAB = 4096, 11008, 32, 32, 32000
SHARD_BYTES = 2 << 30


def main() -> None:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)

    def rand(*shape):
        x = rng.standard_normal(shape, dtype=np.float32)
        x *= 0.02
        return x.astype(np.float16)

    tensors = [("model.embed_tokens.weight", (VOCAB, HIDDEN))]
    for i in range(LAYERS):
        p = f"model.layers.{i}."
        tensors += [
            (p + "input_layernorm.weight", None),
            (p + "self_attn.q_proj.weight", (HIDDEN, HIDDEN)),
            (p + "self_attn.k_proj.weight", (HIDDEN, HIDDEN)),
            (p + "self_attn.v_proj.weight", (HIDDEN, HIDDEN)),
            (p + "self_attn.o_proj.weight", (HIDDEN, HIDDEN)),
            (p + "post_attention_layernorm.weight", None),
            (p + "mlp.gate_proj.weight", (INTER, HIDDEN)),
            (p + "mlp.up_proj.weight", (INTER, HIDDEN)),
            (p + "mlp.down_proj.weight", (HIDDEN, INTER)),
        ]
    tensors += [("model.norm.weight", None), ("lm_head.weight", (VOCAB, HIDDEN))]

    # Shards are written as they fill, so that at most one (2 GiB) is held in memory.
    files = []
    weight_map, total = {}, 0
    current, size = {}, 0

    def flush():
        file = f"model-{len(files) + 1:05d}.safetensors"
        save_file(current, str(out / file), metadata={"format": "pt"})
        files.append(file)
        for name in current:
            weight_map[name] = file
        print(f"{file}: {len(current)} tensors", flush=True)

    for name, shape in tensors:
        value = np.ones(HIDDEN, dtype=np.float16) if shape is None else rand(*shape)
        current[name] = value
        size += value.nbytes
        total += value.nbytes
        if size >= SHARD_BYTES:
            flush()
            current, size = {}, 0
    if current:
        flush()
    (out / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {"total_size": total}, "weight_map": weight_map}, indent=1))
    (out / "config.json").write_text(json.dumps({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "hidden_size": HIDDEN, "intermediate_size": INTER, "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS, "num_key_value_heads": HEADS,
        "max_position_embeddings": 4096, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
        "vocab_size": VOCAB, "tie_word_embeddings": False, "hidden_act": "silu",
        "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "float16",
    }, indent=1))
    fixtures = Path(__file__).resolve().parents[1] / "tests" / "fixtures"
    shutil.copy(fixtures / "spm" / "bpe.model", out / "tokenizer.model")
    shutil.copy(fixtures / "tiny" / "llama2-chat" / "tokenizer_config.json",
                out / "tokenizer_config.json")
    print(f"{out}: {total / 1e9:.1f} GB of f16 weights")


if __name__ == "__main__":
    main()
