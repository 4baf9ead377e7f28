"""The llama.cpp side of the end-to-end benchmark (bench/run.py drives it), through
llama-cpp-python built from source by bench/setup.sh: one workload, measured once in this
process after one untimed warm-up, printed as one JSON line on stdout with the same fields
as `mentalqlm bench e2e --json`. Logs go to stderr.

llama.cpp reads the GGUF file as it is (Q4_1 codes, its own CPU kernels), as this runtime's
default CPU path does.

    prefill   each row in turn, from an empty cache, to the last position's logits
    generate  row 0 as the prompt, then exactly --new-tokens greedy tokens (argmax of the
              logits, so an end-of-text token does not stop it), one decode call each;
              decode_seconds times the steps after the first new token

    python bench/llamacpp_side.py --model models/X.gguf --inputs reports/bench/ids.json \\
        --workload generate --threads 2
"""
import json
import os
import time
from importlib.metadata import version

import side_common


def fail(msg):
    side_common.fail("llamacpp_side", msg)


def parse_args():
    # --train-batch and --steps are accepted for a common command line; llama.cpp does not train.
    return side_common.parse_args(__doc__, ["prefill", "generate"], ["cpu"], "llama.cpp threads", trains=False)


def read_inputs(path):
    return side_common.read_inputs("llamacpp_side", path)


def main():
    args = parse_args()
    if not os.path.isfile(args.model):
        fail(f"--model {args.model}: no such file")
    inputs = read_inputs(args.inputs)
    try:
        import llama_cpp
        import numpy as np
    except ImportError as e:
        fail(f"{e}: run bench/setup.sh, which builds llama-cpp-python into bench/.venv")

    seq = inputs["seq"]
    t = time.perf_counter()
    llm = llama_cpp.Llama(
        model_path=args.model,
        n_ctx=seq + args.new_tokens + 8,
        n_batch=seq,
        n_ubatch=seq,
        n_threads=args.threads,
        n_threads_batch=args.threads,
        logits_all=False,
        verbose=False,
    )
    load_seconds = time.perf_counter() - t
    vocab = llm.n_vocab()
    rows = inputs["ids"]
    if max(max(row) for row in rows) >= vocab:
        fail(f"--inputs {args.inputs}: an id is outside the vocabulary of {vocab}")

    def last_logits():
        # The one row of logits llama.cpp keeps from the last decode call (its last token):
        # `Llama.scores` is filled only with logits_all, which would keep every position's.
        return np.ctypeslib.as_array(llama_cpp.llama_get_logits(llm.ctx), shape=(vocab,))

    if args.workload == "prefill":
        tokens = len(rows) * seq

        def unit():
            for row in rows:
                llm.reset()
                llm.eval(row)
                last_logits()
    else:
        tokens = args.new_tokens
        prompt = rows[0]
        made = []
        decode = []

        def unit():
            made.clear()
            llm.reset()
            llm.eval(prompt)
            first = None
            for i in range(args.new_tokens):
                if i > 0:
                    llm.eval([made[-1]])
                made.append(int(np.argmax(last_logits())))
                first = first or time.perf_counter()
            decode.append(time.perf_counter() - first)
            if len(made) != args.new_tokens:
                fail(f"generate made {len(made)} tokens, expected {args.new_tokens}")

    unit()  # warm-up, untimed
    t = time.perf_counter()
    unit()
    seconds = time.perf_counter() - t
    result = {
        "side": "llamacpp",
        "device": "cpu",
        "workload": args.workload,
        "seconds": seconds,
        "tokens": tokens,
        "load_seconds": load_seconds,
        "threads": args.threads,
        "versions": {"llama-cpp-python": version("llama-cpp-python")},
        # The instruction sets llama.cpp was built for and uses ("AVX512 = 1 | ...").
        "system_info": llama_cpp.llama_print_system_info().decode(errors="replace").strip(),
    }
    if args.workload == "generate":
        # From the first new token to the last: the tokens - 1 decoding steps.
        result["decode_seconds"] = decode[-1]
        result["generated_ids"] = made
    print(json.dumps(result))


if __name__ == "__main__":
    main()
