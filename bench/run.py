"""End-to-end benchmark of mentalqlm against PyTorch (transformers + PEFT) and llama.cpp
(llama-cpp-python, built from source with this CPU's instructions) on this machine.

Makes the token ids once (`mentalqlm bench inputs`), then for each workload runs every side
--runs times, one fresh process per measurement. The order of the sides rotates from round
to round (A B, then B A, ...) so that drift, such as thermal throttling, hits every side.
Each child times one unit of work after one untimed warm-up and prints one JSON line; this
script keeps the median, and reads each child's peak RSS from wait4.

    prefill   every row at once to the last position's logits (the answer logits)
    generate  row 0 as the prompt, exactly --new-tokens greedy tokens with the KV cache
    batched   the same with rows 0 to --decode-rows - 1 decoding together (mentalqlm only);
              its decoding alone is set against generate's, one sequence's
    train     one LoRA step (r 8 on every projection, AdamW) on the first --train-batch rows

speed = the other side's median seconds / mentalqlm's on the same device (cpu against cpu,
wgpu against cuda); 1.0 or more means mentalqlm is no slower. llama.cpp does not train, so
its side runs prefill and generate only; torch does not run batched.

Standard library only: it runs with the system python3. bench/run.sh builds everything first.
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# side name -> (program, device flag, extra flags)
SIDES = {
    "mentalqlm-cpu": ("mentalqlm", "cpu", []),
    # The same with the GGUF codes converted to f32 at load, as the torch side holds them
    # (the default keeps them as codes on the CPU for inference; training is f32 either way).
    "mentalqlm-cpu-f32": ("mentalqlm", "cpu", ["--weights", "f32"]),
    "mentalqlm-wgpu": ("mentalqlm", "wgpu", []),
    "torch-cpu": ("torch", "cpu", []),
    # llama.cpp's CPU backend on the same GGUF codes (prefill and generate).
    "llamacpp-cpu": ("llamacpp", "cpu", []),
    "torch-cuda": ("torch", "cuda", []),
}
# The device pairs that a speed ratio compares: name -> (mentalqlm side, other side).
PAIRS = {
    "cpu": ("mentalqlm-cpu", "torch-cpu"),
    "cpu-f32": ("mentalqlm-cpu-f32", "torch-cpu"),
    "gpu": ("mentalqlm-wgpu", "torch-cuda"),
    "cpu-llamacpp": ("mentalqlm-cpu", "llamacpp-cpu"),
}
# The workloads each program runs (llama.cpp does not train).
PROGRAM_WORKLOADS = {"llamacpp": ("prefill", "generate"), "torch": ("prefill", "generate", "train")}
WORKLOADS = ("prefill", "generate", "batched", "train")


def parse_args():
    threads = len(os.sched_getaffinity(0))
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    # Defaults are relative to the repository root; paths given here, to the working directory.
    p.add_argument("--model", help="the .gguf file (default: models/SmolLM2-135M-Instruct.Q4_1.gguf)")
    p.add_argument("--data", help="the data folder, holding imhi/ (default: ../shared/data)")
    p.add_argument("--runs", type=int, default=5, help="measurements per workload and side (default: 5)")
    p.add_argument("--threads", type=int, default=threads, help=f"CPU threads of each side (default: {threads}, the CPUs)")
    p.add_argument("--workloads", default=",".join(WORKLOADS), help=f"comma-separated, of {','.join(WORKLOADS)} (default: all)")
    p.add_argument(
        "--sides",
        default="mentalqlm-cpu,torch-cpu",
        help=f"comma-separated, of {','.join(SIDES)} (default: mentalqlm-cpu,torch-cpu)",
    )
    p.add_argument("--mentalqlm", help="the mentalqlm binary (default: bin/mentalqlm)")
    p.add_argument("--python", help="the python of the torch and llama.cpp sides (default: bench/.venv/bin/python, made by bench/setup.sh)")
    p.add_argument("--out", help="the JSON report; the ids file goes beside it (default: reports/bench/e2e.json)")
    p.add_argument("--batch", type=int, default=16, help="rows of the inputs, all in one prefill (default: 16)")
    p.add_argument("--seq", type=int, default=256, help="tokens per row (default: 256)")
    p.add_argument("--new-tokens", type=int, default=64, help="tokens per generate (default: 64)")
    p.add_argument("--decode-rows", type=int, default=8, help="sequences decoding together in batched (default: 8)")
    p.add_argument("--train-batch", type=int, default=4, help="rows per train step (default: 4)")
    p.add_argument("--steps", type=int, default=2, help="timed train steps per run, reported as their mean (default: 2)")
    args = p.parse_args()

    defaults = {
        "model": "models/SmolLM2-135M-Instruct.Q4_1.gguf",
        "data": "../shared/data",
        "mentalqlm": "bin/mentalqlm",
        "python": "bench/.venv/bin/python",
        "out": "reports/bench/e2e.json",
    }
    for name, rel in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, os.path.normpath(os.path.join(ROOT, rel)))
    args.workloads = [w for w in args.workloads.split(",") if w]
    args.sides = [s for s in args.sides.split(",") if s]
    for w in args.workloads:
        if w not in WORKLOADS:
            p.error(f"--workloads: unknown workload {w!r}; choose from {','.join(WORKLOADS)}")
    for s in args.sides:
        if s not in SIDES:
            p.error(f"--sides: unknown side {s!r}; choose from {','.join(SIDES)}")
    if not args.workloads or not args.sides:
        p.error("--workloads and --sides need at least one entry each")
    if "batched" in args.workloads and not 1 <= args.decode_rows <= args.batch:
        p.error(f"--decode-rows must be 1 to --batch ({args.batch})")
    for name in ("runs", "threads", "batch", "seq", "new_tokens", "decode_rows", "train_batch", "steps"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def fail(msg):
    print(f"bench: error: {msg}", file=sys.stderr)
    sys.exit(1)


def run_child(cmd, env, what):
    """Runs one child to its end; returns (stdout, peak RSS in KiB). Exits on a failure."""
    # Files, not pipes: the parent reaps with wait4 and reads nothing until the child is done.
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        try:
            child = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env)
        except OSError as e:
            fail(f"{what}: cannot start {cmd[0]}: {e}")
        # wait4 gives this child's own rusage; ru_maxrss is its peak RSS in KiB on Linux.
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = code = os.waitstatus_to_exitcode(status)  # already reaped
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    if code != 0:
        why = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
        tail = "\n".join("  | " + line for line in stderr.rstrip().splitlines()[-20:])
        fail(f"{what} failed ({why})\n  command: {subprocess.list2cmdline(cmd)}\n  stderr tail:\n{tail}")
    return stdout, usage.ru_maxrss


def parse_result(stdout, cmd, what):
    """The child's last JSON line, with the fields every side reports."""
    for line in reversed(stdout.strip().splitlines()):
        try:
            result = json.loads(line)
        except ValueError:
            continue
        if (isinstance(result, dict) and isinstance(result.get("seconds"), (int, float))
                and isinstance(result.get("tokens"), int)):
            return result
        break
    fail(f"{what}: no JSON line with \"seconds\" and \"tokens\" on stdout\n"
         f"  command: {subprocess.list2cmdline(cmd)}\n  stdout: {stdout.strip()[-500:]!r}")


def side_command(args, side, workload, ids_path):
    program, device, extra = SIDES[side]
    # batched is generate with several rows (mentalqlm's --rows).
    common = ["--model", args.model, "--inputs", ids_path, "--workload", "generate" if workload == "batched" else workload,
              "--device", device, "--new-tokens", str(args.new_tokens), "--train-batch", str(args.train_batch),
              "--steps", str(args.steps)]
    if program == "mentalqlm":
        rows = ["--rows", str(args.decode_rows)] if workload == "batched" else []
        return [args.mentalqlm, "bench", "e2e", *common, *rows, *extra, "--json"]
    script = {"torch": "torch_side.py", "llamacpp": "llamacpp_side.py"}[program]
    return [args.python, os.path.join(ROOT, "bench", script), *common, "--threads", str(args.threads)]


def runs_workload(side, workload):
    return workload in PROGRAM_WORKLOADS.get(SIDES[side][0], WORKLOADS)


def machine():
    """CPU model, cores, RAM and GPUs, as far as this machine tells."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    ram_gib = None
    try:
        with open("/proc/meminfo") as f:
            kib = next(int(line.split()[1]) for line in f if line.startswith("MemTotal:"))
        ram_gib = round(kib / 2**20, 1)
    except (OSError, StopIteration, ValueError):
        pass
    gpus = []
    if shutil.which("nvidia-smi"):
        try:
            query = ["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"]
            listing = subprocess.run(query, capture_output=True, text=True, timeout=30).stdout
            gpus = [line.strip() for line in listing.splitlines() if line.strip()]
        except (OSError, subprocess.SubprocessError):
            pass
    return {"cpu": cpu, "cores": os.cpu_count(), "ram_gib": ram_gib, "gpus": gpus}


def summarize(runs, workload, side):
    """Median, min and max seconds, tokens/s and median peak RSS of one workload and side."""
    mine = [r for r in runs if r["workload"] == workload and r["side"] == side]
    secs = [r["seconds"] for r in mine]
    median = statistics.median(secs)
    tokens = mine[0]["tokens"]
    if any(r["tokens"] != tokens for r in mine):
        print(f"bench: warning: {side} {workload} reported different token counts across runs", file=sys.stderr)
    s = {
        "median_s": median,
        "min_s": min(secs),
        "max_s": max(secs),
        "tokens": tokens,
        "tokens_per_s": tokens / median if median > 0 else None,
        "peak_rss_mib": statistics.median(r["peak_rss_kib"] for r in mine) / 1024,
        "load_s_median": statistics.median(r["result"].get("load_seconds", 0.0) for r in mine),
        "device": mine[0]["result"].get("device"),
        "versions": mine[0]["result"].get("versions"),
    }
    decode = [r["result"]["decode_seconds"] for r in mine if "decode_seconds" in r["result"]]
    rows = mine[0]["result"].get("rows") or 1
    if decode and len(decode) == len(mine) and tokens > rows:
        # The decoding steps alone (generate, after the first new token of each row).
        s["rows"] = rows
        s["decode_median_s"] = statistics.median(decode)
        s["decode_tokens_per_s"] = (tokens - rows) / s["decode_median_s"]
    peaks = [r["result"]["device_peak_bytes"] for r in mine if "device_peak_bytes" in r["result"]]
    if peaks:
        s["device_peak_mib"] = statistics.median(peaks) / 2**20
    return s


def print_table(report):
    m = report["machine"]
    gpus = "".join(f"; GPU {g}" for g in m["gpus"])
    print(f"\nmachine: {m['cpu']}, {m['cores']} cores, {m['ram_gib']} GiB RAM{gpus}")
    print(f"date: {report['date']}   threads: {report['threads']}   runs: {report['runs']}   model: {report['model']}")
    print(f"inputs: {report['batch']} x {report['seq']} tokens; generate {report['new_tokens']} tokens; "
          f"train batch {report['train_batch']}, {report['steps']} steps per run\n")
    header = (f"{'workload':<9} {'side':<17} {'median s':>9} {'min s':>8} {'max s':>8} {'tokens/s':>9} "
              f"{'peak RSS MiB':>12}  speed")
    print(header)
    print("-" * len(header))
    for workload, w in report["workloads"].items():
        for side, s in w["sides"].items():
            # The ratios sit on the mentalqlm row of their pairs.
            speed = ", ".join(f"{w['speed'][pair]:.2f} vs {t}" for pair, (mq, t) in PAIRS.items()
                              if mq == side and pair in w["speed"])
            tps = f"{s['tokens_per_s']:.1f}" if s["tokens_per_s"] else "-"
            print(f"{workload:<9} {side:<17} {s['median_s']:>9.3f} {s['min_s']:>8.3f} {s['max_s']:>8.3f} {tps:>9} "
                  f"{s['peak_rss_mib']:>12.0f}  {speed}")
    decoding = [(workload, side, s) for workload, w in report["workloads"].items()
                for side, s in w["sides"].items() if "decode_tokens_per_s" in s]
    if decoding:
        print(f"\ndecoding alone (generate after its first new token, {report['new_tokens'] - 1} steps):")
        for workload, side, s in decoding:
            one = report["workloads"].get("generate", {}).get("sides", {}).get(side)
            scale = ""
            if workload == "batched" and one and "decode_tokens_per_s" in one:
                scale = f"  {s['decode_tokens_per_s'] / one['decode_tokens_per_s']:.2f}x one sequence's"
            print(f"  {side:<17} {s.get('rows', 1)} row(s) {s['decode_median_s']:>7.3f} s  "
                  f"{s['decode_tokens_per_s']:>7.1f} tokens/s{scale}")
    print("\nspeed = the other side's median s / mentalqlm's median s on the same device; "
          ">= 1.00 means mentalqlm is no slower.")


def main():
    args = parse_args()
    if not os.path.isfile(args.model):
        fail(f"--model {args.model}: no such file (scripts/setup-model.sh fetches the default)")
    if not os.access(args.mentalqlm, os.X_OK):
        fail(f"--mentalqlm {args.mentalqlm}: not an executable (bench/run.sh builds it)")
    if any(SIDES[s][0] != "mentalqlm" for s in args.sides) and not os.access(args.python, os.X_OK):
        fail(f"--python {args.python}: not an executable (bench/setup.sh makes bench/.venv)")

    env = dict(os.environ, RAYON_NUM_THREADS=str(args.threads), OMP_NUM_THREADS=str(args.threads))
    out_dir = os.path.dirname(os.path.abspath(args.out))
    os.makedirs(out_dir, exist_ok=True)
    ids_path = os.path.join(out_dir, "ids.json")
    cmd = [args.mentalqlm, "bench", "inputs", "--model", args.model, "--data", args.data,
           "--batch", str(args.batch), "--seq", str(args.seq), "--out", ids_path]
    print(f"bench: making the inputs: {subprocess.list2cmdline(cmd)}", file=sys.stderr)
    run_child(cmd, env, "bench inputs")

    runs = []
    total = sum(args.runs for w in args.workloads for s in args.sides if runs_workload(s, w))
    for workload in args.workloads:
        sides = [s for s in args.sides if runs_workload(s, workload)]
        if not sides:
            print(f"bench: no side runs {workload}; skipped", file=sys.stderr)
            continue
        for r in range(args.runs):
            k = r % len(sides)
            for position, side in enumerate(sides[k:] + sides[:k]):
                cmd = side_command(args, side, workload, ids_path)
                what = f"{side} {workload} run {r + 1}/{args.runs}"
                stdout, rss_kib = run_child(cmd, env, what)
                result = parse_result(stdout, cmd, what)
                runs.append({"workload": workload, "side": side, "round": r + 1, "position": position + 1,
                             "seconds": result["seconds"], "tokens": result["tokens"], "peak_rss_kib": rss_kib,
                             "command": cmd, "result": result})
                print(f"[{len(runs)}/{total}] {what}: {result['seconds']:.3f} s, "
                      f"{result['tokens'] / result['seconds']:.1f} tokens/s, peak RSS {rss_kib / 1024:.0f} MiB",
                      file=sys.stderr)

    workloads = {}
    for workload in args.workloads:
        sides = {side: summarize(runs, workload, side) for side in args.sides if runs_workload(side, workload)}
        if not sides:
            continue
        if len({s["tokens"] for s in sides.values()}) > 1:
            counts = ", ".join(f"{side} {s['tokens']}" for side, s in sides.items())
            print(f"bench: warning: the sides did different work in {workload}: tokens {counts}", file=sys.stderr)
        speed = {pair: sides[t]["median_s"] / sides[mq]["median_s"]
                 for pair, (mq, t) in PAIRS.items() if mq in sides and t in sides}
        workloads[workload] = {"sides": sides, "speed": speed}

    report = {
        "machine": machine(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "threads": args.threads,
        "runs": args.runs,
        "model": args.model,
        "inputs": ids_path,
        "batch": args.batch,
        "seq": args.seq,
        "new_tokens": args.new_tokens,
        "decode_rows": args.decode_rows,
        "train_batch": args.train_batch,
        "steps": args.steps,
        "workloads": workloads,
        "every_run": runs,
    }
    with open(args.out, "w") as f:
        json.dump(report, f, indent=1)
    print_table(report)
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
