"""The PyTorch side of the end-to-end benchmark (bench/run.py drives it): one workload,
measured once in this process after one untimed warm-up, printed as one JSON line on stdout
with the same fields as `mentalqlm bench e2e --json`. Logs go to stderr.

transformers dequantizes the GGUF to f32, so both sides compute in f32 from the same weights.

    python bench/torch_side.py --model models/X.gguf --inputs reports/bench/ids.json \
        --workload prefill --device cpu --threads 2
"""

import json
import os
import sys
import time
from importlib.metadata import version

import side_common

# Everything is local; never let transformers look for a hub. The progress bars of the GGUF
# conversion would only clutter the stderr tail that run.py shows on a failure.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")


def fail(msg):
    side_common.fail("torch_side", msg)


def parse_args():
    return side_common.parse_args(__doc__, ["prefill", "generate", "train"], ["cpu", "cuda"], "torch CPU threads")


def read_inputs(path, train_batch):
    return side_common.read_inputs("torch_side", path, train_batch)


def main():
    args = parse_args()
    if not os.path.isfile(args.model):
        fail(f"--model {args.model}: no such file")
    inputs = read_inputs(args.inputs, args.train_batch)

    import torch

    # Before anything heavy: the thread pool is sized on first use.
    torch.set_num_threads(args.threads)
    from transformers import AutoModelForCausalLM

    if args.device == "cuda":
        if not torch.cuda.is_available():
            fail("--device cuda: torch sees no CUDA device")
        device_name = f"cuda ({torch.cuda.get_device_name()})"
    else:
        device_name = "cpu"

    def sync():
        if args.device == "cuda":
            torch.cuda.synchronize()

    t = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(
        os.path.dirname(os.path.abspath(args.model)),
        gguf_file=os.path.basename(args.model),
        dtype=torch.float32,
    ).to(args.device)
    sync()
    load_seconds = time.perf_counter() - t

    ids = torch.tensor(inputs["ids"], dtype=torch.long, device=args.device)  # [batch, seq]
    if int(ids.max()) >= model.config.vocab_size:
        fail(f"--inputs {args.inputs}: id {int(ids.max())} is outside the vocabulary of {model.config.vocab_size}")
    batch, seq = ids.shape

    if args.workload == "prefill":
        model.eval()
        tokens = batch * seq

        def unit():
            # Only the last position's logits, the answer logits: [batch, 1, vocab].
            with torch.inference_mode():
                model(input_ids=ids, logits_to_keep=1)

        reps = 1
    elif args.workload == "generate":
        model.eval()
        prompt = ids[:1]  # [1, seq]
        tokens = args.new_tokens
        eos_id = inputs.get("eos_id")
        if eos_id is None:
            eos_id = model.config.eos_token_id

        decode = []

        class Clock:
            """A transformers streamer that notes when the first new token comes (its first
            `put` is the prompt) and when generation ends."""

            def __init__(self):
                self.puts, self.first = 0, None

            def put(self, value):
                self.puts += 1
                if self.puts == 2:
                    sync()
                    self.first = time.perf_counter()

            def end(self):
                sync()
                decode.append(time.perf_counter() - self.first)

        def unit():
            # Exactly new_tokens greedy tokens: min = max keeps EOS from ending it early.
            with torch.inference_mode():
                out = model.generate(
                    prompt,
                    streamer=Clock(),
                    attention_mask=torch.ones_like(prompt),
                    max_new_tokens=args.new_tokens,
                    min_new_tokens=args.new_tokens,
                    do_sample=False,
                    use_cache=True,
                    pad_token_id=inputs["pad_id"],
                    eos_token_id=eos_id,
                )
            if out.shape[1] != seq + args.new_tokens:
                fail(f"generate made {out.shape[1] - seq} tokens, expected {args.new_tokens}")

        reps = 1
    else:
        from peft import LoraConfig, get_peft_model

        # MentalQLM's stage-1 LoRA: r 8, alpha 16, no dropout, every linear layer.
        config = LoraConfig(
            r=8,
            lora_alpha=16,
            lora_dropout=0.0,
            target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
            task_type="CAUSAL_LM",
        )
        model = get_peft_model(model, config)  # freezes the base
        model.train()
        trainable = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(trainable, lr=1e-4, weight_decay=0.0)
        rows = ids[: args.train_batch]  # [train_batch, seq]
        tokens = args.train_batch * seq
        print(f"torch_side: {sum(p.numel() for p in trainable)} trainable parameters", file=sys.stderr)

        def unit():
            # Causal LM loss over every position (transformers shifts the labels).
            loss = model(input_ids=rows, labels=rows).loss
            loss.backward()
            opt.step()
            opt.zero_grad()

        reps = args.steps

    unit()  # warm-up, untimed
    sync()
    t = time.perf_counter()
    for _ in range(reps):
        unit()
    sync()
    seconds = (time.perf_counter() - t) / reps

    result = {
        "side": "torch",
        "device": device_name,
        "workload": args.workload,
        "seconds": seconds,
        "tokens": tokens,
        "load_seconds": load_seconds,
        "threads": args.threads,
        "versions": {name: version(name) for name in ("torch", "transformers", "peft")},
    }
    if args.workload == "generate":
        # From the first new token to the last: the tokens - 1 decoding steps.
        result["decode_seconds"] = decode[-1]
    if args.device == "cuda":
        result["device_peak_bytes"] = torch.cuda.max_memory_allocated()
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
