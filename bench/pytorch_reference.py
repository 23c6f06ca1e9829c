#!/usr/bin/python3
"""PyTorch reference for tinycnn-bench (docs/benchmarks.md).

Runs the same models (LeNet-5, LeNet-5+BN, ResNet-20, ResNet-56 at
3x32x32; definitions copied from tests/golden/generate.py, which match
tinycnn's), shapes and measurement as bench/tc_bench.c on synthetic data:
training images/s (batch 128, SGD lr 0.01 momentum 0.9 weight decay 5e-4,
cross-entropy; zero_grad + forward + loss + backward + step) and inference
images/s (batch 256, eval mode, torch.no_grad), after warm-up iterations.
PyTorch gets its best CPU settings: torch.set_num_threads(cores), oneDNN
(mkldnn) on, OPENBLAS_NUM_THREADS=1 so OpenBLAS does not oversubscribe
the cores next to PyTorch's own threads.

Each model and mode runs in its own process so its peak RSS (ru_maxrss)
is its own. Prints the same key=value lines as tinycnn-bench:
  model=lenet mode=train batch=128 threads=2 warmup=5 iters=20 seconds=...
  images_per_sec=... peak_rss_mb=...
Meant for Debian's python3-torch: /usr/bin/python3 bench/pytorch_reference.py
"""
import argparse
import os
import subprocess
import sys
import time

MODELS = ["lenet", "lenet_bn", "resnet20", "resnet56"]


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", action="append", default=[],
                   help="lenet, lenet_bn, resnet20, resnet56 or all "
                        "(default all; repeatable)")
    p.add_argument("--train", action="store_true", help="training images/s")
    p.add_argument("--infer", action="store_true", help="inference images/s")
    p.add_argument("--iters", type=int, default=20, help="timed iterations")
    p.add_argument("--warmup", type=int, default=5, help="untimed iterations")
    p.add_argument("--threads", type=int, default=0,
                   help="torch threads, 0 = all cores (default)")
    p.add_argument("--train-batch", type=int, default=128)
    p.add_argument("--infer-batch", type=int, default=256)
    p.add_argument("--child", action="store_true",
                   help="one model and mode only, without the header")
    a = p.parse_args(argv)
    models = []
    for m in a.model or ["all"]:
        if m == "all":
            models += MODELS
        elif m in MODELS:
            models.append(m)
        else:
            p.error("unknown model '%s'" % m)
    a.model = models
    if a.iters < 1 or a.warmup < 0 or a.threads < 0:
        p.error("--iters >= 1, --warmup >= 0, --threads >= 0")
    if not a.train and not a.infer:
        a.train = a.infer = True
    if a.threads == 0:
        a.threads = os.cpu_count() or 1
    return a


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def peak_rss_mb():
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# ---- models (tests/golden/models.py, shared with the golden generators) -----

def define_models():
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                    "..", "tests", "golden"))
    from models import LeNet, ResNet

    return {
        "lenet": lambda: LeNet(bn=False),
        "lenet_bn": lambda: LeNet(bn=True),
        "resnet20": lambda: ResNet(3),
        "resnet56": lambda: ResNet(9),
    }


# ---- one model, one mode -----------------------------------------------------

def run_one(a, name, mode):
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(a.threads)
    torch.backends.mkldnn.enabled = True
    torch.manual_seed(0)
    model = define_models()[name]()
    batch = a.train_batch if mode == "train" else a.infer_batch
    x = torch.rand(batch, 3, 32, 32) * 2 - 1
    y = torch.randint(0, 10, (batch,))

    if mode == "train":
        model.train()
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9,
                              weight_decay=5e-4)

        def step():
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            return loss
    else:
        model.eval()

        def step():
            with torch.no_grad():
                return model(x)

    for _ in range(a.warmup):
        step()
    t0 = time.perf_counter()
    for _ in range(a.iters):
        step()
    wall = time.perf_counter() - t0
    print("model=%s mode=%s batch=%d threads=%d warmup=%d iters=%d "
          "seconds=%.4f images_per_sec=%.1f peak_rss_mb=%.1f"
          % (name, mode, batch, torch.get_num_threads(), a.warmup, a.iters,
             wall, batch * a.iters / wall, peak_rss_mb()), flush=True)


# ---- driver: one process per model and mode ---------------------------------

def main(argv):
    a = parse_args(argv)
    modes = (["train"] if a.train else []) + (["infer"] if a.infer else [])
    import torch
    if not a.child:
        print('cpu="%s" logical_cpus=%d' % (cpu_model(), os.cpu_count() or 0))
        print("torch=%s mkldnn=%d threads=%d" %
              (torch.__version__, int(torch.backends.mkldnn.is_available()),
               a.threads), flush=True)
    # one model in one mode runs here: this process is its own already
    if len(a.model) == 1 and len(modes) == 1:
        run_one(a, a.model[0], modes[0])
        return 0
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    rc = 0
    for name in a.model:
        for mode in modes:
            cmd = [sys.executable, os.path.abspath(__file__), "--child",
                   "--model", name, "--" + mode, "--iters", str(a.iters),
                   "--warmup", str(a.warmup), "--threads", str(a.threads),
                   "--train-batch", str(a.train_batch),
                   "--infer-batch", str(a.infer_batch)]
            rc |= subprocess.call(cmd, env=env)
    return rc


if __name__ == "__main__":
    # before torch loads OpenBLAS: one OpenBLAS thread next to torch's own
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
    sys.exit(main(sys.argv[1:]))
