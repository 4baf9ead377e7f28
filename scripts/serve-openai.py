#!/usr/bin/env python3
"""`mentalqlm serve` driven by the official `openai` client, as the seed's
infer_vllm_thread.py drives vLLM: api_key "EMPTY", a chat completion, a streamed one, then
IMHI test instructions sent from many threads at temperature 0.7. Not run in CI (it needs
the `openai` package): start the server first (`bin/mentalqlm serve`), then

    python3 -m venv /tmp/oai && /tmp/oai/bin/pip install openai
    /tmp/oai/bin/python scripts/serve-openai.py --threads 64 --requests 64
"""
import argparse
import csv
import os
import time
from concurrent.futures import ThreadPoolExecutor

from openai import OpenAI

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base-url", default="http://127.0.0.1:8080/v1")
    p.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data", "imhi"))
    p.add_argument("--dataset", default="DR")
    p.add_argument("--threads", type=int, default=64)
    p.add_argument("--requests", type=int, default=64)
    p.add_argument("--max-tokens", type=int, default=128)
    args = p.parse_args()
    client = OpenAI(base_url=args.base_url, api_key="EMPTY")
    models = [m.id for m in client.models.list().data]
    print("models:", ", ".join(models))
    model = "explainer" if "explainer" in models else models[0]

    r = client.chat.completions.create(
        model=model, temperature=0, max_tokens=args.max_tokens,
        messages=[{"role": "user", "content": "Consider this post: \"I can't sleep and nothing "
                   "feels worth doing anymore.\" Question: Does the poster suffer from depression?"}])
    print(f"\nchat ({model}, greedy): {r.choices[0].message.content!r}")
    print(f"usage: {r.usage.prompt_tokens} prompt + {r.usage.completion_tokens} completion tokens, "
          f"finish_reason {r.choices[0].finish_reason}")

    print("\nstream: ", end="", flush=True)
    chunks = 0
    for chunk in client.chat.completions.create(
            model=model, temperature=0, max_tokens=48, stream=True,
            messages=[{"role": "user", "content": "How can I cope with exam stress?"}]):
        if chunk.choices and chunk.choices[0].delta.content:
            print(chunk.choices[0].delta.content, end="", flush=True)
            chunks += 1
    print(f"\n({chunks} chunks)")

    with open(os.path.join(args.data, "test", f"{args.dataset}.csv"), newline="") as f:
        queries = [row["query"] for row in csv.DictReader(f)][: args.requests]

    def ask(q):
        out = client.chat.completions.create(model=model, messages=[{"role": "user", "content": q}],
                                             temperature=0.7, max_tokens=args.max_tokens)
        return out.choices[0].message.content, out.usage.completion_tokens

    t0 = time.perf_counter()
    with ThreadPoolExecutor(args.threads) as pool:
        answers = list(pool.map(ask, queries))
    secs = time.perf_counter() - t0
    tokens = sum(n for _, n in answers)
    print(f"\n{len(answers)} {args.dataset} test instructions from {args.threads} threads: "
          f"{secs:.1f} s, {tokens / secs:.1f} generated tokens/s; first answer:\n  {answers[0][0][:300]!r}")


if __name__ == "__main__":
    main()
