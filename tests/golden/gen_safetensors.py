#!/usr/bin/python3
"""Writes the small safetensors golden files read by tests/test_safetensors.c.

The bytes are produced by hand from torch tensors (JSON header + raw
little-endian data), independently of tinycnn's writer and without the
`safetensors` package (not packaged in Debian 12). The header lists the
tensors in one order and lays their data out in another, as files from
other writers may.

Run: /usr/bin/python3 tests/golden/gen_safetensors.py tests/golden
"""
import json
import struct
import sys

import torch

DTYPES = {
    torch.float32: "F32", torch.int32: "I32", torch.int64: "I64",
    torch.float16: "F16", torch.uint8: "U8", torch.float64: "F64",
    torch.bfloat16: "BF16", torch.bool: "BOOL",
}


def raw(t):
    t = t.contiguous()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().tobytes()
    return t.numpy().tobytes()


def write(path, tensors, metadata=None, data_order=None):
    names = list(tensors)
    order = data_order or names
    offsets, blobs, pos = {}, [], 0
    for n in order:
        b = raw(tensors[n])
        offsets[n] = (pos, pos + len(b))
        blobs.append(b)
        pos += len(b)
    header = {}
    if metadata is not None:
        header["__metadata__"] = metadata
    for n in names:
        t = tensors[n]
        header[n] = {"dtype": DTYPES[t.dtype], "shape": list(t.shape),
                     "data_offsets": list(offsets[n])}
    text = json.dumps(header, ensure_ascii=False).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


def main(out):
    t = {
        "conv1.weight": torch.arange(24, dtype=torch.float32).reshape(2, 3, 2, 2) * 0.25 - 3.0,
        "conv1.bias": torch.tensor([1.5, -2.5], dtype=torch.float32),
        "bn1.num_batches_tracked": torch.tensor(42, dtype=torch.int64),
        "labels": torch.tensor([-2, -1, 0, 1, 2147483647], dtype=torch.int32),
        "empty": torch.zeros(0, 3, dtype=torch.float32),
        "half": torch.tensor([1.0, -2.0, 0.5], dtype=torch.float16),
        "bytes": torch.tensor([0, 1, 254, 255], dtype=torch.uint8),
        "big": torch.tensor([-(2 ** 62), 2 ** 62 + 1], dtype=torch.int64),
    }
    # data laid out in reverse order of the header's
    write(f"{out}/golden_basic.safetensors", t,
          metadata={"format": "pt", "epoch": "7", "note": "caf\u00e9 \"quoted\""},
          data_order=list(reversed(list(t))))
    write(f"{out}/golden_nometa.safetensors",
          {"w": torch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=torch.float32)})


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".")
