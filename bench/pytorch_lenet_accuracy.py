# PyTorch twin of tinycnn-lenet for the accuracy comparison in docs/trainers.md: same model
# (tests/golden/models.py), transforms, 80/20 split, SGD recipe and epochs.
# Usage: /usr/bin/python3 bench/pytorch_lenet_accuracy.py mnist|fashion BN(0/1) EPOCHS SEED
import os, sys, gzip, struct, numpy as np, torch, torch.nn as nn, torch.nn.functional as F
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'tests', 'golden'))
import models as g
ds, bn, epochs, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
d = os.environ.get('MNIST_DIR', '../shared/data/mnist') if ds == 'mnist' else '/usr/share/datasets/fashion-mnist'
def idx(p):
    b = gzip.open(p).read(); nd = b[3]; dims = struct.unpack('>' + 'I' * nd, b[4:4 + 4 * nd])
    return np.frombuffer(b, np.uint8, offset=4 + 4 * nd).reshape(dims)
def prep(x):
    x = torch.tensor(x, dtype=torch.float32) / 255.
    x = F.pad(x, (2, 2, 2, 2)).unsqueeze(1).repeat(1, 3, 1, 1)
    return (x - 0.5) / 0.5
torch.manual_seed(seed); torch.set_num_threads(2)
X = prep(idx(d + '/train-images-idx3-ubyte.gz')); Y = torch.tensor(idx(d + '/train-labels-idx1-ubyte.gz'), dtype=torch.long)
Xt = prep(idx(d + '/t10k-images-idx3-ubyte.gz')); Yt = torch.tensor(idx(d + '/t10k-labels-idx1-ubyte.gz'), dtype=torch.long)
perm = torch.randperm(len(X)); tr = perm[:48000]
m = g.LeNet(bool(bn)); opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-6)
for e in range(epochs):
    m.train(); p = tr[torch.randperm(len(tr))]
    for i in range(0, len(p) - 127, 128):
        b = p[i:i + 128]; opt.zero_grad(); F.cross_entropy(m(X[b]), Y[b]).backward(); opt.step()
m.eval()
with torch.no_grad():
    acc = (m(Xt).argmax(1) == Yt).float().mean().item()
print('pytorch %s bn=%d epochs=%d seed=%d test accuracy=%.4f' % (ds, bn, epochs, seed, acc))
