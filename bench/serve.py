#!/usr/bin/env python3
"""Throughput of `mentalqlm serve` at several concurrencies (standard library only).

Starts the server (bin/mentalqlm serve, default model unless --model), sends the same
chat requests (IMHI test posts as the paper's prompts, greedy, --max-tokens new tokens) at
each concurrency, and prints requests/s and generated tokens/s beside concurrency 1 (the
requests one at a time). Writes reports/bench/serve.json.

    python3 bench/serve.py --concurrency 1,8,32 --requests 32
    python3 bench/serve.py --models base,explainer   # requests alternate over two models
"""
import argparse
import csv
import json
import os
import platform
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def machine():
    cpu = platform.processor() or "cpu"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{os.cpu_count()} cores of {cpu}"


def prompts(data, n):
    """The first n IMHI DR test queries (the instruction with the post)."""
    out = []
    with open(os.path.join(data, "test", "DR.csv"), newline="") as f:
        for row in csv.DictReader(f):
            out.append(row["query"])
            if len(out) == n:
                break
    return out


def start(args):
    cmd = [os.path.join(ROOT, "bin", args.bin) if os.sep not in args.bin else args.bin, "serve",
           "--port", "0", "--max-batch", str(args.max_batch), "--max-queue", "1024"]
    if "explainer" not in args.models.split(","):
        cmd.append("--no-explainer")
    if args.model:
        cmd += ["--model", args.model]
    proc = subprocess.Popen(cmd, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:
        sys.stderr.write(line)
        if line.startswith("listening on "):
            base = line.split()[2].rstrip("/")
            if base.endswith("/v1"):
                base = base[:-3]
            threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
            return proc, base
    sys.exit("the server did not start")


def post(base, body):
    req = urllib.request.Request(base + "/v1/chat/completions", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=3600) as r:
        return json.load(r)


def run(base, models, texts, concurrency, max_tokens):
    """The requests in order, request i for models[i % len(models)]."""
    bodies = [{"model": models[i % len(models)], "messages": [{"role": "user", "content": t}],
               "max_tokens": max_tokens, "temperature": 0} for i, t in enumerate(texts)]
    t0 = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        answers = list(pool.map(lambda b: post(base, b), bodies))
    secs = time.perf_counter() - t0
    tokens = sum(a["usage"]["completion_tokens"] for a in answers)
    return {"concurrency": concurrency, "requests": len(bodies), "seconds": secs,
            "requests_per_s": len(bodies) / secs, "tokens": tokens, "tokens_per_s": tokens / secs}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="a model for the server (default: the CLI's default model)")
    p.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data", "imhi"))
    p.add_argument("--concurrency", default="1,8,32")
    p.add_argument("--requests", type=int, default=32)
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--max-batch", type=int, default=32)
    p.add_argument("--models", default="base",
                   help="served ids the requests alternate over, `base` for the base model "
                        "(e.g. base,explainer: one batch mixing the base and an adapter)")
    p.add_argument("--bin", default="mentalqlm",
                   help="the CLI to serve with: a name under bin/, or a path")
    p.add_argument("--out", default=os.path.join(ROOT, "reports", "bench", "serve.json"))
    args = p.parse_args()
    texts = prompts(args.data, args.requests)
    proc, base = start(args)
    try:
        with urllib.request.urlopen(base + "/v1/models") as r:
            served = [m["id"] for m in json.load(r)["data"]]
        models = [served[0] if m == "base" else m for m in args.models.split(",")]
        unknown = [m for m in models if m not in served]
        if unknown:
            sys.exit(f"not served: {', '.join(unknown)} (served: {', '.join(served)})")
        run(base, models, texts[:2], 2, 4)  # warm-up
        rows = [run(base, models, texts, int(c), args.max_tokens) for c in args.concurrency.split(",")]
    finally:
        proc.terminate()
        proc.wait()
    one = rows[0]["tokens_per_s"]
    print(f"serve on {machine()}, {args.requests} requests of {args.max_tokens} new tokens (greedy), "
          f"models {', '.join(models)}")
    print("| concurrency | requests/s | generated tokens/s | × concurrency " + str(rows[0]["concurrency"]) + " |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['concurrency']} | {r['requests_per_s']:.2f} | {r['tokens_per_s']:.1f} | {r['tokens_per_s'] / one:.2f} |")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"machine": machine(), "max_tokens": args.max_tokens, "models": models, "rows": rows},
                  f, indent=1)


if __name__ == "__main__":
    main()
