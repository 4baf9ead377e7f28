#!/usr/bin/env python3
"""PEFT references for LoRA (tests/fixtures/lora/): adapters saved by PEFT on the tiny
models (run gen_tiny_models.py first), logits with the adapter, merged logits, and the
gradients of every lora_A / lora_B for a masked causal-LM loss. Fixed seeds; paths relative
to this file."""
import json
import shutil
from pathlib import Path

import peft
import torch
import transformers
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM

ROOT = Path(__file__).resolve().parent.parent / "fixtures"
OUT = ROOT / "lora"


def make(name, targets, r, alpha, seed):
    base = AutoModelForCausalLM.from_pretrained(ROOT / "tiny" / name, dtype=torch.float32).eval()
    cfg = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=0.0, target_modules=targets, task_type="CAUSAL_LM")
    model = get_peft_model(base, cfg).eval()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:  # PEFT starts B at zero; a zero B would test nothing
                p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
    return model


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    ref = json.loads((ROOT / "tiny" / "reference.json").read_text())
    ids = ref["token_ids"][1][:24]
    masked = 10  # the loss covers tokens 10.. (an "answer"), as stage-1 training does
    out = {"ids": ids, "loss_from": masked, "cases": {}}
    for name, targets, r, alpha, seed in [
        ("llama", ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"], 4, 8, 1),
        ("qwen2", ["q_proj", "v_proj"], 2, 5, 2),
    ]:
        model = make(name, targets, r, alpha, seed)
        adapter_dir = OUT / f"{name}-adapter"
        if adapter_dir.exists():
            shutil.rmtree(adapter_dir)
        model.save_pretrained(adapter_dir)
        # Keep the fixture free of this machine's paths.
        cfg_path = adapter_dir / "adapter_config.json"
        cfg = json.loads(cfg_path.read_text())
        cfg["base_model_name_or_path"] = f"tests/fixtures/tiny/{name}"
        cfg_path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
        x = torch.tensor([ids])
        labels = torch.tensor([[-100] * masked + ids[masked:]])
        with torch.no_grad():
            logits = model(input_ids=x).logits[0]
        model.train()  # dropout is 0: train mode only enables gradients, outputs are the same
        model.zero_grad()
        loss = model(input_ids=x, labels=labels).loss
        loss.backward()
        grads = {}
        for n, p in model.named_parameters():
            if p.grad is not None:
                key = n.replace(".default", "")
                grads[key] = [round(v, 9) for v in p.grad.flatten().tolist()]
        merged = model.merge_and_unload().eval()
        with torch.no_grad():
            merged_logits = merged(input_ids=x).logits[0]
        out["cases"][name] = {
            "adapter": adapter_dir.name,
            "logits": [[round(v, 6) for v in row] for row in logits.tolist()],
            "merged_max_diff": float((merged_logits - logits).abs().max()),
            "loss": loss.item(),
            "grads": grads,
        }
    (OUT / "reference.json").write_text(json.dumps(out))
    (OUT / "versions.json").write_text(json.dumps(
        {"peft": peft.__version__, "torch": torch.__version__, "transformers": transformers.__version__}, indent=2) + "\n")
    print("wrote", OUT)


if __name__ == "__main__":
    main()
