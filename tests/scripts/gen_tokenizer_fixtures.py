#!/usr/bin/env python3
"""Writes the reference token ids for the tokenizers the Rust code builds from GGUF metadata.

Run from anywhere: paths are relative to this file. Needs transformers, tokenizers, gguf and
numpy (tests/scripts/requirements.txt), and the default model from scripts/setup-model.sh.

Output:
  tests/fixtures/smollm2_tokens.json
      For each text: `ids` from transformers' own GGUF loader
      (`AutoTokenizer.from_pretrained(models/, gguf_file=...)`), encoded without special
      tokens, and its decoding. Also `ids_upstream`: the same vocabulary and merges under the
      pre-tokenizer of SmolLM2's published tokenizer.json (Digits(individual) + ByteLevel),
      which is what llama.cpp's `smollm` pre-tokenizer does; transformers' GGUF loader uses
      plain ByteLevel instead. `agree` says whether the two matched on every text.
  tests/fixtures/gguf/tiny_qwen2_tok.gguf
      A metadata-only GGUF (architecture qwen2, tokenizer.ggml.pre = qwen2) holding the byte
      BPE of tests/fixtures/tiny/tokenizer.json plus one user-defined token `<think>`.
  tests/fixtures/gguf/tiny_qwen2_tokens.json
      transformers' ids for it (which applies Qwen2's split regex for `pre = qwen2`).
  tests/fixtures/tokenizer_versions.json
"""
import json
import platform
from pathlib import Path

import gguf
import tokenizers
import transformers
from tokenizers import Tokenizer, pre_tokenizers
from transformers import AutoTokenizer

ROOT = Path(__file__).resolve().parent.parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
MODEL_DIR = ROOT / "models"
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

TEXTS = [
    "Hello world",
    "Hello, how are you today?",
    "I'm sure they'll say we've done it, didn't we? I'M LOUD",
    "12345 apples, 3.14159 pies and 2024-06-11",
    " 7 8 9 0 and x1y22z333",
    "\u00dcn\u00efc\u00f6d\u00e9 na\u00efve caf\u00e9 \u2014 \u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8",
    "Emoji: \U0001F642\U0001F44D\U0001F3FD\U0001F389 and \u2764\ufe0f",
    "Multiple   spaces    here",
    "tabs\tand\nnewlines\r\n\n end\t\t",
    "   leading and trailing   ",
    "<|im_start|>user\nhi<|im_end|>",
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
    "I feel anxious about exams.<|im_end|>\n<|im_start|>assistant\n",
    "<|endoftext|>after special",
    "code: fn main() { println!(\"{}\", x + 1); }",
    "\u041f\u0440\u0438\u0432\u0435\u0442 \u043c\u0438\u0440! \u0645\u0631\u062d\u0628\u0627 \uff21\uff4c\uff4c",
    "",
]
TINY_TEXTS = [
    "Hello world",
    "I'M sure they'll say we've done it",
    "12345 and 3.14",
    "tabs\tand\nnewlines\r\n\n end  ",
    "<|im_start|>user\nhi there<|im_end|>\n",
    "a<think>b <think> c",
    "\u00dcn\u00efc\u00f6d\u00e9 \U0001F642  two  spaces",
]


def smollm2() -> dict:
    tok = AutoTokenizer.from_pretrained(MODEL_DIR, gguf_file=MODEL_FILE)
    # SmolLM2's published pre-tokenizer over the same vocabulary and merges.
    upstream = Tokenizer.from_str(tok.backend_tokenizer.to_str())
    upstream.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)]
    )
    cases = []
    for text in TEXTS:
        ids = tok.encode(text, add_special_tokens=False)
        cases.append({
            "text": text,
            "ids": ids,
            "ids_upstream": upstream.encode(text, add_special_tokens=False).ids,
            "decoded": tok.decode(ids, skip_special_tokens=False),
        })
    agree = all(c["ids"] == c["ids_upstream"] for c in cases)
    return {"model": MODEL_FILE, "agree": agree, "cases": cases}


def write_tiny_qwen2() -> Path:
    tiny = json.loads((FIXTURES / "tiny" / "tokenizer.json").read_text())
    vocab = sorted(tiny["model"]["vocab"].items(), key=lambda kv: kv[1])
    tokens = [t for t, _ in vocab] + ["<think>"]
    special = {t["content"] for t in tiny["added_tokens"] if t["special"]}
    types = [3 if t in special else 1 for t in tokens[:-1]] + [4]
    merges = [" ".join(m) if isinstance(m, list) else m for m in tiny["model"]["merges"]]

    path = FIXTURES / "gguf" / "tiny_qwen2_tok.gguf"
    w = gguf.GGUFWriter(path, arch="qwen2")
    w.add_uint32("qwen2.block_count", 2)
    w.add_uint32("qwen2.context_length", 128)
    w.add_uint32("qwen2.embedding_length", 48)
    w.add_uint32("qwen2.feed_forward_length", 96)
    w.add_uint32("qwen2.attention.head_count", 6)
    w.add_uint32("qwen2.attention.head_count_kv", 2)
    w.add_float32("qwen2.rope.freq_base", 1000000.0)
    w.add_float32("qwen2.attention.layer_norm_rms_epsilon", 1e-6)
    w.add_string("tokenizer.ggml.model", "gpt2")
    w.add_string("tokenizer.ggml.pre", "qwen2")
    w.add_array("tokenizer.ggml.tokens", tokens)
    w.add_array("tokenizer.ggml.token_type", types)
    w.add_array("tokenizer.ggml.merges", merges)
    w.add_uint32("tokenizer.ggml.bos_token_id", tokens.index("<|endoftext|>"))
    w.add_uint32("tokenizer.ggml.eos_token_id", tokens.index("<|im_end|>"))
    w.add_uint32("tokenizer.ggml.padding_token_id", tokens.index("<|endoftext|>"))
    w.add_bool("tokenizer.ggml.add_bos_token", False)
    w.add_string("tokenizer.chat_template", "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}")
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def tiny_qwen2(path: Path) -> dict:
    tok = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    cases = [{"text": t, "ids": tok.encode(t, add_special_tokens=False)} for t in TINY_TEXTS]
    return {"model": path.name, "cases": cases}


def main() -> None:
    (FIXTURES / "gguf").mkdir(parents=True, exist_ok=True)
    smol = smollm2()
    (FIXTURES / "smollm2_tokens.json").write_text(json.dumps(smol, indent=1, ensure_ascii=False) + "\n")
    if not smol["agree"]:
        print("note: transformers' GGUF tokenizer and SmolLM2's upstream pre-tokenizer disagree on some texts")
    tiny = tiny_qwen2(write_tiny_qwen2())
    (FIXTURES / "gguf" / "tiny_qwen2_tokens.json").write_text(json.dumps(tiny, indent=1, ensure_ascii=False) + "\n")
    versions = {
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "gguf": dist_version("gguf"),
        "python": platform.python_version(),
    }
    (FIXTURES / "tokenizer_versions.json").write_text(json.dumps(versions, indent=1) + "\n")
    print("wrote smollm2_tokens.json, gguf/tiny_qwen2_tok.gguf, gguf/tiny_qwen2_tokens.json")


def dist_version(name: str) -> str:
    from importlib.metadata import version

    return version(name)


if __name__ == "__main__":
    main()
