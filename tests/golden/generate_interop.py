#!/usr/bin/python3
"""PyTorch <-> tinycnn state-dict interop goldens.

Run by hand with Debian's python3-torch:  /usr/bin/python3 tests/golden/generate_interop.py
Writes, for LeNet-5 with BatchNorm (LeCun et al. 1998) and ResNet-20 option A (He et al. 2016):
  interop_<model>.safetensors     the model's state_dict() exactly as PyTorch
                                  has it (after a few training steps, so BN
                                  running statistics are not trivial)
  interop_<model>_io.safetensors  x and the eval-mode logits y of that model
tests/test_interop.c loads the first into the tinycnn model and checks y; it
also checks that what tc_model_save() writes has the same names, dtypes,
shapes and bytes, i.e. what load_state_dict(strict=True) accepts.

  /usr/bin/python3 tests/golden/generate_interop.py --check FILE MODEL
loads a tinycnn-written FILE into MODEL (lenet_bn | resnet20) with
load_state_dict(strict=True) and compares its logits with the golden ones.
"""
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import generate as g  # noqa: E402  (models and the safetensors writer)


def build(name):
    return g.LeNet(True) if name == "lenet_bn" else g.ResNet(3)


def make(name):
    torch.manual_seed(4321)
    model = build(name)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    model.train()
    for _ in range(3):
        x = torch.randn(8, 3, 32, 32)
        labels = torch.randint(0, 10, (8,))
        opt.zero_grad()
        F.cross_entropy(model(x), labels).backward()
        opt.step()
    model.eval()
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        y = model(x)
    g.save("interop_" + name, dict(model.state_dict()), dict(model=name))
    g.save("interop_%s_io" % name, {"x": x, "y": y}, dict(model=name))


def read_safetensors(path):
    import json
    import struct
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    types = {"F32": torch.float32, "I64": torch.int64, "I32": torch.int32}
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        a, b = v["data_offsets"]
        t = torch.frombuffer(bytearray(data[a:b]), dtype=types[v["dtype"]])
        out[k] = t.reshape(v["shape"])
    return out


def check(path, name):
    model = build(name)
    model.load_state_dict(read_safetensors(path), strict=True)
    model.eval()
    io = read_safetensors(os.path.join(g.OUT, "interop_%s_io.safetensors" % name))
    with torch.no_grad():
        y = model(io["x"])
    err = ((y - io["y"]).abs() / io["y"].abs().clamp_min(1e-6)).max().item()
    print("%s: load_state_dict(strict=True) OK, max relative error of logits %.3g"
          % (path, err))
    return 0 if err < 1e-4 else 1


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--check":
        sys.exit(check(sys.argv[2], sys.argv[3]))
    make("lenet_bn")
    make("resnet20")
