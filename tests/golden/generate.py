#!/usr/bin/python3
"""Writes the golden files the parity tests read (tests/golden/*.safetensors).

Run by hand with Debian's python3-torch:  /usr/bin/python3 tests/golden/generate.py
(`generate.py counts` writes only model_counts.json, the models' sizes.)
The tests never need torch: they read the files this script writes.

Each file is a safetensors file (written here by hand: 8-byte little-endian header
length, JSON header, raw little-endian data) holding a case's inputs, parameters,
outputs and gradients, with the case's configuration as JSON in
__metadata__["config"]. Names:
  x, y            input and output of the forward pass
  dy, dx          upstream gradient (random) and input gradient
  p.<name>        parameter/buffer before the step, PyTorch state-dict name
  g.<name>        gradient of a parameter
  s.<name>        state after the forward (BN running stats); whole models:
                  after two SGD steps
  r.<name>        whole models: the same two steps run in float64, rounded
                  to float32 (the reference when float32 results differ)
  labels          int32 class labels (losses, whole models)
  loss            scalar loss (losses, whole models)
"""
import copy
import json
import os
import struct
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

from models import BasicBlock, LeNet, ResNet  # noqa: F401 (re-exported)

OUT = os.path.dirname(os.path.abspath(__file__))
torch.manual_seed(1234)
torch.use_deterministic_algorithms(True)
torch.set_num_threads(1)

DT = {torch.float32: "F32", torch.int32: "I32", torch.int64: "I64"}


def save(name, tensors, config):
    header, blobs, off = {}, [], 0
    for k in sorted(tensors):
        t = tensors[k].detach().contiguous().cpu()
        b = t.numpy().tobytes()
        header[k] = {"dtype": DT[t.dtype], "shape": list(t.shape),
                     "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    header["__metadata__"] = {"config": json.dumps(config, sort_keys=True)}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(os.path.join(OUT, name + ".safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def layer_case(name, module, x, config, train=True):
    module.train(train)
    params = {"p." + k: v.clone() for k, v in module.state_dict().items()}
    x = x.clone().requires_grad_(True)
    y = module(x)
    dy = torch.randn_like(y)
    y.backward(dy)
    t = {"x": x, "y": y, "dy": dy, "dx": x.grad}
    t.update(params)
    for k, p in module.named_parameters():
        t["g." + k] = p.grad
    for k, b in module.named_buffers():
        t["s." + k] = b
    save(name, t, config)


def conv_cases():
    cfgs = [
        dict(c=3, k=6, r=5, s=5, stride=1, pad=0, dil=1, bias=True, n=2, h=12, w=12),
        dict(c=4, k=5, r=3, s=3, stride=2, pad=1, dil=1, bias=False, n=3, h=9, w=7),
        dict(c=2, k=3, r=3, s=3, stride=1, pad=2, dil=2, bias=True, n=1, h=8, w=8),
        dict(c=5, k=4, r=1, s=1, stride=2, pad=0, dil=1, bias=True, n=2, h=6, w=5),
        dict(c=3, k=2, r=3, s=5, stride=1, pad=1, dil=1, bias=True, n=2, h=7, w=9),
    ]
    for i, c in enumerate(cfgs):
        m = nn.Conv2d(c["c"], c["k"], (c["r"], c["s"]), stride=c["stride"],
                      padding=c["pad"], dilation=c["dil"], bias=c["bias"])
        x = torch.randn(c["n"], c["c"], c["h"], c["w"])
        layer_case("conv2d_%d" % i, m, x, dict(c, layer="conv2d"))


def linear_cases():
    for i, (n, fi, fo, bias) in enumerate([(4, 7, 5, True), (1, 3, 8, False)]):
        m = nn.Linear(fi, fo, bias=bias)
        layer_case("linear_%d" % i, m, torch.randn(n, fi),
                   dict(layer="linear", n=n, fin=fi, fout=fo, bias=bias))


def bn_cases():
    cases = [
        ("bn2d_train", nn.BatchNorm2d(3), torch.randn(4, 3, 5, 5) * 3 + 1, True,
         dict(layer="bn2d", c=3, momentum=0.1, affine=True, track=True)),
        ("bn2d_eval", nn.BatchNorm2d(3), torch.randn(2, 3, 4, 4), False,
         dict(layer="bn2d", c=3, momentum=0.1, affine=True, track=True)),
        ("bn2d_noaffine", nn.BatchNorm2d(4, affine=False), torch.randn(3, 4, 3, 3), True,
         dict(layer="bn2d", c=4, momentum=0.1, affine=False, track=True)),
        ("bn2d_cumulative", nn.BatchNorm2d(2, momentum=None), torch.randn(2, 2, 3, 3), True,
         dict(layer="bn2d", c=2, momentum=None, affine=True, track=True)),
        ("bn2d_notrack", nn.BatchNorm2d(2, track_running_stats=False),
         torch.randn(3, 2, 4, 4), False,
         dict(layer="bn2d", c=2, momentum=0.1, affine=True, track=False)),
        ("bn1d_train", nn.BatchNorm1d(6), torch.randn(5, 6) * 2 - 1, True,
         dict(layer="bn1d", c=6, momentum=0.1, affine=True, track=True)),
    ]
    for name, m, x, train, cfg in cases:
        if name == "bn2d_eval":  # non-trivial running stats
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
            with torch.no_grad():
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
        layer_case(name, m, x, cfg, train)


def pool_cases():
    cfgs = [
        dict(kind="max", k=2, stride=2, pad=0, ceil=False, n=2, c=3, h=8, w=8),
        dict(kind="max", k=3, stride=2, pad=1, ceil=True, n=1, c=2, h=7, w=6),
        dict(kind="max", k=3, stride=2, pad=0, ceil=True, n=2, c=1, h=8, w=8),
        dict(kind="avg", k=2, stride=2, pad=0, ceil=False, inc=True, n=2, c=2, h=6, w=6),
        dict(kind="avg", k=3, stride=2, pad=1, ceil=True, inc=False, n=1, c=3, h=7, w=7),
        dict(kind="avg", k=3, stride=2, pad=1, ceil=False, inc=True, n=2, c=1, h=6, w=5),
    ]
    for i, c in enumerate(cfgs):
        if c["kind"] == "max":
            m = nn.MaxPool2d(c["k"], c["stride"], c["pad"], ceil_mode=c["ceil"])
        else:
            m = nn.AvgPool2d(c["k"], c["stride"], c["pad"], ceil_mode=c["ceil"],
                             count_include_pad=c["inc"])
        x = torch.randn(c["n"], c["c"], c["h"], c["w"])
        layer_case("pool_%d" % i, m, x, dict(c, layer="pool"))
    layer_case("gap_0", nn.AdaptiveAvgPool2d(1), torch.randn(2, 3, 5, 4),
               dict(layer="gap", n=2, c=3, h=5, w=4))


def loss_cases():
    for i, (red, ls) in enumerate([("mean", 0.0), ("sum", 0.0), ("mean", 0.1)]):
        x = (torch.randn(6, 5) * 3).requires_grad_(True)
        labels = torch.randint(0, 5, (6,), dtype=torch.int64)
        loss = F.cross_entropy(x, labels, reduction=red, label_smoothing=ls)
        loss.backward()
        save("xent_%d" % i, {"x": x, "labels": labels.to(torch.int32),
                             "loss": loss.reshape(()), "dx": x.grad},
             dict(loss="cross_entropy", reduction=red, label_smoothing=ls))
    x = torch.log_softmax(torch.randn(4, 3), 1).requires_grad_(True)
    labels = torch.randint(0, 3, (4,))
    loss = F.nll_loss(x, labels)
    loss.backward()
    save("nll_0", {"x": x, "labels": labels.to(torch.int32), "loss": loss, "dx": x.grad},
         dict(loss="nll", reduction="mean"))
    x = torch.randn(3, 4).requires_grad_(True)
    target = torch.randn(3, 4)
    loss = F.mse_loss(x, target)
    loss.backward()
    save("mse_0", {"x": x, "target": target, "loss": loss, "dx": x.grad},
         dict(loss="mse", reduction="mean"))


def block_cases():
    cases = [
        ("block_identity", dict(cin=4, cout=4, stride=1, shortcut="A", plain=False)),
        ("block_A_maxpool", dict(cin=3, cout=6, stride=2, shortcut="A", plain=False)),
        ("block_A_slice", dict(cin=3, cout=6, stride=2, shortcut="A", plain=False,
                               subsample="slice")),
        ("block_B", dict(cin=3, cout=5, stride=2, shortcut="B", plain=False)),
        ("block_plain", dict(cin=3, cout=6, stride=2, shortcut="A", plain=True)),
    ]
    for name, c in cases:
        m = BasicBlock(**c)
        with torch.no_grad():  # non-trivial BN affine parameters
            for mod in m.modules():
                if isinstance(mod, nn.BatchNorm2d):
                    mod.weight.uniform_(0.5, 1.5)
                    mod.bias.uniform_(-0.2, 0.2)
        layer_case(name, m, torch.randn(2, c["cin"], 6, 6),
                   dict(c, layer="block", subsample=c.get("subsample", "maxpool")))


def model_case(name, model, batch, lr, momentum, wd, config):
    """Logits, loss and gradients at step 0, then weights after two SGD steps."""
    model.train()
    x = torch.randn(batch, 3, 32, 32)
    labels = torch.randint(0, 10, (batch,))
    t = {"x": x, "labels": labels.to(torch.int32)}
    t.update({"p." + k: v.clone() for k, v in model.state_dict().items()})
    # the same two steps in float64: the near-exact answer both float32
    # results are measured against when they differ (tests/test_parity.c)
    ref = copy.deepcopy(model).double()
    ropt = torch.optim.SGD(ref.parameters(), lr=lr, momentum=momentum, weight_decay=wd)
    for step in range(2):
        ropt.zero_grad()
        F.cross_entropy(ref(x.double()), labels).backward()
        ropt.step()
    t.update({"r." + k: v.clone().float() if v.is_floating_point() else v.clone()
              for k, v in ref.state_dict().items()})
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=wd)
    for step in range(2):
        opt.zero_grad()
        logits = model(x)
        loss = F.cross_entropy(logits, labels)
        loss.backward()
        if step == 0:
            t["y"] = logits.detach().clone()
            t["loss"] = loss.detach().clone()
            for k, p in model.named_parameters():
                t["g." + k] = p.grad.clone()
        opt.step()
    t.update({"s." + k: v.clone() for k, v in model.state_dict().items()})
    save(name, t, dict(config, batch=batch, lr=lr, momentum=momentum, weight_decay=wd))


def count_cases():
    """Parameter and buffer counts and forward multiply-adds per image of the
    bundled models, as PyTorch sees them (tests/test_summary.c). Mult-adds
    count Conv2d (out.numel() * C/groups * R * S) and Linear (out.numel() *
    in_features) without biases, through forward hooks on one image."""
    cases = {
        "lenet": LeNet(False), "lenet_bn": LeNet(True),
        "resnet20_A": ResNet(3), "resnet20_B": ResNet(3, shortcut="B"),
        "resnet56_A": ResNet(9), "resnet56_B": ResNet(9, shortcut="B"),
        "resnet20_plain": ResNet(3, plain=True),
    }
    out = {}
    for name, model in cases.items():
        macs = []

        def hook(mod, inp, outp):
            if isinstance(mod, nn.Conv2d):
                k = mod.in_channels // mod.groups * mod.kernel_size[0] * mod.kernel_size[1]
                macs.append(outp.numel() * k)
            elif isinstance(mod, nn.Linear):
                macs.append(outp.numel() * mod.in_features)
        hs = [m.register_forward_hook(hook) for m in model.modules()]
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, 3, 32, 32))
        for h in hs:
            h.remove()
        out[name] = {
            "params": sum(p.numel() for p in model.parameters()),
            "buffers": sum(b.numel() for b in model.buffers()),
            "macs": sum(macs),
            "state": {k: list(v.shape) for k, v in model.state_dict().items()},
        }
    with open(os.path.join(OUT, "model_counts.json"), "w") as f:
        json.dump(out, f, sort_keys=True, separators=(",", ":"))
        f.write("\n")


def main():
    if sys.argv[1:] == ["counts"]:  # only the small counts file
        count_cases()
        return
    count_cases()
    conv_cases()
    linear_cases()
    bn_cases()
    pool_cases()
    loss_cases()
    block_cases()
    model_case("model_lenet", LeNet(False), 8, 0.01, 0.9, 1e-3, dict(model="lenet", bn=False))
    model_case("model_lenet_bn", LeNet(True), 8, 0.01, 0.9, 1e-3, dict(model="lenet", bn=True))
    model_case("model_resnet20", ResNet(3), 4, 0.1, 0.9, 1e-4, dict(model="resnet", depth=20))


if __name__ == "__main__":
    main()
