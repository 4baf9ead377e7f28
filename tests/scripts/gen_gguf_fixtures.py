#!/usr/bin/env python3
"""Writes the GGUF fixtures the `mentalqlm-formats` tests read.

Run from anywhere: paths are relative to this file. Needs `gguf` and `numpy`
(see tests/scripts/requirements.txt); the tests need only what this wrote.

Output (tests/fixtures/gguf/):
  quants.gguf       GGUF v3, alignment 64, metadata of every value type (nested arrays too),
                    one [2, 256] tensor per type: F32 F16 BF16 Q4_0 Q4_1 Q5_0 Q5_1 Q8_0
                    Q4_K Q5_K Q6_K (named by the lowercase type), plus a [2, 3, 4] F32 `f32_3d`
  quants_ref.bin    the reference dequantization, float32 little-endian, tensor after tensor
  quants_ref.json   for each tensor: name, type, shape (PyTorch order), offset and count of
                    its floats in quants_ref.bin, and the metadata values written
  smollm2_tensors.json  when models/SmolLM2-135M-Instruct.Q4_1.gguf exists (scripts/setup-model.sh):
                    for a few of its tensors, the shape and reference values (first 64,
                    sums, a middle row), and row sums of `attn_q`/`attn_k` with llama.cpp's
                    Q/K permutation undone as transformers does (`reverse_permute_weights`)
  versions.json     the library versions that made them

Where `gguf.quants.quantize` exists (F16 BF16 Q4_0 Q4_1 Q5_0 Q5_1 Q8_0) row 0 is quantized
from Gaussian data; every other row, and all of Q4_K Q5_K Q6_K (no quantizer in the
package), are random block bytes with finite f16 scales -- every bit pattern of a block is
a valid block, so these exercise the bit unpacking fully. The reference is always
`gguf.quants.dequantize`, which mirrors ggml's `dequantize_row_*`.
"""
import json
import platform
from pathlib import Path

import gguf
import numpy as np
from gguf import GGMLQuantizationType as T
from gguf import GGUFValueType as V

ROOT = Path(__file__).resolve().parent.parent.parent
OUT = ROOT / "tests" / "fixtures" / "gguf"
MODEL = ROOT / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
SEED = 20240611
ROWS, COLS = 2, 256

# Where each block format keeps its f16 scales: (block bytes, offsets of f16 fields).
SCALE_FIELDS = {
    T.Q4_0: (18, [0]),
    T.Q4_1: (20, [0, 2]),
    T.Q5_0: (22, [0]),
    T.Q5_1: (24, [0, 2]),
    T.Q8_0: (34, [0]),
    T.Q4_K: (144, [0, 2]),
    T.Q5_K: (176, [0, 2]),
    T.Q6_K: (210, [208]),
}
QUANTIZABLE = [T.F16, T.BF16, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0]
TYPES = [T.F32, T.F16, T.BF16, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0, T.Q4_K, T.Q5_K, T.Q6_K]

# (key, value, type[, sub_type]): one entry per GGUF value type, and nested arrays.
METADATA = [
    ("test.u8", 200, V.UINT8),
    ("test.i8", -100, V.INT8),
    ("test.u16", 60000, V.UINT16),
    ("test.i16", -30000, V.INT16),
    ("test.u32", 4_000_000_000, V.UINT32),
    ("test.i32", -2_000_000_000, V.INT32),
    ("test.f32", 1.5, V.FLOAT32),
    ("test.bool", True, V.BOOL),
    ("test.string", "h\u00e9llo \U0001F642", V.STRING),
    ("test.u64", 2**40 + 1, V.UINT64),
    ("test.i64", -(2**40), V.INT64),
    ("test.f64", 3.141592653589793, V.FLOAT64),
    ("test.array_i32", [1, -2, 3], V.ARRAY, V.INT32),
    ("test.array_f32", [0.5, -0.25], V.ARRAY, V.FLOAT32),
    ("test.array_bool", [True, False, True], V.ARRAY, V.BOOL),
    ("test.array_str", ["a", "bc", "\u00fc"], V.ARRAY, V.STRING),
    ("test.array_u8", [0, 255, 7], V.ARRAY, V.UINT8),
    ("test.array_nested", [[1, 2], [3]], V.ARRAY),
]


def random_blocks(rng: np.random.Generator, qtype: T, n_blocks: int) -> np.ndarray:
    """Random bytes, with each f16 scale replaced by a finite value of a realistic size."""
    size, fields = SCALE_FIELDS[qtype]
    blocks = rng.integers(0, 256, size=(n_blocks, size), dtype=np.uint8)
    for at in fields:
        scale = rng.uniform(-0.05, 0.05, size=n_blocks).astype(np.float16)
        blocks[:, at:at + 2] = scale.view(np.uint8).reshape(n_blocks, 2)
    return blocks


def make_tensor(rng: np.random.Generator, qtype: T) -> np.ndarray:
    """The stored form of a [ROWS, COLS] tensor of `qtype` (bytes for block types)."""
    data = (rng.standard_normal((ROWS, COLS)) * 0.7).astype(np.float32)
    data[0, 5] = 4.0  # an outlier, so the block maxima differ from the typical value
    if qtype == T.F32:
        return data
    if qtype in (T.F16, T.BF16):
        return gguf.quants.quantize(data, qtype)
    block, size = gguf.GGML_QUANT_SIZES[qtype]
    per_row = COLS // block
    rows = []
    if qtype in QUANTIZABLE:
        rows.append(gguf.quants.quantize(data[:1], qtype).reshape(per_row, size))
    while len(rows) < ROWS:
        rows.append(random_blocks(rng, qtype, per_row))
    return np.concatenate(rows).reshape(ROWS, per_row * size)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED)
    writer = gguf.GGUFWriter(OUT / "quants.gguf", arch="test")
    # A non-default alignment, so the reader must honour `general.alignment`.
    writer.add_custom_alignment(64)
    for key, value, vtype, *sub in METADATA:
        writer.add_key_value(key, value, vtype, sub[0] if sub else None)

    manifest, refs, offset = [], [], 0
    for qtype in TYPES:
        name = qtype.name.lower()
        stored = make_tensor(rng, qtype)
        if qtype == T.F32:
            writer.add_tensor(name, stored)
            ref = stored
        else:
            writer.add_tensor(name, stored, raw_dtype=qtype)
            ref = gguf.quants.dequantize(stored, qtype)
        assert ref.shape == (ROWS, COLS) and ref.dtype == np.float32, (name, ref.shape)
        refs.append(ref.ravel())
        manifest.append({"name": name, "type": qtype.name, "shape": [ROWS, COLS], "offset": offset, "count": ref.size})
        offset += ref.size
    cube = np.arange(24, dtype=np.float32).reshape(2, 3, 4) - 11.5
    writer.add_tensor("f32_3d", cube)
    refs.append(cube.ravel())
    manifest.append({"name": "f32_3d", "type": "F32", "shape": [2, 3, 4], "offset": offset, "count": cube.size})

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()

    np.concatenate(refs).astype("<f4").tofile(OUT / "quants_ref.bin")
    metadata = {key: value for key, value, *_ in METADATA}
    (OUT / "quants_ref.json").write_text(
        json.dumps({"tensors": manifest, "alignment": 64, "metadata": metadata}, indent=1, ensure_ascii=False) + "\n"
    )
    write_model_reference()
    versions = {"gguf": gguf.__version__ if hasattr(gguf, "__version__") else dist_version("gguf"),
                "numpy": np.__version__, "python": platform.python_version(), "seed": SEED}
    (OUT / "versions.json").write_text(json.dumps(versions, indent=1) + "\n")
    print(f"wrote {OUT}: {sorted(p.name for p in OUT.iterdir())}")


def write_model_reference() -> None:
    if not MODEL.exists():
        print(f"skipping smollm2_tensors.json: {MODEL} is missing (run scripts/setup-model.sh)")
        return
    reader = gguf.GGUFReader(MODEL)
    heads = {"attn_q": int(reader.fields["llama.attention.head_count"].contents()),
             "attn_k": int(reader.fields["llama.attention.head_count_kv"].contents())}
    names = ["token_embd.weight", "blk.0.attn_norm.weight", "blk.0.attn_q.weight", "blk.0.attn_k.weight",
             "blk.0.ffn_down.weight", "blk.29.ffn_up.weight", "output_norm.weight"]
    out = {}
    for t in reader.tensors:
        if t.name not in names:
            continue
        values = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)
        # GGUFReader gives ne reversed already (numpy order), i.e. the PyTorch shape.
        values = values.reshape([int(d) for d in reversed(t.shape.tolist())])
        rows = values.reshape(values.shape[0], -1)
        entry = {
            "type": t.tensor_type.name,
            "shape": list(values.shape),
            "first": [float(x) for x in values.ravel()[:64]],
            "sum": float(values.astype(np.float64).sum()),
            "abs_sum": float(np.abs(values.astype(np.float64)).sum()),
            "row": rows.shape[0] // 2,
            "row_values": [float(x) for x in rows[rows.shape[0] // 2]],
        }
        kind = t.name.split(".")[2] if t.name.startswith("blk.") else ""
        if kind in heads:
            n_head = heads[kind]
            w = rows.reshape(n_head, rows.shape[0] // n_head // 2, 2, -1).swapaxes(2, 1).reshape(rows.shape)
            entry["n_head"] = n_head
            entry["unpermuted_row_sums"] = [float(x) for x in w.astype(np.float64).sum(axis=1)]
        out[t.name] = entry
    (OUT / "smollm2_tensors.json").write_text(json.dumps(out) + "\n")


def dist_version(name: str) -> str:
    from importlib.metadata import version

    return version(name)


if __name__ == "__main__":
    main()
