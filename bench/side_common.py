"""What the reference sides of the benchmark share (bench/torch_side.py and
bench/llamacpp_side.py): their error exit and the ids file of `mentalqlm bench inputs`."""
import json
import sys


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
