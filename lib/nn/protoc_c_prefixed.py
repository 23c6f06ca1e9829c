#!/usr/bin/env python3
"""Runs protoc-c, then renames the generated C symbols onnx__* to
tc__onnx__* so that they do not leak from the static libtinycnn.a into a
user's namespace (an application that links its own ONNX protobuf-c code
would clash with, or silently replace, ours).

The rename is a block of #defines at the top of the generated header,
which the generated .c and lib/nn/onnx_export.c both include: the code
that uses the names is not touched, and the wire format (field numbers)
does not depend on C names.

usage: protoc_c_prefixed.py PROTOC_C OUT_H ARGS...   (ARGS go to protoc-c)
"""
import re
import subprocess
import sys


def main():
    protoc_c, out_h, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    subprocess.run([protoc_c] + args, check=True)
    with open(out_h, encoding='utf-8') as f:
        text = f.read()
    names = sorted(set(re.findall(r'\bonnx__[a-z][a-z0-9_]*\b', text)))
    if not names:
        sys.exit('protoc_c_prefixed.py: no onnx__ symbol in ' + out_h)
    head = ['/* tinycnn: the C symbols of this file get the internal prefix tc__',
            ' * (lib/nn/protoc_c_prefixed.py). */']
    head += ['#define %s tc__%s' % (n, n) for n in names]
    with open(out_h, 'w', encoding='utf-8') as f:
        f.write('\n'.join(head) + '\n' + text)


if __name__ == '__main__':
    main()
