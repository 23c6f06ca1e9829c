"""Checks the ONNX files tinycnn exported (tests/onnx/export_models.c):
onnx.checker accepts each, it imports opset 13 with a symbolic batch
dimension, its initializers carry the state-dict names, and onnxruntime's
outputs on the same MNIST batch (and on a smaller batch) match tinycnn's
evaluation-mode logits: max |difference| <= 1e-4 * max(1, max |logit|).

Usage: python check_onnx.py DIR  (DIR holds input.bin, NAME.onnx, NAME.out.bin)
"""
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort

NAMES = ["lenet", "lenet_bn", "resnet20_A", "resnet20_B", "resnet20_plain",
         "plain_net"]
TOL = 1e-4


def main():
    d = sys.argv[1]
    x = np.fromfile(os.path.join(d, "input.bin"), dtype=np.float32).reshape(-1, 3, 32, 32)
    worst = 0.0
    for name in NAMES:
        path = os.path.join(d, name + ".onnx")
        model = onnx.load(path)
        onnx.checker.check_model(model, full_check=True)
        assert [(o.domain, o.version) for o in model.opset_import] == [("", 13)], \
            model.opset_import
        dims = model.graph.input[0].type.tensor_type.shape.dim
        assert dims[0].dim_param == "N" and [d.dim_value for d in dims[1:]] == [3, 32, 32]
        inits = {i.name for i in model.graph.initializer}
        if name.startswith("resnet"):
            for want in ("conv1.weight", "bn1.running_var", "layers_2n.0.conv1.weight",
                         "layers_6n.2.bn2.bias", "fc_out.weight"):
                assert want in inits, (name, want)
        ref = np.fromfile(os.path.join(d, name + ".out.bin"), dtype=np.float32).reshape(len(x), -1)
        sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        got = sess.run(None, {"input": x})[0]
        small = sess.run(None, {"input": x[:5]})[0]
        scale = max(1.0, float(np.abs(ref).max()))
        diff = float(np.abs(got - ref).max()) / scale
        diff_small = float(np.abs(small - ref[:5]).max()) / scale
        agree = float((got.argmax(1) == ref.argmax(1)).mean())
        print(f"{name:15s} nodes {len(model.graph.node):3d}  max|diff|/scale "
              f"{diff:.2e} (batch 5: {diff_small:.2e})  argmax agreement {agree:.3f}")
        if not (diff <= TOL and diff_small <= TOL):
            sys.exit(f"FAIL: {name}: onnxruntime differs from tinycnn by {diff:.3e}")
        worst = max(worst, diff, diff_small)
    print(f"ok: worst relative difference {worst:.2e}")


if __name__ == "__main__":
    main()
