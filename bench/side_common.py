"""What the reference sides of the benchmark share (bench/torch_side.py and
bench/llamacpp_side.py): their command line, their error exit and the ids file of
`mentalqlm bench inputs`."""
import argparse
import json
import os
import sys


def parse_args(doc, workloads, devices, threads_help, trains=True):
    """The command line every side takes from bench/run.py. A side that does not train
    (`trains=False`) still accepts --train-batch and --steps, unlisted."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="the .gguf file")
    p.add_argument("--inputs", required=True, help="the ids JSON of `mentalqlm bench inputs`")
    p.add_argument("--workload", required=True, choices=workloads)
    p.add_argument("--device", default="cpu", choices=devices)
    p.add_argument("--threads", type=int, default=os.cpu_count(), help=threads_help)
    p.add_argument("--new-tokens", type=int, default=64, help="tokens to generate (generate)")
    p.add_argument("--train-batch", type=int, default=4,
                   help="rows per step (train)" if trains else argparse.SUPPRESS)
    p.add_argument("--steps", type=int, default=2,
                   help="timed steps, reported as their mean (train)" if trains else argparse.SUPPRESS)
    args = p.parse_args()
    checked = ("threads", "new_tokens", "train_batch", "steps") if trains else ("threads", "new_tokens")
    for name in checked:
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def fail(side, msg):
    print(f"{side}: error: {msg}", file=sys.stderr)
    sys.exit(2)


def read_inputs(side, path, train_batch=None):
    """The ids file: {"batch", "seq", "ids": [[id] * seq] * batch, "pad_id", "eos_id"}."""
    try:
        with open(path) as f:
            inputs = json.load(f)
    except (OSError, ValueError) as e:
        fail(side, f"--inputs {path}: {e}")
    ids, batch, seq = inputs.get("ids"), inputs.get("batch"), inputs.get("seq")
    if not isinstance(ids, list) or len(ids) != batch or any(len(row) != seq for row in ids):
        fail(side, f"--inputs {path}: expected {batch} rows of {seq} ids under \"ids\"")
    if train_batch is not None and train_batch > batch:
        fail(side, f"--train-batch {train_batch} is more than the {batch} rows of {path}")
    return inputs
