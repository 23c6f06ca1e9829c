"""Writes the ONNX files test_onnx_import.c loads, with torch.onnx.export,
and the logits PyTorch computes for them, so the test needs no Python.

Run by hand with Debian's interpreter and python3-torch (1.13):
    /usr/bin/python3 tests/onnx/make_import_models.py tests/onnx/import

Written into the directory:
  input.bin        float32 little-endian (4, 3, 32, 32), a fixed batch
  NAME.onnx        the model, opset 13
  NAME.out.bin     float32 little-endian (4, 10), model(input) in eval mode

The models are those of examples/common/models.c (LeNet-5 with and
without batch norm, ResNet-8 with shortcut A (max-pool and subsample
variants) and B, the latter two narrower to keep the files small) and a
plain net with average pooling, dilation, dropout and a view-flatten.
Batch norms get running statistics and affine parameters away from their
defaults so that folding or ignoring them would show.

torch.onnx.export in evaluation (training=TrainingMode.EVAL, the default)
folds each BatchNorm2d that follows a Conv into the Conv's weight and bias
(the "_folded" files); TrainingMode.PRESERVE on a model in eval() keeps
the BatchNormalization nodes (the other files). See
https://pytorch.org/docs/1.13/onnx.html#torch.onnx.export
"""
import os
from collections import OrderedDict
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

BATCH = 4


def lenet(bn):
    layers = [("conv1", nn.Conv2d(3, 6, 5))]
    if bn:
        layers.append(("bn1", nn.BatchNorm2d(6)))
    layers += [("relu1", nn.ReLU()), ("pool1", nn.MaxPool2d(2)),
               ("conv2", nn.Conv2d(6, 16, 5))]
    if bn:
        layers.append(("bn2", nn.BatchNorm2d(16)))
    layers += [("relu2", nn.ReLU()), ("pool2", nn.MaxPool2d(2)),
               ("flatten", nn.Flatten()), ("fc3", nn.Linear(400, 120))]
    if bn:
        layers.append(("bn3", nn.BatchNorm1d(120)))
    layers += [("relu3", nn.ReLU()), ("fc4", nn.Linear(120, 84))]
    if bn:
        layers.append(("bn4", nn.BatchNorm1d(84)))
    layers += [("relu4", nn.ReLU()), ("fc5", nn.Linear(84, 10))]
    return nn.Sequential(OrderedDict(layers))


class Block(nn.Module):
    """tinycnn's residual block (lib/nn/residual.c): option "A" pads the new
    channels at the end then max-pools (s, s); "A_sub" pads then takes
    x[:, :, ::s, ::s]; "B" is a 1x1 conv + BN when the shape changes."""

    def __init__(self, cin, cout, stride, shortcut):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.kind, self.stride, self.extra = shortcut, stride, cout - cin
        self.identity = cin == cout and stride == 1
        if shortcut == "B" and not self.identity:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        h = F.relu(self.bn1(self.conv1(x)))
        h = self.bn2(self.conv2(h))
        if self.identity:
            s = x
        elif self.kind == "B":
            s = self.shortcut(x)
        else:
            s = F.pad(x, (0, 0, 0, 0, 0, self.extra)) if self.extra else x
            if self.stride > 1:
                s = (F.max_pool2d(s, self.stride) if self.kind == "A"
                     else s[:, :, ::self.stride, ::self.stride])
        return F.relu(h + s)


def resnet8(shortcut, width=16):
    w = width
    return nn.Sequential(OrderedDict([
        ("conv1", nn.Conv2d(3, w, 3, 1, 1, bias=False)),
        ("bn1", nn.BatchNorm2d(w)), ("relu", nn.ReLU()),
        ("layers_2n", nn.Sequential(Block(w, w, 1, shortcut))),
        ("layers_4n", nn.Sequential(Block(w, 2 * w, 2, shortcut))),
        ("layers_6n", nn.Sequential(Block(2 * w, 4 * w, 2, shortcut))),
        ("avg_pool", nn.AvgPool2d(8, stride=1)), ("flatten", nn.Flatten()),
        ("fc_out", nn.Linear(4 * w, 10))]))


class PlainNet(nn.Module):
    """Average pooling (with padding, count_include_pad=False), a dilated
    convolution without bias, dropout, global average pooling and the
    x.view(x.size(0), -1) flatten that torch writes as Reshape."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.pool1 = nn.AvgPool2d(2)
        self.conv2 = nn.Conv2d(8, 16, 3, stride=2, padding=2, dilation=2,
                               bias=False)
        self.bn2 = nn.BatchNorm2d(16)
        self.pool2 = nn.AvgPool2d(3, stride=2, padding=1,
                                  count_include_pad=False)
        self.drop = nn.Dropout(0.5)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = self.pool1(F.relu(self.conv1(x)))
        x = self.pool2(F.relu(self.bn2(self.conv2(x))))
        x = self.gap(self.drop(x))
        return self.fc(x.view(x.size(0), -1))


def perturb_bn(model, g):
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            c = m.num_features
            with torch.no_grad():
                m.running_mean.copy_(0.2 * torch.randn(c, generator=g))
                m.running_var.copy_(0.5 + torch.rand(c, generator=g))
                m.weight.copy_(1 + 0.2 * torch.randn(c, generator=g))
                m.bias.copy_(0.1 * torch.randn(c, generator=g))


def export(model, x, path, fold, dynamic):
    mode = (torch.onnx.TrainingMode.EVAL if fold
            else torch.onnx.TrainingMode.PRESERVE)
    kw = {}
    if dynamic:
        kw["dynamic_axes"] = {"input": {0: "N"}, "output": {0: "N"}}
    torch.onnx.export(model, x, path, opset_version=13, training=mode,
                      do_constant_folding=True, input_names=["input"],
                      output_names=["output"], **kw)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "tests/onnx/import"
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(BATCH, 3, 32, 32, generator=g)
    x.numpy().astype("<f4").tofile(os.path.join(out, "input.bin"))
    # name: (model, fold BN into Conv, dynamic batch)
    specs = {
        "lenet5": (lenet(False), True, True),
        "lenet5_bn": (lenet(True), False, True),
        "lenet5_bn_folded": (lenet(True), True, True),
        "resnet8_a": (resnet8("A"), False, True),
        "resnet8_b": (resnet8("B"), False, True),
        "resnet8_a_sub_folded": (resnet8("A_sub", 8), True, True),
        "resnet8_b_folded": (resnet8("B", 8), True, True),
        "plain_avg": (PlainNet(), False, False),
    }
    for name, (model, fold, dynamic) in specs.items():
        perturb_bn(model, g)
        model.eval()
        with torch.no_grad():
            y = model(x)
        export(model, x, os.path.join(out, name + ".onnx"), fold, dynamic)
        y.numpy().astype("<f4").tofile(os.path.join(out, name + ".out.bin"))
        print(f"{name}: logits max |y| {y.abs().max():.3f}")


if __name__ == "__main__":
    main()
