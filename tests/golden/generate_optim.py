#!/usr/bin/python3
"""Writes the optimizer, clipping and scheduler golden files
(tests/golden/optim_*.safetensors) that test_optim and test_sched read.

Run by hand with Debian's python3-torch:
    /usr/bin/python3 tests/golden/generate_optim.py
The tests never need torch.

Files (safetensors written by hand, as generate.py does; the case's
configuration is JSON in __metadata__["config"]):

optim_<case>.safetensors: 3 steps of one optimizer over the parameters of a
  small model conv(2->3, 3x3) - bn(3) - flatten - fc(27->4), named as its
  state dict. Names:
    p0.<name>         parameter before the first step
    g<k>.<name>       gradient given at step k (k = 1, 2, 3)
    p<k>.<name>       parameter after step k
    s.<name>.<key>    optimizer state after step 3 (momentum_buffer, exp_avg,
                      exp_avg_sq, max_exp_avg_sq)
  config: {"opt": "sgd"|"adam"|"adamw", options of group 0, "names": [...],
           "no_decay": null or the options of a second group holding the
           parameters of at most one dimension}
optim_clip.safetensors: torch.nn.utils.clip_grad_norm_ over the same shapes:
    g.<name>               the gradients
    c<i>.<name>, norm<i>   clipped gradients and returned total norm for
                           max_norm = config["max_norms"][i]
optim_sched.safetensors: lr.<case>: float64 (31, 2), the lr of two groups
  (base lrs 0.1 and 0.02) after construction (row 0) and after each of 30
  scheduler steps; config[<case>] gives the scheduler.
"""
import json
import math
import os
import struct

import torch

OUT = os.path.dirname(os.path.abspath(__file__))
torch.manual_seed(4321)
torch.set_num_threads(1)

DT = {torch.float32: "F32", torch.float64: "F64", torch.int32: "I32",
      torch.int64: "I64"}

SHAPES = [("conv.weight", (3, 2, 3, 3)), ("conv.bias", (3,)),
          ("bn.weight", (3,)), ("bn.bias", (3,)), ("fc.weight", (4, 27)),
          ("fc.bias", (4,))]
NAMES = [n for n, _ in SHAPES]
# Gradient scale per step: the small last step makes exp_avg_sq shrink, so
# amsgrad's maximum differs from exp_avg_sq.
GSCALE = [1.0, 0.7, 0.05]


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


def make_params():
    p0 = {n: torch.randn(s) for n, s in SHAPES}
    grads = [{n: torch.randn(s) * GSCALE[k] for n, s in SHAPES}
             for k in range(3)]
    return p0, grads


def optim_case(name, kind, opts, no_decay=None):
    p0, grads = make_params()
    params = {n: p0[n].clone().requires_grad_(True) for n in NAMES}
    if no_decay is None:
        groups = [{"params": [params[n] for n in NAMES]}]
    else:
        groups = [{"params": [params[n] for n in NAMES if params[n].dim() > 1]},
                  dict({"params": [params[n] for n in NAMES
                                   if params[n].dim() <= 1]}, **no_decay)]
    cls = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam,
           "adamw": torch.optim.AdamW}[kind]
    kw = dict(opts)
    if kind != "sgd":
        kw["betas"] = (kw.pop("beta1"), kw.pop("beta2"))
    opt = cls(groups, **kw)
    t = {}
    for n in NAMES:
        t["p0." + n] = p0[n]
    for k in range(3):
        for n in NAMES:
            params[n].grad = grads[k][n].clone()
            t["g%d.%s" % (k + 1, n)] = grads[k][n]
        opt.step()
        for n in NAMES:
            t["p%d.%s" % (k + 1, n)] = params[n].detach().clone()
    for n in NAMES:
        for key, v in opt.state[params[n]].items():
            if key != "step" and v is not None:
                t["s.%s.%s" % (n, key)] = v
    cfg = dict(opts, opt=kind, names=NAMES, no_decay=no_decay)
    save("optim_" + name, t, cfg)


def optim_cases():
    sgd = dict(lr=0.1, momentum=0.0, dampening=0.0, weight_decay=0.0,
               nesterov=False)
    optim_case("sgd_plain", "sgd", sgd)
    optim_case("sgd_momentum", "sgd", dict(sgd, momentum=0.9))
    optim_case("sgd_dampening", "sgd", dict(sgd, lr=0.05, momentum=0.8,
                                            dampening=0.3))
    optim_case("sgd_nesterov", "sgd", dict(sgd, momentum=0.9, nesterov=True))
    optim_case("sgd_wd", "sgd", dict(sgd, momentum=0.9, weight_decay=0.05))
    optim_case("sgd_groups", "sgd", dict(sgd, momentum=0.9, weight_decay=0.05),
               no_decay=dict(lr=0.03, weight_decay=0.0))
    adam = dict(lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0,
                amsgrad=False)
    optim_case("adam", "adam", adam)
    optim_case("adam_wd", "adam", dict(adam, weight_decay=0.1))
    optim_case("adam_amsgrad", "adam", dict(adam, beta1=0.8, beta2=0.9,
                                            eps=1e-6, weight_decay=0.01,
                                            amsgrad=True))
    optim_case("adamw", "adamw", dict(adam, weight_decay=0.1))
    optim_case("adamw_amsgrad", "adamw", dict(adam, beta2=0.9, amsgrad=True,
                                              weight_decay=0.05))
    optim_case("adamw_groups", "adamw", dict(adam, weight_decay=0.1),
               no_decay=dict(lr=0.005, weight_decay=0.0))


def clip_case():
    g = {n: torch.randn(s) for n, s in SHAPES}
    max_norms = [1.0, 3.0, 1000.0, 0.0]
    t = {"g." + n: g[n] for n in NAMES}
    for i, mn in enumerate(max_norms):
        ps = [torch.zeros(s, requires_grad=True) for _, s in SHAPES]
        for p, n in zip(ps, NAMES):
            p.grad = g[n].clone()
        norm = torch.nn.utils.clip_grad_norm_(ps, mn)
        t["norm%d" % i] = norm.reshape(())
        for p, n in zip(ps, NAMES):
            t["c%d.%s" % (i, n)] = p.grad
    save("optim_clip", t, dict(max_norms=max_norms, names=NAMES))


def sched_cases():
    S = torch.optim.lr_scheduler
    cases = {
        "step": dict(kind="step", step_size=7, gamma=0.5),
        "multistep": dict(kind="multistep", milestones=[12, 5, 20, 20],
                          gamma=0.3),
        "cosine": dict(kind="cosine", t_max=10, eta_min=0.001),
        "cosine_long": dict(kind="cosine", t_max=30, eta_min=0.0),
        "linear": dict(kind="linear", start_factor=0.25, end_factor=1.0,
                       total_iters=8),
        "linear_down": dict(kind="linear", start_factor=1.0, end_factor=0.1,
                            total_iters=12),
        "warmup_cosine": dict(kind="sequential", milestones=[5], children=[
            dict(kind="linear", start_factor=0.1, end_factor=1.0,
                 total_iters=5),
            dict(kind="cosine", t_max=25, eta_min=0.0)]),
        "three": dict(kind="sequential", milestones=[4, 14], children=[
            dict(kind="linear", start_factor=0.2, end_factor=1.0,
                 total_iters=4),
            dict(kind="step", step_size=5, gamma=0.5),
            dict(kind="cosine", t_max=8, eta_min=0.001)]),
    }

    def build(opt, c):
        k = c["kind"]
        if k == "step":
            return S.StepLR(opt, c["step_size"], c["gamma"])
        if k == "multistep":
            return S.MultiStepLR(opt, c["milestones"], c["gamma"])
        if k == "cosine":
            return S.CosineAnnealingLR(opt, c["t_max"], c["eta_min"])
        if k == "linear":
            return S.LinearLR(opt, c["start_factor"], c["end_factor"],
                              c["total_iters"])
        return S.SequentialLR(opt, [build(opt, ch) for ch in c["children"]],
                              c["milestones"])

    t = {}
    for name, c in cases.items():
        p = [torch.zeros(1, requires_grad=True) for _ in range(2)]
        opt = torch.optim.SGD([{"params": [p[0]], "lr": 0.1},
                               {"params": [p[1]], "lr": 0.02}], lr=0.1)
        s = build(opt, c)
        rows = [[g["lr"] for g in opt.param_groups]]
        for _ in range(30):
            opt.step()
            s.step()
            rows.append([g["lr"] for g in opt.param_groups])
        t["lr." + name] = torch.tensor(rows, dtype=torch.float64)
    save("optim_sched", t, cases)


if __name__ == "__main__":
    import warnings
    warnings.simplefilter("ignore")
    optim_cases()
    clip_case()
    sched_cases()
