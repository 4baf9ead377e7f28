#!/usr/bin/env python3
"""PEFT references for LoRA (tests/fixtures/lora/): adapters saved by PEFT on the tiny
models (run gen_tiny_models.py first), logits with the adapter, merged logits, and the
gradients of every lora_A / lora_B for a masked causal-LM loss; the stage-2 head's loss and
gradients (head.json, head-adapter/, head/); torch.optim.AdamW with clip_grad_norm_
(adamw.json); and the check that PEFT loads an adapter saved by mentalqlm
(saved-here/, written by the Rust test `adapter_saved_here_is_current` with
MENTALQLM_BLESS=1) with the logits mentalqlm computed. Fixed seeds; paths relative to this
file."""
import json
import shutil
from pathlib import Path

import peft
import safetensors.torch
import torch
import transformers
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM

ROOT = Path(__file__).resolve().parent.parent / "fixtures"
OUT = ROOT / "lora"


def make(name, targets, r, alpha, seed):
    base = AutoModelForCausalLM.from_pretrained(ROOT / "tiny" / name, dtype=torch.float32).eval()
    cfg = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=0.0, target_modules=targets, task_type="CAUSAL_LM")
    torch.manual_seed(seed)  # PEFT draws lora_A from the global generator
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
        cfg["target_modules"] = sorted(cfg["target_modules"])  # a set in PEFT: fix the order
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
    head_case()
    adamw_case()
    check_saved_here()
    (OUT / "versions.json").write_text(json.dumps(
        {"peft": peft.__version__, "torch": torch.__version__, "transformers": transformers.__version__}, indent=2) + "\n")
    print("wrote", OUT)


def grads_of(model):
    return {n.replace(".default", ""): [round(v, 9) for v in p.grad.flatten().tolist()]
            for n, p in model.named_parameters() if p.grad is not None}


def head_case():
    """Stage 2 on the tiny Qwen2: LoRA r 4 (q, v), masked mean pool of the final hidden state
    over a left-padded batch, LayerNorm, Linear(3), mean cross-entropy."""
    model = make("qwen2", ["q_proj", "v_proj"], 4, 8, 3)
    adapter_dir = OUT / "head-adapter"
    if adapter_dir.exists():
        shutil.rmtree(adapter_dir)
    model.save_pretrained(adapter_dir)
    cfg_path = adapter_dir / "adapter_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["base_model_name_or_path"] = "tests/fixtures/tiny/qwen2"
    cfg["target_modules"] = sorted(cfg["target_modules"])
    cfg_path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    hidden = model.config.hidden_size
    gen = torch.Generator().manual_seed(4)
    norm = torch.nn.LayerNorm(hidden, eps=1e-5)
    linear = torch.nn.Linear(hidden, 3)
    with torch.no_grad():
        norm.weight.copy_(1 + 0.1 * torch.randn(hidden, generator=gen))
        norm.bias.copy_(0.1 * torch.randn(hidden, generator=gen))
        linear.weight.copy_(0.2 * torch.randn(3, hidden, generator=gen))
        linear.bias.copy_(0.1 * torch.randn(3, generator=gen))
    head_dir = OUT / "head"
    head_dir.mkdir(exist_ok=True)
    safetensors.torch.save_file({
        "layer_norm.weight": norm.weight.detach().contiguous(),
        "layer_norm.bias": norm.bias.detach().contiguous(),
        "classifier.weight": linear.weight.detach().contiguous(),
        "classifier.bias": linear.bias.detach().contiguous(),
    }, head_dir / "classifier_head.safetensors")
    (head_dir / "classifier.json").write_text(json.dumps({
        "dataset": "synthetic", "labels": ["a", "b", "c"], "hidden_size": hidden,
        "pool_include_padding": False, "max_length": 16}, indent=2) + "\n")
    rows = [[5, 40, 41, 42, 7, 9, 100, 200, 33, 12], [17, 18, 250, 3, 60]]
    labels = [2, 0]
    n = max(len(r) for r in rows)
    ids = torch.tensor([[0] * (n - len(r)) + r for r in rows])
    mask = torch.tensor([[0] * (n - len(r)) + [1] * len(r) for r in rows])
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    model.train()
    model.zero_grad()
    states = model.base_model.model.model(input_ids=ids, attention_mask=mask, position_ids=pos).last_hidden_state
    m = mask.unsqueeze(-1).float()
    pooled = (states * m).sum(1) / m.sum(1)
    logits = linear(norm(pooled))
    loss = torch.nn.functional.cross_entropy(logits, torch.tensor(labels))
    loss.backward()
    grads = grads_of(model)
    for name, p in [("layer_norm.weight", norm.weight), ("layer_norm.bias", norm.bias),
                    ("classifier.weight", linear.weight), ("classifier.bias", linear.bias)]:
        grads["head." + name] = [round(v, 9) for v in p.grad.flatten().tolist()]
    (OUT / "head.json").write_text(json.dumps({
        "rows": rows, "labels": labels, "loss": loss.item(),
        "logits": logits.detach().tolist(), "grads": grads}))


def adamw_case():
    """Three updates of torch.optim.AdamW after clip_grad_norm_ over two tensors."""
    gen = torch.Generator().manual_seed(5)
    params = [torch.randn(3, 4, generator=gen).requires_grad_(), torch.randn(5, generator=gen).requires_grad_()]
    initial = [p.detach().clone() for p in params]
    opt = torch.optim.AdamW(params, lr=0.05, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1)
    steps = []
    for _ in range(3):
        grads = [torch.randn(p.shape, generator=gen) * 2 for p in params]
        for p, g in zip(params, grads):
            p.grad = g.clone()
        norm = torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        steps.append({"grads": [g.flatten().tolist() for g in grads], "norm": norm.item()})
    (OUT / "adamw.json").write_text(json.dumps({
        "lr": 0.05, "weight_decay": 0.1, "max_grad_norm": 1.0,
        "initial": [p.flatten().tolist() for p in initial], "steps": steps,
        "final": [p.detach().flatten().tolist() for p in params]}))


def check_saved_here():
    """PEFT loads the adapter mentalqlm saved and gives the logits mentalqlm computed."""
    from peft import PeftModel
    saved = OUT / "saved-here"
    if not (saved / "adapter_model.safetensors").exists():
        print("saved-here/ missing: run `MENTALQLM_BLESS=1 cargo test --release --workspace "
              "adapter_saved_here` first")
        return
    want = json.loads((saved / "logits.json").read_text())
    base = AutoModelForCausalLM.from_pretrained(ROOT / "tiny" / "llama", dtype=torch.float32).eval()
    model = PeftModel.from_pretrained(base, saved).eval()
    with torch.no_grad():
        got = model(input_ids=torch.tensor([want["ids"]])).logits[0]
    diff = float((got - torch.tensor(want["logits"])).abs().max())
    assert diff < 1e-4, f"PEFT's logits differ from mentalqlm's by {diff}"
    (saved / "peft_check.json").write_text(json.dumps(
        {"peft": peft.__version__, "max_abs_diff": diff}, indent=2) + "\n")
    print("PEFT loads saved-here/: max |Δlogit|", diff)


if __name__ == "__main__":
    main()
