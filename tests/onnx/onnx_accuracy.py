"""Accuracy of an exported model on the MNIST test set through onnxruntime,
preprocessed as the trainers do (pad to 32, grey to RGB, (x - 0.5) / 0.5).

Usage: python onnx_accuracy.py MODEL.onnx MNIST_DIR [LIMIT]; prints the
accuracy with 4 decimals.
"""
import gzip
import os
import sys

import numpy as np
import onnxruntime as ort


def idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def main():
    model, d = sys.argv[1], sys.argv[2]
    limit = int(sys.argv[3]) if len(sys.argv) > 3 else None
    images = idx(os.path.join(d, "t10k-images-idx3-ubyte.gz"))[:limit]
    labels = idx(os.path.join(d, "t10k-labels-idx1-ubyte.gz"))[:limit]
    x = np.pad(images.astype(np.float32) / 255.0, ((0, 0), (2, 2), (2, 2)))
    x = (np.repeat(x[:, None], 3, axis=1) - 0.5) / 0.5
    sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    correct = 0
    for i in range(0, len(x), 500):
        out = sess.run(None, {"input": x[i:i + 500]})[0]
        correct += int((out.argmax(1) == labels[i:i + 500]).sum())
    print(f"{correct / len(x):.4f}")


if __name__ == "__main__":
    main()
