"""Reads a trainer's --logdir with TensorBoard's own reader (EventAccumulator)
and checks the final test figures: test/loss and test/accuracy once each, at
the run's last step, equal to the trainer's test line and to metrics.csv's
split=test row.

Usage: python read_events.py LOGDIR STEP LOSS ACCURACY
"""
import csv
import math
import os
import sys

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def main():
    logdir, step = sys.argv[1], int(sys.argv[2])
    loss, acc = float(sys.argv[3]), float(sys.argv[4])
    ea = EventAccumulator(logdir, size_guidance={"scalars": 0})
    ea.Reload()
    tags = ea.Tags()["scalars"]
    for tag, want in (("test/loss", loss), ("test/accuracy", acc)):
        if tag not in tags:
            sys.exit(f"FAIL: no {tag} in {sorted(tags)}")
        ev = ea.Scalars(tag)
        if len(ev) != 1 or ev[0].step != step:
            sys.exit(f"FAIL: {tag}: {[(e.step, e.value) for e in ev]}, "
                     f"expected one value at step {step}")
        # the test line prints 4 decimals
        if not math.isclose(ev[0].value, want, abs_tol=6e-5):
            sys.exit(f"FAIL: {tag} = {ev[0].value}, test line says {want}")
    for tag in ("train/loss", "val/accuracy"):
        if not ea.Scalars(tag) or ea.Scalars(tag)[-1].step != step:
            sys.exit(f"FAIL: {tag} does not end at step {step}")
    with open(os.path.join(logdir, "metrics.csv"), newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["split"] == "test"]
    if len(rows) != 1 or int(rows[0]["step"]) != step:
        sys.exit(f"FAIL: metrics.csv test rows: {rows}")
    if not (math.isclose(float(rows[0]["loss"]), loss, abs_tol=6e-5) and
            math.isclose(float(rows[0]["accuracy"]), acc, abs_tol=6e-5)):
        sys.exit(f"FAIL: metrics.csv test row {rows[0]} != {loss}, {acc}")
    print(f"ok: test/loss {ea.Scalars('test/loss')[0].value:.4f}, "
          f"test/accuracy {ea.Scalars('test/accuracy')[0].value:.4f} "
          f"at step {step}")


if __name__ == "__main__":
    main()
