#!/usr/bin/env python3
"""Trains small SentencePiece models and writes the token ids transformers' slow
`LlamaTokenizer` gives for a set of test strings.

Run from anywhere: paths are relative to this file. Needs `sentencepiece` and transformers
4.57 (`pip install "transformers==4.57.1" sentencepiece protobuf`): transformers 5 has no
slow, SentencePiece-backed `LlamaTokenizer` any more (its `LlamaTokenizer` is the
`tokenizers` one, built by the converter this runtime replaces), and the slow one is what
MentaLLaMA's model card loads. The training text is the first posts of the IMHI training
sets in ../shared/data (never the test sets); CI reads only the committed output.

Output, in tests/fixtures/spm/:
  bpe.model       BPE, 3000 pieces, Llama-2's settings: identity normalizer, spaces kept
                  as they are, byte fallback, digits split, unk/bos/eos = 0/1/2, one
                  user-defined piece `<sep>`.
  unigram.model   Unigram, 2500 pieces, SentencePiece's defaults: nmt_nfkc normalizer,
                  extra whitespace removed, byte fallback.
  unigram_nofallback.model
                  Unigram, 2000 pieces, T5's layout: nmt_nfkc, no byte fallback
                  (unknown characters become <unk>), pad/eos/unk = 0/1/2, no bos. Its
                  reference is the slow `T5Tokenizer` (extra_ids=0), which T5 loads.
  expected.json   For each model and text: `ids` from the slow tokenizer's
                  encode(text, add_special_tokens=False), `ids_special` with
                  add_special_tokens=True (Llama prepends <s>, T5 appends </s>), `pieces`,
                  and `decoded`: SentencePiece's own decoding of `ids` (the slow
                  tokenizers' decode adds quirks of its own around spaces).
                  `llama2_chat`: conversations rendered by `apply_chat_template` with
                  Llama-2-chat's template (`llama2_chat_template`) and the BPE model, as
                  text and as ids.
"""
import csv
import io
import json
import platform
from pathlib import Path

import sentencepiece as spm
import transformers
from transformers import LlamaTokenizer, T5Tokenizer

HERE = Path(__file__).resolve().parent
OUT = HERE.parent / "fixtures" / "spm"
DATA = HERE.parents[2] / "shared" / "data" / "imhi" / "train"

TEXTS = [
    "Hello world",
    "I feel so anxious about tomorrow's exam, and I can't sleep.",
    "  leading spaces",
    "repeated    spaces   inside",
    "trailing spaces   ",
    "   ",
    "",
    "tabs\tand\nnew\nlines\r\nhere",
    "digits 12345, 3.14159 and 2026-12-03",
    "unicode: café, naïve, Müller, Ελληνικά, русский, 日本語のテキスト",
    "emoji 😀🫠 and 👩‍👩‍👧 (byte fallback)",
    "fullwidth ＡＢＣ１２３ and the ﬁ ligature, e\u0301 combining",
    "<s>special at the start",
    "special at the end</s>",
    "a <s> b </s> c",
    "<unk> is a token too",
    "user defined<sep>piece<sep>",
    "literal <0x41> byte text",
    "[INST] <<SYS>>\nYou are helpful.\n<</SYS>>\n\nIs this post about stress? [/INST]",
    "Consider this post: \"I haven't left my room in days. Nothing feels worth it anymore.\" "
    "Question: Does the poster suffer from depression?",
]


# Llama-2-chat's Jinja chat template (its tokenizer_config.json), which MentaLLaMA-chat keeps.
LLAMA2_TEMPLATE = (
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
    "{% set system_message = messages[0]['content'] %}{% else %}"
    "{% set loop_messages = messages %}{% set system_message = false %}{% endif %}"
    "{% for message in loop_messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}"
    "{% if loop.index0 == 0 and system_message != false %}"
    "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
    "{% else %}{% set content = message['content'] %}{% endif %}"
    "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}"
    "{% endif %}{% endfor %}"
)

CONVERSATIONS = [
    [{"role": "system", "content": "You are a helpful assistant."},
     {"role": "user", "content": "Consider this post: \"I can't sleep.\" Question: Is the poster stressed?"}],
    [{"role": "user", "content": "  Hello there  "}],
    [{"role": "system", "content": "Be brief."},
     {"role": "user", "content": "Hi"},
     {"role": "assistant", "content": " yes. Reasoning: short. "},
     {"role": "user", "content": "And now?"}],
]


def chat(path: Path) -> list:
    """Llama-2 chat prompts as transformers renders and tokenizes them."""
    tok = LlamaTokenizer(vocab_file=str(path))
    tok.chat_template = LLAMA2_TEMPLATE
    rows = []
    for messages in CONVERSATIONS:
        text = tok.apply_chat_template(messages, tokenize=False)
        ids = tok.apply_chat_template(messages, tokenize=True)
        if isinstance(ids, dict):
            ids = ids["input_ids"]
        rows.append({"messages": messages, "text": text, "ids": ids})
    return rows


def corpus() -> str:
    """The first posts of each IMHI training set, one per line."""
    lines = []
    # Irf and MultiWD ship no train.csv in ../shared/data.
    for task in sorted(p.name for p in DATA.iterdir() if (p / "train.csv").exists()):
        with open(DATA / task / "train.csv", newline="", encoding="utf-8") as f:
            for i, row in enumerate(csv.DictReader(f)):
                if i >= 1000:
                    break
                lines.append(row["query"].replace("\n", " "))
    # A few lines with characters the posts rarely have, so that they get pieces.
    lines += ["café naïve Müller Ελληνικά русский 日本語"] * 20
    return "\n".join(lines)


def train(name: str, text: str, **options) -> Path:
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(text.split("\n")),
        model_writer=model,
        num_threads=1,
        minloglevel=2,
        **options,
    )
    path = OUT / f"{name}.model"
    path.write_bytes(model.getvalue())
    return path


def expected(path: Path, tok) -> list:
    sp = spm.SentencePieceProcessor(model_file=str(path))
    # The slow tokenizer must not have grown tokens the model lacks.
    assert len(tok) == sp.get_piece_size(), (path.name, len(tok))
    rows = []
    for text in TEXTS:
        ids = tok.encode(text, add_special_tokens=False)
        specials = [t for t in tok.all_special_tokens if t in text]
        if not specials:
            # Without special tokens the slow tokenizer is SentencePiece itself.
            assert ids == sp.encode(text), (path.name, text)
        rows.append({
            "text": text,
            "ids": ids,
            "ids_special": tok.encode(text, add_special_tokens=True),
            "pieces": tok.convert_ids_to_tokens(ids),
            "decoded": sp.decode(ids),
        })
    return rows


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    text = corpus()
    models = {
        "bpe": train(
            "bpe", text, model_type="bpe", vocab_size=3000, byte_fallback=True,
            normalization_rule_name="identity", remove_extra_whitespaces=False,
            split_digits=True, allow_whitespace_only_pieces=True,
            user_defined_symbols=["<sep>"], character_coverage=0.9995,
        ),
        "unigram": train(
            "unigram", text, model_type="unigram", vocab_size=2500, byte_fallback=True,
        ),
        "unigram_nofallback": train(
            "unigram_nofallback", text, model_type="unigram", vocab_size=2000,
            pad_id=0, eos_id=1, unk_id=2, bos_id=-1, character_coverage=0.99,
        ),
    }
    out = {
        "generator": "tests/scripts/gen_spm_fixtures.py",
        "versions": {
            "python": platform.python_version(),
            "transformers": transformers.__version__,
            "sentencepiece": spm.__version__,
        },
        "llama2_chat_template": LLAMA2_TEMPLATE,
        "llama2_chat": chat(models["bpe"]),
        "models": {
            "bpe": expected(models["bpe"], LlamaTokenizer(vocab_file=str(models["bpe"]))),
            "unigram": expected(
                models["unigram"], LlamaTokenizer(vocab_file=str(models["unigram"]))
            ),
            "unigram_nofallback": expected(
                models["unigram_nofallback"],
                T5Tokenizer(vocab_file=str(models["unigram_nofallback"]), extra_ids=0),
            ),
        },
    }
    (OUT / "expected.json").write_text(json.dumps(out, ensure_ascii=False, indent=1) + "\n")
    for name, path in models.items():
        print(f"{path.name}: {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
