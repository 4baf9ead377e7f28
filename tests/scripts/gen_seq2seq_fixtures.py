#!/usr/bin/env python3
"""Writes tiny random encoder-decoder models laid out as MentalBART's and MentalT5's HF
folders are, and what transformers computes with them.

Run from anywhere after gen_spm_fixtures.py (T5's folders take its
tests/fixtures/spm/unigram_nofallback.model as spiece.model). Needs torch, transformers
4.57 (the slow BartTokenizer and T5Tokenizer are the references), tokenizers, safetensors.

Output, in tests/fixtures/tiny/:
  bart/         config.json, model.safetensors (f32), vocab.json + merges.txt (a byte-level
                BPE of 600 tokens trained on the first IMHI training posts, never test
                files), generation_config.json as bart-large's (beam search, forced BOS and
                EOS, no_repeat_ngram_size). d_model 36, 3 heads, FFN 52, 2 encoder and 3
                decoder layers, scale_embedding on, tied head with final_logits_bias.
  t5/           T5 v1.0: ReLU FFN, tied head (rescaled by d_model^-0.5), d_model 40, 3
                heads of d_kv 12 (inner 36 != d_model), 3 encoder / 2 decoder layers,
                8 buckets, max distance 20. spiece.model, tokenizer_config.json.
  t5-v1_1/      T5 v1.1: gated-GELU (gelu_new) FFN, untied head, 4 encoder / 3 decoder
                layers, d_model 32, 4 heads of d_kv 10, 12 buckets, max distance 24.
  seq2seq.json  For each model: `input_ids` and `attention_mask` of two texts padded to one
                length; `encoder`, the encoder's last hidden state at each real position;
                `decoder_ids` and `logits`, the decoder's logits at every position for those
                ids; `greedy`, `beams` (several settings) and `default` (the folder's
                generation_config.json): the generated ids of `generate`, after the decoder
                start token and before the first EOS; `choice`: the summed log-probabilities
                of "no." and "yes." after the answer prefix (BART: `</s> <s>`, T5: `<pad>`)
                for the second input. `tokenizer`: BART's ids (with and
                without special tokens) for the shared test strings of gen_spm_fixtures.py.
T5's decoders have fewer layers than their encoders: transformers 4.57 sizes T5's cache by
`num_layers` and fails on a deeper decoder.
Every model's logits are biased toward EOS a little (BART's final_logits_bias, T5's
head row) so that beams end at different lengths.
"""
import json
import platform
import shutil
import sys
import tempfile
from pathlib import Path

import tokenizers
import torch
import transformers
from transformers import (BartConfig, BartForConditionalGeneration, BartTokenizer,
                          GenerationConfig, T5Config, T5ForConditionalGeneration, T5Tokenizer)

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from gen_spm_fixtures import TEXTS, corpus  # noqa: E402

FIX = HERE.parent / "fixtures"
TINY = FIX / "tiny"

INPUTS = [
    "I haven't slept in days and everything feels pointless. Question: Does the poster "
    "suffer from depression?",
    "Work is stressful lately.",
]

BEAMS = [
    {"num_beams": 3, "length_penalty": 1.0, "no_repeat_ngram_size": 0,
     "early_stopping": True, "max_new_tokens": 10},
    {"num_beams": 4, "length_penalty": 2.0, "no_repeat_ngram_size": 2,
     "early_stopping": False, "max_new_tokens": 12},
    {"num_beams": 2, "length_penalty": 0.5, "no_repeat_ngram_size": 3,
     "early_stopping": "never", "max_new_tokens": 9},
]


def randomize(model, std: float) -> None:
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "layer_norm" in name or "layernorm" in name:
                p.uniform_(0.8, 1.2) if name.endswith("weight") else p.normal_(0.0, 0.05)
            else:
                p.normal_(0.0, std)


def bart_tokenizer(folder: Path) -> BartTokenizer:
    tok = tokenizers.ByteLevelBPETokenizer()
    with tempfile.TemporaryDirectory() as tmp:
        text = Path(tmp) / "corpus.txt"
        text.write_text(corpus())
        tok.train([str(text)], vocab_size=600, min_frequency=2,
                  special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    tok.save_model(str(folder))
    return BartTokenizer(vocab_file=str(folder / "vocab.json"),
                         merges_file=str(folder / "merges.txt"))


def rounded(values) -> list:
    """Seven significant digits: far below the tests' tolerances, and half the file."""
    return [float(f"{v:.7g}") for v in values]


def trimmed(row: list, start: int, eos: int, pad: int) -> list:
    """The ids after the decoder start token, up to (not including) the first EOS."""
    out = []
    for t in row[1:]:
        if t == eos:
            break
        out.append(t)
    while out and out[-1] == pad:
        out.pop()
    return out


def choice(model, tok, ids: list, prefix: list) -> dict:
    """Summed log-probabilities of "no." and "yes." after the decoder prefix, one input."""
    candidates = [tok.encode(a, add_special_tokens=False) for a in ("no.", "yes.")]
    logprobs = []
    with torch.no_grad():
        for cand in candidates:
            dec = torch.tensor([prefix + cand])
            out = model(input_ids=torch.tensor([ids]), decoder_input_ids=dec).logits[0]
            lp = torch.log_softmax(out, dim=-1)
            logprobs.append(sum(lp[len(prefix) - 1 + j, t].item() for j, t in enumerate(cand)))
    return {"input_ids": ids, "prefix": prefix, "candidates": candidates, "logprobs": logprobs}


def reference(model, tok_batch, eos: int, pad: int, start: int) -> dict:
    ids, mask = tok_batch["input_ids"], tok_batch["attention_mask"]
    with torch.no_grad():
        enc = model.get_encoder()(input_ids=ids, attention_mask=mask).last_hidden_state
        dec = torch.tensor([[start, 5, 17, 9, 30, 4], [start, 8, 8, 21, 3, 11]])
        logits = model(input_ids=ids, attention_mask=mask, decoder_input_ids=dec).logits
        greedy = model.generate(input_ids=ids, attention_mask=mask, num_beams=1,
                                do_sample=False, max_new_tokens=12, min_length=0,
                                no_repeat_ngram_size=0, forced_bos_token_id=None,
                                forced_eos_token_id=None)
        beams = []
        for setting in BEAMS:
            out = model.generate(input_ids=ids, attention_mask=mask, do_sample=False,
                                 min_length=0, forced_bos_token_id=None,
                                 forced_eos_token_id=None, **setting)
            beams.append({"setting": setting,
                          "ids": [trimmed(r, start, eos, pad) for r in out.tolist()]})
        default = model.generate(input_ids=ids, attention_mask=mask)
    lens = mask.sum(dim=1).tolist()
    return {
        "input_ids": ids.tolist(),
        "attention_mask": mask.tolist(),
        "encoder": [rounded(enc[i, :n].flatten().tolist()) for i, n in enumerate(lens)],
        "decoder_ids": dec.tolist(),
        "logits": [rounded(row.flatten().tolist()) for row in logits],
        "greedy": [trimmed(r, start, eos, pad) for r in greedy.tolist()],
        "beams": beams,
        "default": [trimmed(r, start, eos, pad) for r in default.tolist()],
    }


def make_bart() -> dict:
    out = TINY / "bart"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    tok = bart_tokenizer(out)
    config = BartConfig(
        vocab_size=len(tok), d_model=36, encoder_layers=2, decoder_layers=3,
        encoder_attention_heads=3, decoder_attention_heads=3, encoder_ffn_dim=52,
        decoder_ffn_dim=52, max_position_embeddings=64, scale_embedding=True,
        activation_function="gelu", pad_token_id=1, bos_token_id=0, eos_token_id=2,
        decoder_start_token_id=2, forced_bos_token_id=0, forced_eos_token_id=2,
        dropout=0.0, attention_dropout=0.0, activation_dropout=0.0,
    )
    torch.manual_seed(20261203)
    model = BartForConditionalGeneration(config).eval()
    randomize(model, 0.15)
    with torch.no_grad():
        model.final_logits_bias.normal_(0.0, 0.1)
        model.final_logits_bias[0, 2] = 1.6
    model.generation_config = GenerationConfig(
        num_beams=3, length_penalty=1.5, no_repeat_ngram_size=2, early_stopping=True,
        max_length=16, min_length=0, forced_bos_token_id=0, forced_eos_token_id=2,
        decoder_start_token_id=2, bos_token_id=0, eos_token_id=2, pad_token_id=1,
    )
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    batch = tok(INPUTS, padding=True, return_tensors="pt")
    ref = reference(model, batch, eos=2, pad=1, start=2)
    ref["choice"] = choice(model, tok, tok(INPUTS[1])["input_ids"], [2, 0])
    ref["tokenizer"] = [
        {"text": t, "ids": tok.encode(t, add_special_tokens=False),
         "ids_special": tok.encode(t, add_special_tokens=True)}
        for t in TEXTS
    ]
    return ref


def make_t5(name: str, eos_gain: float, **config) -> dict:
    out = TINY / name
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    shutil.copy(FIX / "spm" / "unigram_nofallback.model", out / "spiece.model")
    tok = T5Tokenizer(vocab_file=str(out / "spiece.model"), extra_ids=0)
    config = T5Config(vocab_size=len(tok), pad_token_id=0, eos_token_id=1,
                      decoder_start_token_id=0, dropout_rate=0.0, **config)
    torch.manual_seed(20261204 if name == "t5" else 20261205)
    model = T5ForConditionalGeneration(config).eval()
    randomize(model, 0.2)
    with torch.no_grad():
        model.lm_head.weight[1] *= eos_gain
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    batch = tok(INPUTS, padding=True, return_tensors="pt")
    ref = reference(model, batch, eos=1, pad=0, start=0)
    ref["choice"] = choice(model, tok, tok(INPUTS[1])["input_ids"], [0])
    return ref


def main() -> None:
    refs = {
        "bart": make_bart(),
        "t5": make_t5("t5", 2.0, d_model=40, d_kv=12, d_ff=56, num_layers=3,
                      num_decoder_layers=2, num_heads=3, relative_attention_num_buckets=8,
                      relative_attention_max_distance=20, feed_forward_proj="relu",
                      tie_word_embeddings=True),
        "t5-v1_1": make_t5("t5-v1_1", 15.0, d_model=32, d_kv=10, d_ff=44, num_layers=4,
                           num_decoder_layers=3, num_heads=4,
                           relative_attention_num_buckets=12,
                           relative_attention_max_distance=24,
                           feed_forward_proj="gated-gelu", tie_word_embeddings=False),
    }
    refs["generator"] = "tests/scripts/gen_seq2seq_fixtures.py"
    refs["versions"] = {"python": platform.python_version(), "torch": torch.__version__,
                        "transformers": transformers.__version__,
                        "tokenizers": tokenizers.__version__}
    (TINY / "seq2seq.json").write_text(json.dumps(refs) + "\n")
    for name in ("bart", "t5", "t5-v1_1"):
        lens = [len(ids) for ids in refs[name]["greedy"]]
        beam = [[len(ids) for ids in b["ids"]] for b in refs[name]["beams"]]
        print(f"{name}: greedy lengths {lens}, beam lengths {beam}, "
              f"default {[len(i) for i in refs[name]['default']]}")


if __name__ == "__main__":
    main()
