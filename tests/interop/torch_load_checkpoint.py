#!/usr/bin/env python3
"""A training checkpoint written by tinycnn loads in PyTorch through
safetensors.torch.load_file, old PyTorch included (1.13 has no torch.uint64,
so every entry must use a dtype it knows): the RNG words come back as int64
scalars holding tinycnn's 64-bit values bit for bit.

usage: torch_load_checkpoint.py WRITER  (WRITER: write_checkpoint's path)
Exits 77 (skipped) when torch or safetensors is not installed for the
python3 that meson found; run it by hand with another interpreter if that is
where they are (Debian's python3-torch is 1.13, e.g.
/usr/bin/python3 tests/interop/torch_load_checkpoint.py \
    build/tests/write_checkpoint).
"""
import os
import subprocess
import sys
import tempfile

try:
    import torch
    from safetensors.torch import load_file
except ImportError as e:
    print(f"skipped: {e}")
    sys.exit(77)


def main():
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "run.ckpt")
        subprocess.run([sys.argv[1], path], check=True)
        sd = load_file(path)
    print(f"torch {torch.__version__}: {len(sd)} entries")
    for name in ("rng.seed", "rng.model_seed", "rng.model_offset"):
        t = sd[name]
        assert t.dtype == torch.int64 and t.dim() == 0, (name, t.dtype, t.shape)
    seed = sd["rng.model_seed"].item() & (2**64 - 1)
    assert seed == 2**64 - 6, seed
    assert sd["conv1.weight"].shape == (2, 1, 3, 3)
    assert sd["bn1.num_batches_tracked"].dtype == torch.int64
    assert sd["trainer.step"].item() == 7
    print("ok")


if __name__ == "__main__":
    main()
