"""The PyTorch twins of tinycnn's bundled models, shared by the golden-file
generators (generate.py, generate_interop.py) and the PyTorch side of the
benchmarks (bench/pytorch_reference.py, bench/pytorch_lenet_accuracy.py).

Importing this module only defines classes: it sets no seed, thread count or
determinism flag, so every user keeps its own settings.
"""
import torch.nn as nn
import torch.nn.functional as F


class BasicBlock(nn.Module):
    """The CIFAR basic block of He et al. 2016 (option A: pad channels at the end,
    then MaxPool2d(2) as the seed does, or x[:, :, ::2, ::2]; option B: 1x1
    conv + BN projection)."""

    def __init__(self, cin, cout, stride, shortcut="A", plain=False, subsample="maxpool"):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.cin, self.cout, self.stride = cin, cout, stride
        self.plain, self.shortcut_kind, self.subsample = plain, shortcut, subsample
        if not plain and shortcut == "B" and (stride != 1 or cin != cout):
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                          nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.plain:
            return F.relu(out)
        if self.stride != 1 or self.cin != self.cout:
            if self.shortcut_kind == "B":
                sc = self.shortcut(x)
            else:
                sc = F.pad(x, (0, 0, 0, 0, 0, self.cout - self.cin))
                if self.stride != 1:
                    sc = (F.max_pool2d(sc, 2, self.stride) if self.subsample == "maxpool"
                          else sc[:, :, ::2, ::2])
        else:
            sc = x
        return F.relu(out + sc)


class LeNet(nn.Module):
    """LeNet-5 (LeCun et al. 1998) with torch.nn BatchNorm (the library's layers)."""

    def __init__(self, bn=False):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 5)
        self.bn1 = nn.BatchNorm2d(6) if bn else nn.Identity()
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.bn2 = nn.BatchNorm2d(16) if bn else nn.Identity()
        self.fc3 = nn.Linear(400, 120)
        self.bn3 = nn.BatchNorm1d(120) if bn else nn.Identity()
        self.fc4 = nn.Linear(120, 84)
        self.bn4 = nn.BatchNorm1d(84) if bn else nn.Identity()
        self.fc5 = nn.Linear(84, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)
        x = F.max_pool2d(F.relu(self.bn2(self.conv2(x))), 2)
        x = x.view(x.shape[0], -1)
        x = F.relu(self.bn3(self.fc3(x)))
        x = F.relu(self.bn4(self.fc4(x)))
        return self.fc5(x)


class ResNet(nn.Module):
    """CIFAR ResNet of He et al. 2016 (6n+2 layers, option A shortcuts; option B
    with shortcut="B")."""

    def __init__(self, n, plain=False, shortcut="A"):
        super().__init__()
        self.shortcut_kind = shortcut
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.layers_2n = self._stage(16, 16, 1, n, plain, shortcut)
        self.layers_4n = self._stage(16, 32, 2, n, plain, shortcut)
        self.layers_6n = self._stage(32, 64, 2, n, plain, shortcut)
        self.avg_pool = nn.AvgPool2d(8, stride=1)
        self.fc_out = nn.Linear(64, 10)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    @staticmethod
    def _stage(cin, cout, stride, n, plain, shortcut="A"):
        blocks = [BasicBlock(cin, cout, stride, shortcut, plain=plain)]
        blocks += [BasicBlock(cout, cout, 1, shortcut, plain=plain) for _ in range(n - 1)]
        return nn.Sequential(*blocks)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layers_6n(self.layers_4n(self.layers_2n(x)))
        x = self.avg_pool(x).view(x.size(0), -1)
        return self.fc_out(x)
